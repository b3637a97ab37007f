"""A load killed mid-run (SIGKILL) and run again ends as an uninterrupted load into a new server.

``babyconnect load`` runs in a child process against the fault proxy, which counts the bundles
that reach it; the child is killed after a random number of them (the seed is in the test id).
In one case the last bundle is written by the server but its answer is held back, so the child
dies not knowing: the re-run sends it again, which may add a version but never a resource.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from converters.ledger import Ledger
from tests.conftest import ROOT
from tests.integration.conftest import (
    BROKEN_MESSAGE,
    SAMPLE_RECORDS,
    Reference,
    Server,
    assert_same_content,
    cli_args,
    files_balance,
    quarantine_reasons,
    reconcile,
)
from tests.support.fault_proxy import Fault, FaultProxy, Predicate, fault_proxy

pytestmark = pytest.mark.server

BUNDLES = SAMPLE_RECORDS - 1  # with --group-size 1, one POST per record that converts
WAIT = 60.0  # generous bound on a child run; the test ends sooner unless something hangs


def _nth_post(n: int, reached: threading.Event) -> Predicate:
    """Match the n-th POST the proxy sees, and signal that it arrived."""
    seen = 0

    def when(method: str, path: str, body: bytes) -> bool:
        nonlocal seen
        if method != "POST":
            return False
        seen += 1
        if seen == n:
            reached.set()
        return seen == n

    return when


def _start_load(target: str, state: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "converters.cli", *cli_args("load", target, state,
                                                                  "--concurrency", "1")]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _kill_while_an_answer_is_held(proxy: FaultProxy, child: subprocess.Popen, n: int) -> None:
    reached = threading.Event()
    proxy.add(Fault("slow", delay=WAIT, when=_nth_post(n, reached)))
    _wait_for(reached.is_set, f"bundle {n}")
    time.sleep(1.0)  # the server writes the bundle; its answer waits in the proxy
    child.send_signal(signal.SIGKILL)


def _kill_at_a_random_moment(proxy: FaultProxy, child: subprocess.Popen, n: int) -> None:
    _wait_for(lambda: proxy.traffic.received >= n, f"{n} bundles")
    time.sleep(random.Random(n).uniform(0.0, 0.05))
    child.send_signal(signal.SIGKILL)


KILLS = {"answer held back": _kill_while_an_answer_is_held,
         "random moment": _kill_at_a_random_moment}
SEED = int(os.environ.get("BABYCONNECT_TEST_SEED", random.randrange(1_000_000)))


@pytest.mark.parametrize("how", list(KILLS))
@pytest.mark.parametrize("seed", [SEED])
def test_a_load_killed_and_run_again_ends_as_an_uninterrupted_load(
    how: str, seed: int, fresh_server: Server, reference: Reference, tmp_path: Path
):
    state = tmp_path / "state"
    kill_after = random.Random(f"{seed}-{how}").randint(2, BUNDLES - 2)

    with fault_proxy(fresh_server.url) as proxy:
        child = _start_load(proxy.url, state)
        KILLS[how](proxy, child, kill_after)
        killed = child.wait(timeout=WAIT)
        after_kill = reconcile(state)

        proxy.faults.clear()
        rerun = _start_load(proxy.url, state)
        _, errors = rerun.communicate(timeout=WAIT)

    assert killed == -signal.SIGKILL
    assert files_balance(after_kill, allow_incomplete=True) == []
    assert _unfinished_runs(state) >= 1
    # 1 when the re-run meets the broken batch message, 0 when the killed run had done that file.
    assert rerun.returncode in (0, 1), errors.decode(errors="replace")[-2000:]
    assert set(quarantine_reasons(state)) == {BROKEN_MESSAGE}
    assert files_balance(reconcile(state)) == []
    assert_same_content(fresh_server.state(), reference.state)


def _unfinished_runs(state: Path) -> int:
    ledger = Ledger(f"sqlite:///{(state / 'ledger.db').resolve()}")
    try:
        return sum(1 for run in ledger.runs() if run["status"] == "running")
    finally:
        ledger.close()
