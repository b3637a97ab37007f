"""The ledger: resume positions, upserts, reconciliation, quarantine listing, shared use.

Runs on SQLite and on PostgreSQL: the one ``BABYCONNECT_TEST_POSTGRES_URL`` points at
(``postgresql+psycopg2://...``), else the throwaway cluster of ``tests/support/services.py``.
Tests use fresh checksums and run ids, so a shared PostgreSQL database needs no cleaning.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from converters.ledger import Ledger
from converters.records import Outcome

PROJECT_ROOT = Path(__file__).resolve().parents[1]
POSTGRES_ENV = "BABYCONNECT_TEST_POSTGRES_URL"
TARGET = "fhir://test-server"


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    url = os.environ.get(POSTGRES_ENV)
    if url:
        return url
    postgres = request.getfixturevalue("postgres_service")  # skips with a reason when absent
    database = f"ledger_{uuid.uuid4().hex[:10]}"
    postgres.create_database(database)
    return postgres.url(database=database)


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    ledger = Ledger(ledger_url)
    yield ledger
    ledger.close()


def _checksum() -> str:
    return uuid.uuid4().hex


def _record(
    ledger: Ledger,
    run_id: str,
    file_id: int,
    position: int,
    outcome: Outcome = Outcome.LOADED,
    **extra: str,
) -> None:
    ledger.record_outcome(
        run_id=run_id,
        file_id=file_id,
        position=position,
        record_id=f"MSG{position:04d}",
        content_hash=f"hash-{file_id}-{position}",
        outcome=outcome,
        **extra,
    )


def _start(ledger: Ledger, checksum: str, source: str = "midwife-practice") -> tuple[str, int]:
    run_id = ledger.start_run(source=source, kind="hl7v2", target=TARGET)
    file_id = ledger.begin_file(
        run_id=run_id, path="in/export.hl7", checksum=checksum, size=100, target=TARGET
    )
    return run_id, file_id


def test_a_resumed_run_skips_the_positions_an_interrupted_run_finished(ledger: Ledger):
    checksum = _checksum()
    first_run, first_file = _start(ledger, checksum)
    for position in (1, 2, 3):
        _record(ledger, first_run, first_file, position)
    # The first run stops here: no finish_file, no finish_run.

    done = ledger.done_positions(checksum=checksum, target=TARGET)
    second_run, second_file = _start(ledger, checksum)
    for position in (4, 5):
        _record(ledger, second_run, second_file, position)
    ledger.finish_file(second_file, records=5)

    assert done == {1, 2, 3}
    assert ledger.done_positions(checksum=checksum, target=TARGET) == {1, 2, 3, 4, 5}
    assert ledger.file_done(path="elsewhere/renamed.hl7", checksum=checksum, target=TARGET)
    assert ledger.reconcile(second_run).ok
    (interrupted,) = ledger.reconcile(first_run).files
    assert interrupted.state == "resumed" and interrupted.input_records is None


def test_positions_are_per_target(ledger: Ledger):
    checksum = _checksum()
    run_id, file_id = _start(ledger, checksum)
    _record(ledger, run_id, file_id, 1)

    assert ledger.done_positions(checksum=checksum, target="fhir://another-server") == set()
    assert not ledger.file_done(path="in/export.hl7", checksum=checksum, target=TARGET)


def test_a_reprocessed_record_gets_its_new_outcome_instead_of_a_second_row(ledger: Ledger):
    checksum = _checksum()
    run_id, file_id = _start(ledger, checksum)
    _record(
        ledger,
        run_id,
        file_id,
        1,
        Outcome.QUARANTINED,
        reason="BSN fails the 11 test",
        reason_code="invalid-bsn",
    )
    retry_run, retry_file = _start(ledger, checksum)
    _record(ledger, retry_run, retry_file, 1, Outcome.LOADED, server_ids=["Patient/1/_history/1"])  # type: ignore[arg-type]
    ledger.finish_file(retry_file, records=1)

    (row,) = ledger.reconcile(retry_run).files
    assert (row.loaded, row.quarantined, row.difference) == (1, 0, 0)
    assert ledger.quarantined(run_id=run_id) == []


def test_a_record_neither_loaded_nor_quarantined_nor_skipped_is_flagged(ledger: Ledger):
    run_id, file_id = _start(ledger, _checksum())
    _record(ledger, run_id, file_id, 1, Outcome.LOADED)
    _record(
        ledger,
        run_id,
        file_id,
        2,
        Outcome.SKIPPED,
        reason="content already loaded",
        reason_code="unchanged",
    )
    _record(
        ledger,
        run_id,
        file_id,
        3,
        Outcome.QUARANTINED,
        reason="unsupported message type",
        reason_code="unsupported",
    )
    ledger.finish_file(file_id, records=4)

    reconciliation = ledger.reconcile(run_id)

    (row,) = reconciliation.files
    assert not reconciliation.ok
    assert (row.loaded, row.skipped, row.quarantined, row.difference) == (1, 1, 1, 1)
    assert reconciliation.as_dict()["files"][0]["accounted"] == 3


def test_a_file_the_run_never_finished_is_flagged_as_incomplete(ledger: Ledger):
    run_id, file_id = _start(ledger, _checksum())
    _record(ledger, run_id, file_id, 1)

    (row,) = ledger.reconcile(run_id).files

    assert row.state == "incomplete" and row.difference is None and not row.ok


def test_content_loaded_is_true_only_for_loaded_content_in_that_target(ledger: Ledger):
    run_id, file_id = _start(ledger, _checksum())
    _record(ledger, run_id, file_id, 1, Outcome.LOADED)
    _record(ledger, run_id, file_id, 2, Outcome.QUARANTINED, reason="r", reason_code="c")

    assert ledger.content_loaded(content_hash=f"hash-{file_id}-1", target=TARGET)
    assert not ledger.content_loaded(content_hash=f"hash-{file_id}-2", target=TARGET)
    assert not ledger.content_loaded(content_hash=f"hash-{file_id}-1", target="fhir://other")


def test_quarantine_lists_place_and_reason_filtered_by_source_and_run(ledger: Ledger):
    source = f"hospital-{uuid.uuid4().hex[:8]}"
    run_id, file_id = _start(ledger, _checksum(), source=source)
    _record(
        ledger,
        run_id,
        file_id,
        7,
        Outcome.QUARANTINED,
        reason="PID-3 has no BSN",
        reason_code="missing-bsn",
        quarantine_path="quarantine/run/7.hl7",
    )
    other_run, other_file = _start(ledger, _checksum(), source="someone-else")
    _record(ledger, other_run, other_file, 1, Outcome.QUARANTINED, reason="r", reason_code="c")

    (entry,) = ledger.quarantined(source=source)

    assert (entry.path, entry.position, entry.record_id) == ("in/export.hl7", 7, "MSG0007")
    assert (entry.reason_code, entry.quarantine_path, entry.run_id) == (
        "missing-bsn",
        "quarantine/run/7.hl7",
        run_id,
    )
    assert [e.run_id for e in ledger.quarantined(run_id=other_run)] == [other_run]


def test_runs_keep_their_parameters_and_final_status(ledger: Ledger):
    run_id = ledger.start_run(
        source="s",
        kind="csv",
        target=TARGET,
        run_id=f"run-{_checksum()}",
        params={"pipeline": "astraia"},
    )
    ledger.finish_run(run_id, "success")

    (run,) = [r for r in ledger.runs() if r["run_id"] == run_id]

    assert run["params"] == {"pipeline": "astraia"}
    assert run["status"] == "success" and run["finished_at"] is not None


_WRITER = """
import sys
from converters.ledger import Ledger
from converters.records import Outcome
ledger = Ledger(sys.argv[1])
run_id = ledger.start_run(source="s", kind="hl7v2", target="t")
file_id = ledger.begin_file(run_id=run_id, path="p", checksum=sys.argv[2], size=1, target="t")
for position in range(int(sys.argv[3]), int(sys.argv[3]) + 150):
    ledger.record_outcome(run_id=run_id, file_id=file_id, position=position, record_id="r",
                          content_hash="h", outcome=Outcome.LOADED)
