"""Babyconnect DAGs, generated from the pipelines file (``BABYCONNECT_PIPELINES``, default
``dags/pipelines.yaml``): for each source a nightly feed, a historical migration and a
quarantine reprocess. Tasks call ``converters.orchestration`` and pass only references (paths,
run ids, counts) between them. Parsing reads the pipelines file and nothing else: no export, no
connection.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import Asset, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from converters import orchestration as orch
from converters.errors import BabyconnectError

PIPELINES = Path(
    os.environ.get("BABYCONNECT_PIPELINES", Path(__file__).with_name("pipelines.yaml"))
)
RETRY = {"retries": 3, "retry_delay": timedelta(minutes=2), "retry_exponential_backoff": True}


def _guard(call, *args, **kwargs):
    """Retry only what can succeed on retry: bad input and bad tables fail at once."""
    try:
        return call(*args, **kwargs)
    except BabyconnectError as exc:
        if exc.retryable:
            raise
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from None


def _run_id(prefix: str) -> str:
    context = get_current_context()
    index = context["ti"].map_index
    return f"{prefix}-{context['run_id']}-{index}"[:64]


def nightly_dag(source: orch.SourceConfig):
    asset = Asset(f"babyconnect://{source.name}/repository")

    @dag(dag_id=f"babyconnect_nightly_{source.name}", schedule=source.schedule,
         start_date=datetime(2026, 1, 1), catchup=False, max_active_runs=1,
         default_args=RETRY, tags=["babyconnect", source.name],
         doc_md=f"Nightly feed of **{source.name}**: new exports -> Babyconnect FHIR.")
    def nightly():
        @task
        def find() -> list[str]:
            return _guard(orch.find_new_files, source)

        @task(pool=source.pool, max_active_tis_per_dag=source.pool_slots)
        def convert_load(path: str) -> dict:
            return _guard(orch.convert_and_load, source, [path], _run_id("nightly"))

        @task(outlets=[asset])
        def reconcile(results: list[dict]) -> dict:
            results = list(results)
            outcome = orch.reconcile(source, [r["run_id"] for r in results])
            if outcome["unreconciled_files"]:
                raise AirflowFailException("records are not accounted for; see reconcile")
            return outcome

        @task
        def archive_and_summarise(results: list[dict], reconciliation: dict) -> str:
            results = list(results)
            files = [p for r in results for p in r.get("paths", [])]
            orch.archive(source, files)
            text = orch.summarise(source, results, reconciliation)
            logging.getLogger(__name__).info("%s", text)  # the morning read, in the task log
            return text

        results = convert_load.expand(path=find())
        archive_and_summarise(results, reconcile(results))

    return nightly()


def migration_dag(source: orch.SourceConfig):
    @dag(dag_id=f"babyconnect_migrate_{source.name}", schedule=None,
         start_date=datetime(2026, 1, 1), catchup=False, default_args=RETRY,
         tags=["babyconnect", source.name, "migration"],
         params={
             "archive": Param(source.inbox, type="string", description="folder of old exports"),
             "since": Param("", type="string", description="YYYY-MM-DD, files modified from"),
             "until": Param("", type="string", description="YYYY-MM-DD, files modified until"),
             "chunk_size": Param(50, type="integer", minimum=1, description="files per task"),
         },
         doc_md="Historical migration: restartable from the ledger; progress per chunk.")
    def migrate():
        @task
        def plan(params: dict | None = None) -> list[list[str]]:
            params = get_current_context()["params"]
            config = orch.SourceConfig(**{**source.__dict__, "inbox": params["archive"]})
            paths = _guard(orch.find_new_files, config, params["since"] or None,
                           params["until"] or None)
            return orch.chunk(paths, params["chunk_size"])

        @task(pool=source.pool)
        def convert_load_chunk(paths: list[str]) -> dict:
            return _guard(orch.convert_and_load, source, paths, _run_id("migrate"), "migrate")

        @task(outlets=[Asset(f"babyconnect://{source.name}/repository")])
        def reconcile(results: list[dict]) -> dict:
            outcome = orch.reconcile(source, [r["run_id"] for r in results])
            if outcome["unreconciled_files"]:
                raise AirflowFailException("records are not accounted for; see reconcile")
            return outcome

        reconcile(convert_load_chunk.expand(paths=plan()))

    return migrate()


def reprocess_dag(source: orch.SourceConfig):
    @dag(dag_id=f"babyconnect_reprocess_{source.name}", schedule=None,
         start_date=datetime(2026, 1, 1), catchup=False, default_args=RETRY,
         tags=["babyconnect", source.name, "quarantine"],
         params={"run": Param("", type="string", description="only this run's records")},
         doc_md="After a mapping fix: convert this source's quarantined records again.")
    def reprocess():
        @task(outlets=[Asset(f"babyconnect://{source.name}/repository")])
        def run_again() -> dict:
            from converters.reprocess import reprocess as do_reprocess

            run = get_current_context()["params"]["run"] or None
            report = _guard(do_reprocess, source.settings("reprocess"), None, run)
            return {"run_id": report.run_id, "records": report.records_in,
                    "loaded": report.outcomes["loaded"],
                    "quarantined": report.outcomes["quarantined"]}

        run_again()

    return reprocess()


for _source in orch.load_pipelines(PIPELINES):
    globals()[f"nightly_{_source.name}"] = nightly_dag(_source)
    globals()[f"migrate_{_source.name}"] = migration_dag(_source)
    globals()[f"reprocess_{_source.name}"] = reprocess_dag(_source)
