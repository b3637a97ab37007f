"""The command line on the HL7v2 samples: the summary, the exit code, and no patient data in logs."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from converters.cli import EXIT_QUARANTINED, main
from tests.conftest import SAMPLES, corpus_path

HL7_SAMPLES = SAMPLES / "hl7v2"


def _identifying_values() -> set[str]:
    """BSNs, names and birth dates that occur in the samples (read from PID, NK1)."""
    values: set[str] = set()
    for path in HL7_SAMPLES.glob("*.hl7"):
        text = path.read_bytes().decode("utf-8", errors="replace")
        values.update(re.findall(r"\b999\d{6}\b", text))
        for line in re.split(r"[\r\n]+", text):
            fields = line.split("|")
            if fields[0] in ("PID", "NK1") and len(fields) > 5:
                names = fields[5] if fields[0] == "PID" else fields[2]
                for part in re.split(r"[\^&~]", names):
                    if len(part) > 3 and part not in {"Vries", "NL1", "NL2", "NL3", "NL4"}:
                        values.add(part)
            if fields[0] == "PID" and len(fields) > 7 and fields[7]:
                values.add(fields[7][:8])
    values.discard("")
    return values


def test_identifying_values_are_found_in_the_samples() -> None:
    values = _identifying_values()
    assert "999990317" in values and "19920314" in values and len(values) > 10


def test_convert_with_debug_logging_writes_no_patient_data(
    tmp_path: Path, id_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    code = main(["--log-level", "debug", "convert", str(HL7_SAMPLES), "--out",
                 str(tmp_path / "target"), "--quiet"])
    assert code == EXIT_QUARANTINED
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "LINDE-ADT-0102" in logged  # where is logged ...
    leaked = sorted(v for v in _identifying_values() if v in logged)
    assert leaked == []  # ... never what


def test_convert_writes_bundles_ndjson_quarantine_and_a_report_that_adds_up(
    tmp_path: Path, id_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "target"
    assert main(["convert", str(HL7_SAMPLES), "--out", str(target)]) == EXIT_QUARANTINED
    summary = capsys.readouterr().out
    assert "quarantined 1" in summary and "the message type is missing" in summary
    report = json.loads((target / "report.json").read_text())
    outcomes = report["outcomes"]
    assert report["records_in"] == 11
    assert outcomes["loaded"] + outcomes["quarantined"] + outcomes.get("skipped", 0) == 11
    assert report["quarantined"][0]["field"] == "MSH-9"
    assert [u["code"] for u in report["unmapped_codes"]] == ["ZZX"]
    assert len(list((target / "bundles").rglob("*.json"))) == outcomes["loaded"]
    patients = (target / "ndjson" / "Patient.ndjson").read_text().splitlines()
    assert len({json.loads(line)["id"] for line in patients}) == len(patients)
    quarantined = [p for p in (target / "quarantine").rglob("*.hl7") if p.is_file()]
    assert len(quarantined) == 1 and quarantined[0].read_bytes().startswith(b"MSH|")


def test_the_same_woman_in_several_messages_is_one_patient(tmp_path: Path, id_key: str) -> None:
    target = tmp_path / "target"
    main(["convert", str(HL7_SAMPLES), "--out", str(target), "--quiet"])
    women = [json.loads(line) for line in
             (target / "ndjson" / "Patient.ndjson").read_text().splitlines()]
    with_bsn = [p for p in women if any(i.get("value") == "999990317"
                                        for i in p.get("identifier", []))]
    assert len(with_bsn) == 1


def test_a_second_run_converges_and_loads_nothing_new(tmp_path: Path, id_key: str) -> None:
    target = tmp_path / "target"
    main(["convert", str(HL7_SAMPLES), "--out", str(target), "--quiet"])
    before = {p.name: p.read_text() for p in (target / "ndjson").glob("*.ndjson")}
    assert main(["convert", str(HL7_SAMPLES), "--out", str(target), "--quiet"]) == 0
    after = {p.name: p.read_text() for p in (target / "ndjson").glob("*.ndjson")}
    assert after == before
    report = json.loads((target / "report.json").read_text())
    assert report["outcomes"].get("loaded", 0) == 0


def test_an_invalid_bsn_is_not_emitted_as_a_bsn(tmp_path: Path, id_key: str) -> None:
    target = tmp_path / "target"
    main(["convert", str(HL7_SAMPLES / "adt_a04_invalid_bsn.hl7"), "--out", str(target),
          "--quiet"])
    ndjson = (target / "ndjson" / "Patient.ndjson").read_text()
    assert "999990312" not in ndjson
    report = json.loads((target / "report.json").read_text())
    assert report["issues"][0]["issue"] == "invalid-bsn"


@pytest.mark.parametrize("folder", ["nl-hl7v2-mmerlijn", "hl7v2-generic-msfhirconverter"])
def test_every_corpus_hl7v2_file_converts_or_is_quarantined_with_a_specific_reason(
    folder: str, tmp_path: Path, id_key: str
) -> None:
    source = corpus_path(folder)
    target = tmp_path / "target"
    main(["convert", str(source), "--out", str(target), "--quiet", "--validation", "warn"])
    report = json.loads((target / "report.json").read_text())
    files = list(source.glob("*.hl7"))
    assert {Path(f["file"]).name for f in report["files"]} == {f.name for f in files}
    outcomes = report["outcomes"]
    assert outcomes.get("loaded", 0) + outcomes.get("quarantined", 0) == report["records_in"]
    for item in report["quarantined"]:
        assert item["reason"] and item["code"] in {"unsupported", "missing-required", "malformed"}


def test_a_lab_message_mention_never_replaces_the_admission_record_whatever_the_order(
    tmp_path: Path, id_key: str
) -> None:
    """The ORU (newer) only mentions the woman; the ADT (older) is her record. Converted in
    either order, and in separate runs, the NDJSON holds the ADT's version."""
    adt, oru = HL7_SAMPLES / "adt_a04_pregnant_woman.hl7", HL7_SAMPLES / "oru_r01_mllp_framed.hl7"
    results = []
    for order in ((adt, oru), (oru, adt)):
        target = tmp_path / f"t{len(results)}"
        for path in order:  # one run per file, as parallel tasks would do
            main(["convert", str(path), "--out", str(target), "--quiet"])
        women = [json.loads(line) for line in
                 (target / "ndjson" / "Patient.ndjson").read_text().splitlines()]
        eva = next(p for p in women if any(i.get("value") == "999990317"
                                           for i in p.get("identifier", [])))
        results.append(eva)
    assert results[0] == results[1]
    assert results[0].get("address")  # the admission's full record, not the lab's mention


def test_a_file_the_reader_gives_up_on_is_quarantined_and_the_run_goes_on(
    tmp_path: Path, id_key: str
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "empty.csv").write_bytes(b"")
    (inbox / "woman.hl7").write_bytes((HL7_SAMPLES / "adt_a04_pregnant_woman.hl7").read_bytes())
    target = tmp_path / "target"
    assert main(["convert", str(inbox), "--out", str(target), "--quiet"]) == EXIT_QUARANTINED
    report = json.loads((target / "report.json").read_text())
    assert report["outcomes"] == {"loaded": 1, "quarantined": 1}
    assert report["quarantined"][0]["reason"] == "the file has no header row"
    assert main(["reconcile", "--state", str(target)]) == 0


def test_reprocess_reports_a_quarantined_file_it_still_cannot_read(
    tmp_path: Path, id_key: str
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "empty.csv").write_bytes(b"")
    target = tmp_path / "target"
    main(["convert", str(inbox), "--out", str(target), "--quiet"])
    assert main(["reprocess", "--out", str(target), "--quiet"]) == EXIT_QUARANTINED
    assert list((target / "quarantine").rglob("*.reason.json"))  # still there, with its reason
    assert main(["reconcile", "--state", str(target)]) == 0
