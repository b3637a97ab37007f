"""Fixtures for the end-to-end load tests: fresh sekmet-fhir servers and a reference load.

Each test that counts resources or versions gets a server of its own (the samples use fixed
BSNs, so two loads into one server would meet). The reference is one uninterrupted load of
``samples/hl7v2`` into a fresh server, read back once per session: the state every faulty,
refused or interrupted load must end in.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from converters.cli import main
from converters.ledger import Ledger, Reconciliation
from tests.conftest import ROOT, SAMPLES
from tests.integration.server_state import ServerState, read_state
from tests.support.fhir_server import base_url, free_port, start_fhir_server, stop_fhir_server

HL7V2 = SAMPLES / "hl7v2"
ID_KEY = "integration-key-not-secret-0123456789abcdef"  # fixed, so ids agree across servers
BROKEN_MESSAGE = "LINDE-ADT-0102"  # the batch message without MSH-9 (samples/hl7v2/README.md)
SAMPLE_RECORDS = 11

# The HL7v2 tables and the code tables they use, copied once per session (see hl7v2_mappings).
_MAPPINGS: list[Path] = []


@dataclass(frozen=True)
class Server:
    """A running sekmet-fhir and what it held before the test wrote to it."""

    url: str
    baseline: ServerState

    def state(self) -> ServerState:
        """Return what the tests wrote: the server's state less its own seeded resources."""
        return read_state(self.url).without(self.baseline)


@dataclass(frozen=True)
class Reference:
    """The samples loaded once, without faults, into a server of their own."""

    server: Server
    state_dir: Path
    exit_code: int
    state: ServerState


@contextmanager
def running_server(data_dir: Path) -> Iterator[Server]:
    """Start sekmet-fhir on a free loopback port for the duration of the block."""
    port = free_port()
    process = start_fhir_server(port, data_dir)
    try:
        url = base_url(port)
        yield Server(url, read_state(url))
    finally:
        stop_fhir_server(process)


def cli_args(command: str, target: str, state: Path, *extra: str) -> list[str]:
    """Return the arguments of a ``load`` or ``reprocess`` of the HL7v2 samples."""
    if command == "load":
        head = ["load", str(HL7V2), "--fhir-url", target]
    else:
        head = ["reprocess", "--out", target]
    return [*head, "--state", str(state), "--id-key", ID_KEY, "--validation", "strict",
            "--mappings", str(_MAPPINGS[0]), "--quiet", *extra]


def load(target: str, state: Path, *extra: str) -> int:
    """Load the HL7v2 samples through the command line, in process; return the exit code."""
    return main(cli_args("load", target, state, *extra))


def reconcile(state: Path) -> Reconciliation:
    """Return the ledger's reconciliation of every run in ``state``."""
    ledger = Ledger(f"sqlite:///{(state / 'ledger.db').resolve()}")
    try:
        return ledger.reconcile()
    finally:
        ledger.close()


def last_report(state: Path) -> dict:
    """Return the newest run report written into ``state``."""
    reports = sorted((state / "reports").glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    return json.loads(reports[-1].read_text(encoding="utf-8"))


def quarantine_reasons(state: Path) -> dict[str, dict]:
    """Return the quarantine's ``.reason.json`` files by record id."""
    reasons = [json.loads(p.read_text(encoding="utf-8"))
               for p in (state / "quarantine").glob("*/*.reason.json")]
    return {reason["record_id"]: reason for reason in reasons}


def assert_same_content(actual: ServerState, expected: ServerState) -> None:
    """Assert equal resources per type and equal content, ids and meta aside."""
    assert actual.counts() == expected.counts()
    missing = expected.content() - actual.content()
    extra = actual.content() - expected.content()
    assert not missing and not extra, f"missing: {list(missing)[:3]}\nextra: {list(extra)[:3]}"


def files_balance(result: Reconciliation, allow_incomplete: bool = False) -> Sequence[str]:
    """Return the paths of files whose records are not all accounted for."""
    return [row.path for row in result.files
            if not (row.ok or (allow_incomplete and row.state == "incomplete"))]


@pytest.fixture(scope="session", autouse=True)
def hl7v2_mappings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Copy the HL7v2 and code tables, so tables of other formats in progress cannot interfere.

    Every run in a session uses the same copy, so the mapping version in Provenance.policy
    agrees between the reference and the load under test.
    """
    folder = tmp_path_factory.mktemp("mappings")
    for part in ("hl7v2", "codes"):
        shutil.copytree(ROOT / "mappings" / part, folder / part)
    _MAPPINGS[:] = [folder]
    return folder


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[Server]:
    """Yield a new, empty sekmet-fhir server for this test only."""
    with running_server(tmp_path / "sekmet") as server:
        yield server


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reference]:
    """Yield the samples loaded once, without faults, into a server of their own."""
    root = tmp_path_factory.mktemp("reference")
    with running_server(root / "sekmet") as server:
        exit_code = load(server.url, root / "state")
        assert exit_code in (0, 1), f"the reference load failed with exit code {exit_code}"
        yield Reference(server, root / "state", exit_code, server.state())


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep backoff short: the faults here come in short bursts, not long outages."""
    monkeypatch.setenv("BABYCONNECT_FHIR_BACKOFF_BASE", "0.05")
    monkeypatch.setenv("BABYCONNECT_FHIR_MAX_RETRIES", "8")
