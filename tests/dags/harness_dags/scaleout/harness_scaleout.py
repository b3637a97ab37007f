"""Toy DAG for the CeleryExecutor test: mapped tasks that report which worker ran them.

Each ``report_worker`` instance holds its slot a moment so that, with one slot per worker, the
scheduler has to hand the instances to both workers. ``HARNESS_WORKER`` is set per worker
process by ``tests/support/services.py``; a task inherits it from its worker.
"""

from __future__ import annotations

import os
import socket
import time

from airflow.sdk import Param, dag, task

HARNESS_POOL = "harness_pool"


@dag(
    dag_id="harness_scaleout",
    schedule=None,
    catchup=False,
    params={"tasks": Param(6, type="integer", minimum=1, maximum=50)},
    tags=["harness"],
)
def harness_scaleout() -> None:
    """Fan out ``tasks`` instances over the Celery workers and collect who ran what."""

    @task
    def list_items(params: dict | None = None) -> list[int]:
        return list(range(params["tasks"]))

    @task(pool=HARNESS_POOL)
    def report_worker(item: int) -> dict[str, object]:
        time.sleep(1.5)
        return {
            "item": item,
            "worker": os.environ.get("HARNESS_WORKER", "unknown"),
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }

    @task
    def count_workers(reports: list[dict[str, object]]) -> int:
        return len({report["worker"] for report in reports})

    count_workers(report_worker.expand(item=list_items()))


harness_scaleout()
