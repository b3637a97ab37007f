"""The project's DAGs under real Airflow (``dag.test()`` in a child interpreter, see
tests/support/airflow_env.py): integrity, the nightly feed into the embedded target, and a second
run that loads nothing new."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.register_assert_rewrite("tests.support.airflow_env")

from tests.conftest import ROOT, SAMPLES  # noqa: E402
from tests.support.airflow_env import AirflowEnv  # noqa: E402

pytest_plugins = ["tests.support.airflow_env"]

DAG_FILE = ROOT / "dags" / "babyconnect.py"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bc-dags")
    shutil.copytree(SAMPLES / "hl7v2", folder / "inbox", ignore=shutil.ignore_patterns("expected"))
    (folder / "pipelines.yaml").write_text(
        "format_version: 1\n"
        "sources:\n"
        "  - name: linde\n"
        "    format: hl7v2\n"
        "    inbox: inbox\n"
        "    pattern: '*.hl7'\n"
        "    target: target\n"
        "    pool: default_pool\n",
        encoding="utf-8",
    )
    return folder


@pytest.fixture(scope="module")
def env(airflow_env: AirflowEnv, workspace: Path) -> AirflowEnv:
    return airflow_env.with_environ(
        BABYCONNECT_PIPELINES=str(workspace / "pipelines.yaml"),
        BABYCONNECT_ID_KEY="dag-test-key-0123456789abcdef",
    )


def test_the_dag_file_imports_defines_dags_and_touches_nothing_while_parsed(
    env: AirflowEnv, workspace: Path
) -> None:
    dag_ids = env.dag_file_integrity(DAG_FILE, inbox=workspace / "inbox")
    assert dag_ids == ["babyconnect_migrate_linde", "babyconnect_nightly_linde",
                       "babyconnect_reprocess_linde"]


def test_nightly_dag_loads_the_samples_and_a_second_run_loads_nothing_new(
    env: AirflowEnv, workspace: Path
) -> None:
    first = env.dag_test("babyconnect_nightly_linde")
    assert first.state == "success", first.states()
    loads = first.mapped("convert_load")
    assert len(loads) == len(list((workspace / "inbox").glob("*.hl7")))
    counts = [ti.xcom for ti in loads]
    assert sum(c["loaded"] for c in counts) == 10
    assert sum(c["quarantined"] for c in counts) == 1
    assert all(set(c) <= {"run_id", "paths", "files", "records", "loaded", "quarantined",
                          "skipped", "previously_done", "status"} for c in counts)
    ndjson = workspace / "target" / "ndjson" / "Patient.ndjson"
    before = ndjson.read_text()

    second = env.dag_test("babyconnect_nightly_linde")
    assert second.state == "success", second.states()
    assert second.task("find").xcom == []
    assert ndjson.read_text() == before
    summary = first.task("archive_and_summarise").xcom
    assert "loaded 10, quarantined 1" in summary
    assert "999990317" not in json.dumps([ti.xcom for ti in loads]) + summary


def test_reprocess_dag_loads_what_a_fixed_table_now_maps(
    airflow_env: AirflowEnv, tmp_path: Path
) -> None:
    folder = tmp_path / "ws"
    shutil.copytree(SAMPLES / "hl7v2", folder / "inbox", ignore=shutil.ignore_patterns("expected"))
    shutil.copytree(ROOT / "mappings", folder / "mappings")
    withheld = folder / "oru_r01.yaml"
    (folder / "mappings" / "hl7v2" / "oru_r01.yaml").rename(withheld)
    (folder / "pipelines.yaml").write_text(
        "format_version: 1\nsources:\n  - name: lab\n    format: hl7v2\n    inbox: inbox\n"
        "    target: target\n    mappings: mappings\n    schedule: null\n", encoding="utf-8")
    env = airflow_env.with_environ(BABYCONNECT_PIPELINES=str(folder / "pipelines.yaml"),
                                   BABYCONNECT_ID_KEY="dag-test-key-0123456789abcdef")
    nightly = env.dag_test("babyconnect_nightly_lab")
    assert nightly.state == "success"
    assert sum(ti.xcom["quarantined"] for ti in nightly.mapped("convert_load")) == 4  # 3 ORU

    withheld.rename(folder / "mappings" / "hl7v2" / "oru_r01.yaml")  # the mapping author's fix
    again = env.dag_test("babyconnect_reprocess_lab")
    assert again.state == "success", again.states()
    result = again.task("run_again").xcom
    assert (result["records"], result["loaded"], result["quarantined"]) == (4, 3, 1)
    observations = (folder / "target" / "ndjson" / "Observation.ndjson").read_text()
    assert observations.count('"resourceType":"Observation"') == 14
