"""A faulty network between the pipeline and the server: everything loaded once, nothing twice.

The fault proxy answers bursts of 503 and 429 (with Retry-After), drops connections before and
after the server did the work, and holds answers back past the client timeout. The loader
retries what can succeed; the server must end up exactly as after a load without faults.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import (
    SAMPLE_RECORDS,
    Reference,
    Server,
    assert_same_content,
    files_balance,
    last_report,
    load,
    reconcile,
)
from tests.support.fault_proxy import Fault, fault_proxy

pytestmark = pytest.mark.server

# Short enough that a held-back answer times out within the test, long enough that a healthy
# transaction on a busy two-core machine does not (a spurious timeout would only add a version).
CLIENT_TIMEOUT = "2.0"

FAULTS = {
    "bursts of 503 and of 429 with Retry-After": [
        Fault("status", times=3, status=503, retry_after="0"),
        Fault("status", times=3, status=429, retry_after="1"),
    ],
    "connections dropped before and after the server wrote": [
        Fault("drop", times=2),
        Fault("drop", times=2, after_forward=True),
    ],
    "answers held back past the client timeout": [
        Fault("slow", times=2, delay=3.0),
    ],
}


@pytest.mark.parametrize("case", list(FAULTS))
def test_a_load_through_faults_ends_as_a_load_without_them(
    case: str, fresh_server: Server, reference: Reference, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("BABYCONNECT_FHIR_TIMEOUT", CLIENT_TIMEOUT)
    state = tmp_path / "state"
    faults = [Fault(**{**vars(f), "fired": 0}) for f in FAULTS[case]]  # fresh counters

    with fault_proxy(fresh_server.url) as proxy:
        for fault in faults:
            proxy.add(fault)
        exit_code = load(proxy.url, state, "--concurrency", "2", "--group-size", "2")

    assert [f.fired for f in faults] == [f.times for f in faults]
    assert exit_code == 1  # the broken batch message only
    assert last_report(state)["outcomes"] == {"loaded": SAMPLE_RECORDS - 1, "quarantined": 1}
    assert files_balance(reconcile(state)) == []
    assert_same_content(fresh_server.state(), reference.state)
