"""Loading the HL7v2 samples into a real FHIR server through ``babyconnect load``, twice."""

from __future__ import annotations

import httpx
import pytest

from converters.cli import main
from tests.integration.conftest import (
    BROKEN_MESSAGE,
    SAMPLE_RECORDS,
    Reference,
    files_balance,
    last_report,
    load,
    quarantine_reasons,
    reconcile,
)

pytestmark = pytest.mark.server

BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"
EVA_BSN = "999990317"  # the pregnant woman in every sample file
INVALID_BSN = "999990312"  # fails the 11-test in adt_a04_invalid_bsn.hl7


def _search(base: str, rtype: str, **params: str) -> list[dict]:
    bundle = httpx.get(f"{base}/{rtype}", params={"_count": "500", **params}, timeout=30).json()
    return [entry["resource"] for entry in bundle.get("entry") or []]


def _bsns(patient: dict) -> set[str]:
    return {i["value"] for i in patient.get("identifier") or [] if i.get("system") == BSN_SYSTEM}


def test_loading_the_samples_quarantines_only_the_message_without_a_type(reference: Reference):
    report = last_report(reference.state_dir)

    assert reference.exit_code == 1  # the run finished with a record in quarantine
    assert report["outcomes"] == {"loaded": SAMPLE_RECORDS - 1, "quarantined": 1}
    assert set(quarantine_reasons(reference.state_dir)) == {BROKEN_MESSAGE}


def test_the_quarantined_batch_message_carries_its_reason(reference: Reference):
    reason = quarantine_reasons(reference.state_dir)[BROKEN_MESSAGE]

    assert (reason["code"], reason["field"]) == ("malformed", "MSH-9")
    assert reason["file"].endswith("adt_a08_a28_a31_batch.hl7")


def test_the_woman_is_found_once_by_her_bsn(reference: Reference):
    women = _search(reference.server.url, "Patient", identifier=f"{BSN_SYSTEM}|{EVA_BSN}")

    assert len(women) == 1
    assert _bsns(women[0]) == {EVA_BSN}


def test_a_bsn_failing_the_11_test_is_not_stored_as_a_bsn(reference: Reference):
    found = _search(reference.server.url, "Patient", identifier=f"{BSN_SYSTEM}|{INVALID_BSN}")

    assert found == []


def test_every_observation_subject_resolves_and_one_is_the_woman(reference: Reference):
    base = reference.server.url
    observations = _search(base, "Observation")
    subjects = {o["subject"]["reference"] for o in observations if o.get("subject")}

    resolved = [httpx.get(f"{base}/{ref}", timeout=30) for ref in sorted(subjects)]

    assert observations and subjects
    assert all(response.status_code == 200 for response in resolved)
    assert any(_bsns(response.json()) == {EVA_BSN} for response in resolved)


def test_the_ledger_reconciles_after_the_load(reference: Reference):
    result = reconcile(reference.state_dir)

    assert files_balance(result) == []
    assert sum(row.input_records or 0 for row in result.files) == SAMPLE_RECORDS
    assert main(["reconcile", "--state", str(reference.state_dir)]) == 0


def test_loading_the_same_exports_again_writes_no_resource_and_no_version(reference: Reference):
    before = reference.server.state()

    exit_code = load(reference.server.url, reference.state_dir)
    after = reference.server.state()
    report = last_report(reference.state_dir)

    assert exit_code == 0
    assert after == before  # same resources, same versionIds, same number of versions
    assert after.versions == reference.state.versions
    assert report["outcomes"].get("loaded", 0) == 0
    assert {f["status"] for f in report["files"]} == {"unchanged, skipped"}
    assert files_balance(reconcile(reference.state_dir)) == []
