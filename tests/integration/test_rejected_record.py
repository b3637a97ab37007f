"""A record the server refuses is quarantined with the server's OperationOutcome, then reloaded.

The refusal is injected by the fault proxy for one record's bundle only (the server itself
accepts it), so the test shows what the pipeline does with a final 4xx, and that ``reprocess``
loads the record once the cause is gone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from converters.cli import main
from tests.integration.conftest import (
    BROKEN_MESSAGE,
    SAMPLE_RECORDS,
    Reference,
    Server,
    assert_same_content,
    cli_args,
    files_balance,
    last_report,
    load,
    quarantine_reasons,
    reconcile,
)
from tests.support.fault_proxy import Fault, body_contains, fault_proxy

pytestmark = pytest.mark.server

REFUSED_RECORD = "LABLINDE-ORU-0042"  # oru_r01_prenatal_screening.hl7
OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "business-rule",
               "diagnostics": "refused by an injected policy"}],
}


def _provenance_id(reference: Reference, record_id: str) -> str:
    """Return the id of the Provenance our assembler writes for one source record."""
    for (rtype, rid), resource in reference.state.resources.items():
        sources = [e.get("whatIdentifier", {}).get("value", "") for e in resource.get("entity", [])]
        if rtype == "Provenance" and any(s.endswith(f"#{record_id}") for s in sources):
            return rid
    raise AssertionError(f"no Provenance for {record_id} in the reference load")


def test_a_refused_record_is_quarantined_with_the_outcome_and_loads_on_reprocess(
    fresh_server: Server, reference: Reference, tmp_path: Path
):
    state = tmp_path / "state"
    marker = _provenance_id(reference, REFUSED_RECORD)

    with fault_proxy(fresh_server.url) as proxy:
        refusal = proxy.add(Fault("reject", times=100, status=422, outcome=OUTCOME,
                                  when=body_contains(marker)))
        first = load(proxy.url, state, "--group-size", "3")
        first_report = last_report(state)
        refused = quarantine_reasons(state)
        loaded_first = fresh_server.state()

        proxy.faults.remove(refusal)
        second = main(cli_args("reprocess", proxy.url, state))

    assert refusal.fired >= 1
    assert first == 1
    assert first_report["outcomes"] == {"loaded": SAMPLE_RECORDS - 2, "quarantined": 2}
    assert set(refused) == {BROKEN_MESSAGE, REFUSED_RECORD}
    assert refused[REFUSED_RECORD]["code"] == "rejected-by-server"
    assert refused[REFUSED_RECORD]["operation_outcome"] == OUTCOME
    assert ("Provenance", marker) not in loaded_first.resources
    assert loaded_first.counts()["Provenance"] == SAMPLE_RECORDS - 2  # the others did load
    assert second == 1
    assert set(quarantine_reasons(state)) == {BROKEN_MESSAGE}
    assert files_balance(reconcile(state)) == []
    assert_same_content(fresh_server.state(), reference.state)
