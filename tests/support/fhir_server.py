"""A real FHIR server for the integration tests: sekmet-fhir on loopback, SQLite storage.

sekmet-fhir is an R4 server; the pipeline sends Babyconnect STU3 content (Nictiz ``bc-*``
profiles on FHIR 3.0.2). So the launcher turns inbound validation off and teaches the server the
two STU3-only resource types we emit, ``BodySite`` (``bc-Fetus``) and ``ReferralRequest``
(``bc-ReferralRequest``); R4 replaced them by BodyStructure and ServiceRequest. The server keeps
its R4 behaviour otherwise: every update writes a new version, so skipping content that is
already loaded stays the pipeline's job.

Run ``python -m tests.support.fhir_server --port 8090 --data DIR`` for scripts; tests use the
session-scoped ``fhir_server`` fixture, which yields the base URL (``http://127.0.0.1:P/fhir``).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
URL_ENV = "BABYCONNECT_TEST_FHIR_URL"
STARTUP_TIMEOUT = 60.0

# STU3 3.0.2 resource types that R4 removed but Babyconnect profiles use
# (http://nictiz.nl/fhir/StructureDefinition/bc-Fetus, .../bc-ReferralRequest).
STU3_ONLY_TYPES = frozenset({"BodySite", "ReferralRequest"})

# Minimal search parameters for those types, in sekmet's table syntax (name:kind:path[:target]),
# taken from the STU3 search parameter registry, so conditional references can find them.
STU3_SEARCH_PARAMS = {
    "BodySite": "identifier:token:identifier\npatient:reference:patient:Patient\ncode:token:code",
    "ReferralRequest": (
        "identifier:token:identifier\nsubject:reference:subject\n"
        "patient:reference:subject:Patient\nstatus:token:status"
    ),
}


def base_url(port: int) -> str:
    """Return the FHIR base URL of a server on this loopback port."""
    return f"http://127.0.0.1:{port}/fhir"


def free_port() -> int:
    """Return a TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accept_stu3_types() -> None:
    """Add the STU3-only types to every sekmet module that copied the R4 type list at import."""
    from sekmet.auth import server as auth_server
    from sekmet.fhir import common, router, service, validation
    from sekmet.fhir.search_params import PARAMS, SearchParam

    types = common.R4_RESOURCE_TYPES | STU3_ONLY_TYPES
    for module in (common, router, service, validation, auth_server):
        module.R4_RESOURCE_TYPES = types  # type: ignore[attr-defined]
    for rtype, block in STU3_SEARCH_PARAMS.items():
        params = {}
        for line in block.splitlines():
            name, kind, path, *target = line.split(":")
            params[name] = SearchParam(name, kind, (path,), target[0] if target else None)
        PARAMS[rtype] = params


def _settings(port: int, data_dir: Path):  # -> sekmet.config.Settings
    from sekmet.config import Settings

    return Settings.model_validate(
        {
            "base_url": base_url(port),
            "host": "127.0.0.1",
            "port": port,
            "data_dir": str(data_dir),
            "validation": {"inbound": "off"},  # STU3 content does not pass R4 models
            "simulator": {"enabled": False},  # no hospital workflows reacting to our writes
            "log_inbound": False,  # the traffic log would store every body (patient data)
            "own_private_key_path": str(data_dir / "keys" / "sekmet_private.pem"),
        }
    )


def serve(port: int, data_dir: Path) -> None:
    """Run the server in this process until interrupted."""
    import uvicorn
    from sekmet.main import create_app

    _accept_stu3_types()
    app = create_app(_settings(port, data_dir))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def wait_until_ready(
    url: str, timeout: float = STARTUP_TIMEOUT, process: subprocess.Popen | None = None
) -> None:
    """Poll ``metadata`` until the server answers, or raise RuntimeError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"FHIR server exited with code {process.returncode} while starting")
        try:
            if httpx.get(f"{url}/metadata", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"FHIR server at {url} not ready after {timeout:.0f}s")


def start_fhir_server(port: int, data_dir: Path) -> subprocess.Popen:
    """Start sekmet-fhir on 127.0.0.1:``port`` in a child process and wait until it is ready."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "tests.support.fhir_server",
        "--port",
        str(port),
        "--data",
        str(data_dir),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])
        ),
    }
    log = open(data_dir / "server.log", "ab")  # noqa: SIM115 - the child owns it until it ends
    process = subprocess.Popen(command, cwd=data_dir, env=env, stdout=log, stderr=log)
    log.close()
    try:
        wait_until_ready(base_url(port), process=process)
    except BaseException:
        stop_fhir_server(process)
        raise
    return process


def stop_fhir_server(process: subprocess.Popen) -> None:
    """Stop a server started by :func:`start_fhir_server`."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def fhir_server() -> Iterator[str]:
    """Yield the base URL of a running FHIR server (``$BABYCONNECT_TEST_FHIR_URL`` or our own)."""
    external = os.environ.get(URL_ENV)
    if external:
        yield external.rstrip("/")
        return
    with tempfile.TemporaryDirectory(prefix="sekmet-") as tmp:
        port = free_port()
        process = start_fhir_server(port, Path(tmp))
        try:
            yield base_url(port)
        finally:
            stop_fhir_server(process)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description="sekmet-fhir for Babyconnect tests (STU3 content)")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--data", type=Path, required=True, help="directory for the SQLite store")
    args = parser.parse_args(argv)
    args.data.mkdir(parents=True, exist_ok=True)
    serve(args.port, args.data)


if __name__ == "__main__":
    main()
