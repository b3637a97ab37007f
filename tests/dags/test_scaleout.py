"""Scaling out, shown: the nightly DAG under the CeleryExecutor with two workers, a PostgreSQL
metadata database and ledger, and a Redis broker, all on loopback and started here; the result
equals the single-machine run (``dag.test()`` with the SQLite ledger)."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

pytest.register_assert_rewrite("tests.support.airflow_env", "tests.support.services")

from tests.conftest import ROOT, SAMPLES  # noqa: E402
from tests.support.airflow_env import AirflowEnv  # noqa: E402
from tests.dags.test_dags_server_and_migration import _diff  # noqa: E402
from tests.support.services import celery_deployment  # noqa: E402

KEY = "scale-out-key-0123456789abcdef"


def _workspace(folder: Path, ledger: str | None) -> Path:
    inbox = folder / "inbox"
    inbox.mkdir(parents=True)
    for n in range(2):
        for path in sorted((SAMPLES / "hl7v2").glob("*.hl7")):
            data = path.read_bytes()
            if n:
                data = data.replace(b"LINDE-", b"LINDE%d-" % n)
            (inbox / f"{path.stem}-{n}.hl7").write_bytes(data)
    shutil.copytree(ROOT / "mappings", folder / "mappings")
    lines = ["format_version: 1", "sources:", "  - name: linde", "    format: hl7v2",
             "    inbox: inbox", "    target: target", "    mappings: mappings",
             "    pool: babyconnect_repository",
             "    schedule: null  # only the run the test triggers"]
    if ledger:
        lines.append(f"    ledger: {ledger}")
    (folder / "pipelines.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def _ndjson(target: Path) -> dict[str, list[str]]:
    return {p.name: sorted(p.read_text().splitlines())
            for p in sorted((target / "ndjson").glob("*.ndjson"))}


@pytest.mark.slow
def test_nightly_dag_on_two_celery_workers_equals_the_single_machine_run(
    airflow_env: AirflowEnv, postgres_service, redis_service, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    single = _workspace(tmp_path / "single", None)
    env = airflow_env.with_environ(BABYCONNECT_PIPELINES=str(single / "pipelines.yaml"),
                                   BABYCONNECT_ID_KEY=KEY)
    assert env.dag_test("babyconnect_nightly_linde").state == "success"

    ledger_db = f"ledger_{uuid.uuid4().hex[:10]}"
    postgres_service.create_database(ledger_db)
    scaled = _workspace(tmp_path / "scaled", postgres_service.url(database=ledger_db))
    monkeypatch.setenv("BABYCONNECT_PIPELINES", str(scaled / "pipelines.yaml"))
    monkeypatch.setenv("BABYCONNECT_ID_KEY", KEY)
    with celery_deployment(ROOT / "dags", postgres_service, redis_service, workers=2,
                           pools={"babyconnect_repository": 2}) as deployment:
        deployment.wait_for_dag("babyconnect_nightly_linde")
        deployment.trigger("babyconnect_nightly_linde", "scaleout_1", {})
        state = deployment.wait_for_run("babyconnect_nightly_linde", "scaleout_1", timeout=240)
        rows = deployment.task_instances("babyconnect_nightly_linde", "scaleout_1")

    assert state == "success", {f"{r.task_id}[{r.map_index}]": r.state for r in rows}
    loads = [r for r in rows if r.task_id == "convert_load"]
    assert len(loads) == 12 and {r.pool for r in loads} == {"babyconnect_repository"}
    assert sum(r.xcom["loaded"] for r in loads) == 20
    assert _ndjson(scaled / "target") == _ndjson(single / "target"), _diff(
        _ndjson(single / "target"), _ndjson(scaled / "target"))

    from converters.ledger import Ledger

    reconciliation = Ledger(postgres_service.url(database=ledger_db)).reconcile()
    assert reconciliation.ok and len(reconciliation.files) == 12
