"""The DAGs against the real FHIR server (sekmet-fhir on loopback, through an Airflow
connection), and a migration interrupted mid-run and started again."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytest.register_assert_rewrite("tests.support.airflow_env")

from tests.conftest import ROOT, SAMPLES  # noqa: E402
from tests.support import airflow_env as harness  # noqa: E402
from tests.support.airflow_env import AirflowEnv  # noqa: E402

pytest_plugins = ["tests.support.airflow_env"]

KEY = "dag-test-key-0123456789abcdef"


def _workspace(folder: Path, source_yaml: str, copies: int = 1) -> Path:
    inbox = folder / "inbox"
    inbox.mkdir(parents=True)
    for n in range(copies):
        for path in sorted((SAMPLES / "hl7v2").glob("*.hl7")):
            data = path.read_bytes()
            if n:  # a distinct export per copy: other control ids, same people
                data = data.replace(b"LINDE-", b"LINDE%d-" % n).replace(b"LABLINDE-",
                                                                      b"LABLINDE%d-" % n)
            (inbox / f"{path.stem}-{n}.hl7").write_bytes(data)
    # Its own copy of the tables: the mapping version is part of every Provenance.
    shutil.copytree(ROOT / "mappings", folder / "mappings")
    (folder / "pipelines.yaml").write_text(
        "format_version: 1\nsources:\n" + source_yaml + "    mappings: mappings\n",
        encoding="utf-8")
    return folder


def _total(base: str, resource_type: str) -> int:
    response = httpx.get(f"{base}/{resource_type}", params={"_summary": "count"}, timeout=30)
    response.raise_for_status()
    return int(response.json().get("total", 0))


@pytest.mark.server
def test_nightly_dag_loads_into_the_fhir_server_and_a_second_run_adds_nothing(
    airflow_env: AirflowEnv, fhir_server: str, tmp_path: Path
) -> None:
    folder = _workspace(tmp_path, "  - name: linde\n    format: hl7v2\n    inbox: inbox\n"
                                  "    connection: bc_fhir\n    pool: default_pool\n")
    conn = json.dumps({"conn_type": "http", "host": fhir_server})
    env = airflow_env.with_environ(BABYCONNECT_PIPELINES=str(folder / "pipelines.yaml"),
                                   BABYCONNECT_ID_KEY=KEY, AIRFLOW_CONN_BC_FHIR=conn)
    first = env.dag_test("babyconnect_nightly_linde")
    assert first.state == "success", first.states()
    assert sum(ti.xcom["loaded"] for ti in first.mapped("convert_load")) == 10
    woman = httpx.get(f"{fhir_server}/Patient", params={
        "identifier": "http://fhir.nl/fhir/NamingSystem/bsn|999990317"}, timeout=30).json()
    assert woman.get("total", len(woman.get("entry", []))) == 1
    totals = {t: _total(fhir_server, t) for t in ("Patient", "Observation", "Provenance")}
    assert "babyconnect://linde/repository" in {e.asset_uri for e in first.asset_events}

    second = env.dag_test("babyconnect_nightly_linde")
    assert second.state == "success", second.states()
    assert second.task("find").xcom == []
    assert {t: _total(fhir_server, t) for t in totals} == totals


def _ndjson_state(target: Path) -> dict[str, list[str]]:
    return {p.name: sorted(p.read_text().splitlines())
            for p in sorted((target / "ndjson").glob("*.ndjson"))}


def _diff(expected: dict[str, list[str]], actual: dict[str, list[str]]) -> str:
    import difflib

    out = []
    for name in sorted(set(expected) | set(actual)):
        a = [p for line in expected.get(name, []) for p in line.split(",")]
        b = [p for line in actual.get(name, []) for p in line.split(",")]
        if a != b:
            out.append(name + "\n" + "\n".join(list(difflib.unified_diff(a, b, n=1))[:20]))
    return "\n".join(out)


def _files_done(ledger: Path) -> int:
    if not ledger.exists():
        return 0
    with sqlite3.connect(ledger) as db:
        try:
            return db.execute("select count(*) from ledger_files where records is not null"
                              ).fetchone()[0]
        except sqlite3.OperationalError:
            return 0


@pytest.mark.slow
def test_migration_interrupted_and_restarted_ends_like_an_uninterrupted_one(
    airflow_env: AirflowEnv, tmp_path: Path
) -> None:
    source = ("  - name: archive\n    format: hl7v2\n    inbox: inbox\n    target: target\n"
              "    pool: default_pool\n")
    whole = _workspace(tmp_path / "whole", source, copies=3)
    broken = _workspace(tmp_path / "broken", source, copies=3)
    conf = {"chunk_size": 1}

    env_whole = airflow_env.with_environ(BABYCONNECT_PIPELINES=str(whole / "pipelines.yaml"),
                                         BABYCONNECT_ID_KEY=KEY)
    assert env_whole.dag_test("babyconnect_migrate_archive", conf=conf).state == "success"

    env_broken = airflow_env.with_environ(BABYCONNECT_PIPELINES=str(broken / "pipelines.yaml"),
                                          BABYCONNECT_ID_KEY=KEY)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({
        "dags_folder": str(env_broken.dags_folder), "dag_id": "babyconnect_migrate_archive",
        "conf": conf, "variable_file": None, "conn_file": None,
        "result": str(tmp_path / "result.json")}))
    log = (tmp_path / "child.log").open("wb")
    child = subprocess.Popen(
        [sys.executable, str(Path(harness.__file__).resolve()), "dag-test", str(spec)],
        env=dict(env_broken.environ), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    ledger = broken / "target" / "ledger.db"
    deadline = time.monotonic() + 240
    while _files_done(ledger) < 4 and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.2)
    interrupted_at = _files_done(ledger)
    finished_early = child.poll() is not None
    if not finished_early:
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    assert not finished_early, (tmp_path / "child.log").read_text()[-3000:]
    assert 0 < interrupted_at < 18, "the kill must land mid-migration"

    resumed = env_broken.dag_test("babyconnect_migrate_archive", conf=conf)
    failed = {k: v for k, v in resumed.states().items() if v != "success"}
    assert resumed.state == "success", (failed, resumed.log_tail[-4000:])
    assert _ndjson_state(broken / "target") == _ndjson_state(whole / "target"), _diff(
        _ndjson_state(whole / "target"), _ndjson_state(broken / "target"))
    shutil.rmtree(broken / "inbox")
