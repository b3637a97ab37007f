"""The Airflow test harness runs real Airflow 3.3: ``dag.test()``, DAG integrity, Celery scale-out.

The toy DAGs live in ``harness_dags/``; every Airflow call happens in a child interpreter.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# Imported here before pytest loads them as plugins: ask for their asserts to be rewritten.
pytest.register_assert_rewrite("tests.support.airflow_env", "tests.support.services")

from tests.support.airflow_env import (  # noqa: E402  (after register_assert_rewrite)
    AirflowEnv,
    DagIntegrityError,
    DagRunResult,
    assert_dag_file_integrity,
)
from tests.support.services import (  # noqa: E402
    PostgresServer,
    RedisServer,
    celery_deployment,
)

# The fixtures (airflow_env, postgres_service, redis_service) come from these plugins; once the
# root conftest lists them, this line is redundant but harmless (pytest registers a name once).
pytest_plugins = ["tests.support.airflow_env", "tests.support.services"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HARNESS_DAGS = Path(__file__).parent / "harness_dags"
TASKFLOW_DAGS = HARNESS_DAGS / "taskflow"
INTEGRITY_DAGS = HARNESS_DAGS / "integrity"
SCALEOUT_DAGS = HARNESS_DAGS / "scaleout"


@pytest.fixture(scope="module")
def taskflow_run(airflow_env: AirflowEnv) -> DagRunResult:
    """Run the TaskFlow toy DAG once under ``dag.test()`` with four batches."""
    env = airflow_env.with_dags_folder(TASKFLOW_DAGS)
    env.create_pool("harness_pool", 2)
    return env.dag_test("harness_taskflow", conf={"batch_count": 4})


# --- dag.test() ------------------------------------------------------------------------------


def test_importing_the_harness_does_not_import_airflow() -> None:
    # Airflow fixes its configuration on first import; the harness must leave that moment to
    # the child interpreters, which get the isolated environment first.
    probe = "import sys, tests.support.services; sys.exit('airflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, timeout=60)

    assert done.returncode == 0


def test_dag_test_runs_the_taskflow_dag_to_success(taskflow_run: DagRunResult) -> None:
    assert taskflow_run.state == "success", taskflow_run.log_tail
    assert set(taskflow_run.states().values()) == {"success"}


def test_the_run_conf_overrides_the_param_default(taskflow_run: DagRunResult) -> None:
    assert taskflow_run.conf == {"batch_count": 4}
    assert taskflow_run.task("list_batches").xcom == [0, 1, 2, 3]


def test_expand_maps_one_task_instance_per_batch_each_with_its_xcom(
    taskflow_run: DagRunResult,
) -> None:
    squares = taskflow_run.mapped("square")

    assert [ti.map_index for ti in squares] == [0, 1, 2, 3]
    assert [ti.xcom for ti in squares] == [0, 1, 4, 9]


def test_mapped_instances_run_in_the_named_pool(taskflow_run: DagRunResult) -> None:
    assert {ti.pool for ti in taskflow_run.mapped("square")} == {"harness_pool"}
    assert taskflow_run.task("summarise").pool == "default_pool"


def test_the_reducing_task_receives_every_mapped_xcom(taskflow_run: DagRunResult) -> None:
    assert taskflow_run.task("summarise").xcom == {"batches": 4, "sum_of_squares": 14}


def test_the_asset_outlet_records_one_event_from_the_summarising_task(
    taskflow_run: DagRunResult,
) -> None:
    [event] = taskflow_run.asset_events

    assert event.asset_name == "harness_summary"
    assert event.asset_uri == "file:///harness/summary.json"
    assert event.source_task_id == "summarise"


# --- DAG integrity ---------------------------------------------------------------------------


def test_a_clean_dag_file_passes_and_its_dag_id_is_returned(tmp_path: Path) -> None:
    dag_ids = assert_dag_file_integrity(INTEGRITY_DAGS / "clean.py", inbox=tmp_path)

    assert dag_ids == ["harness_clean"]


def test_a_socket_opened_at_parse_time_is_caught_even_when_the_file_swallows_the_error(
    tmp_path: Path,
) -> None:
    with pytest.raises(DagIntegrityError) as caught:
        assert_dag_file_integrity(INTEGRITY_DAGS / "opens_socket.py", inbox=tmp_path)

    assert any("network access at parse time" in p for p in caught.value.problems)
    # The file caught the refusal itself, so Airflow saw no import error: only the hook knows.
    assert not any("import error" in p for p in caught.value.problems)


def test_listing_the_inbox_at_parse_time_is_caught(airflow_env: AirflowEnv, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    env = airflow_env.with_environ(BABYCONNECT_INBOX=str(inbox))

    with pytest.raises(DagIntegrityError) as caught:
        assert_dag_file_integrity(INTEGRITY_DAGS / "reads_inbox.py", inbox=inbox, airflow_env=env)

    assert "inbox access at parse time (os.listdir under the inbox folder)" in caught.value.problems


def test_a_module_that_defines_no_dag_fails(tmp_path: Path) -> None:
    with pytest.raises(DagIntegrityError, match="no DAG is defined"):
        assert_dag_file_integrity(INTEGRITY_DAGS / "defines_no_dag.py", inbox=tmp_path)


# --- CeleryExecutor scale-out ----------------------------------------------------------------


@pytest.mark.slow
def test_a_celery_run_spreads_mapped_tasks_over_both_workers(
    postgres_service: PostgresServer, redis_service: RedisServer
) -> None:
    with celery_deployment(
        SCALEOUT_DAGS, postgres_service, redis_service, workers=2, pools={"harness_pool": 2}
    ) as deployment:
        deployment.wait_for_dag("harness_scaleout")
        deployment.trigger("harness_scaleout", "harness_celery_1", {"tasks": 6})
        state = deployment.wait_for_run("harness_scaleout", "harness_celery_1", timeout=150)
        rows = deployment.task_instances("harness_scaleout", "harness_celery_1")

    reports = [row for row in rows if row.task_id == "report_worker"]
    assert state == "success", {f"{r.task_id}[{r.map_index}]": r.state for r in rows}
    assert len(reports) == 6
    assert {row.state for row in reports} == {"success"}
    assert {row.pool for row in reports} == {"harness_pool"}
    assert {row.xcom["worker"] for row in reports} == {"worker-1", "worker-2"}
    assert next(r for r in rows if r.task_id == "count_workers").xcom == 2
