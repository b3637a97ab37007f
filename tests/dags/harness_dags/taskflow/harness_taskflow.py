"""Toy DAG: the Airflow 3 features the pipeline DAGs rely on, run under ``dag.test()``.

``list_batches`` reads a param, ``square`` is mapped over its result with ``.expand`` and draws
from a pool, ``summarise`` reduces the mapped XComs and marks an Asset as updated.
"""

from __future__ import annotations

from airflow.sdk import Asset, Param, dag, task

HARNESS_POOL = "harness_pool"
HARNESS_ASSET = Asset(name="harness_summary", uri="file:///harness/summary.json")


@dag(
    dag_id="harness_taskflow",
    schedule=None,
    catchup=False,
    params={"batch_count": Param(3, type="integer", minimum=1, maximum=20)},
    tags=["harness"],
)
def harness_taskflow() -> None:
    """Square the numbers 0..batch_count-1 in mapped tasks and sum them."""

    @task
    def list_batches(params: dict | None = None) -> list[int]:
        return list(range(params["batch_count"]))

    @task(pool=HARNESS_POOL)
    def square(batch: int) -> int:
        return batch * batch

    @task(outlets=[HARNESS_ASSET])
    def summarise(squares: list[int]) -> dict[str, int]:
        squares = list(squares)
        return {"batches": len(squares), "sum_of_squares": sum(squares)}

    summarise(square.expand(batch=list_batches()))


harness_taskflow()