"""


def test_several_processes_can_write_one_sqlite_ledger_at_once(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}

    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, url, "same-file", str(start)],
            env=env,
            stderr=subprocess.PIPE,
        )
        for start in (1, 101)
    ]  # overlapping positions 101..150 exercise the upsert
    errors = [w.communicate(timeout=120)[1] for w in writers]

    assert [w.returncode for w in writers] == [0, 0], errors
    assert Ledger(url).done_positions(checksum="same-file", target="t") == set(range(1, 251))


def test_outcomes_of_a_batch_are_stored_in_one_call_and_upserted(ledger_url: str) -> None:
    ledger = Ledger(ledger_url)
    run_id = ledger.start_run(source="s", kind="convert", target=TARGET)
    checksum = uuid.uuid4().hex
    file_id = ledger.begin_file(run_id=run_id, path="batch.hl7", checksum=checksum, size=1,
                                target=TARGET)
    hashes = [uuid.uuid4().hex for _ in range(3)]
    rows = [{"run_id": run_id, "file_id": file_id, "position": i + 1, "record_id": f"m{i}",
             "content_hash": h, "outcome": Outcome.LOADED} for i, h in enumerate(hashes)]
    ledger.record_outcomes(rows)
    ledger.record_outcomes([{**rows[2], "outcome": Outcome.QUARANTINED, "reason": "why"}])
    ledger.finish_file(file_id, records=3)

    assert ledger.done_positions(checksum=checksum, target=TARGET) == {1, 2, 3}
    assert ledger.loaded_contents(content_hashes=hashes + ["absent"], target=TARGET) == set(
        hashes[:2])
    assert ledger.reconcile(run_id).ok
