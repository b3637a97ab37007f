"""A fault-injecting HTTP proxy for loader tests: loopback only, threaded, bounded.

It forwards requests to an upstream server (the test FHIR server) and, for requests matching a
rule, injects a fault instead of, or on top of, the upstream answer:

* ``status``: answer 503/429/... itself (with ``Retry-After``) without forwarding;
* ``drop``: close the connection without an answer, before forwarding or after it (the server
  did the work but the client never hears about it);
* ``slow``: forward, then hold the answer back for ``delay`` seconds (past the client timeout);
* ``reject``: answer a 4xx with an OperationOutcome without forwarding.

Each rule fires ``times`` times for matching requests, then stands aside. The proxy counts the
requests it saw and forwarded so tests can assert on the traffic.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

MAX_BODY = 64 * 1024 * 1024
MAX_CONCURRENT = 32
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}

Predicate = Callable[[str, str, bytes], bool]  # (method, path, body) -> match


def any_request(method: str, path: str, body: bytes) -> bool:
    """Match every request."""
    return True


def body_contains(text: str) -> Predicate:
    """Match requests whose body contains ``text`` (e.g. a resource id)."""
    needle = text.encode()
    return lambda method, path, body: needle in body


@dataclass
class Fault:
    """One injected fault: what to do, to which requests, how many times."""

    kind: str  # "status" | "drop" | "slow" | "reject"
    times: int = 1
    when: Predicate = any_request
    status: int = 503
    retry_after: str | None = None
    delay: float = 0.0
    after_forward: bool = False  # for "drop": let the server do the work first
    outcome: dict | None = None
    fired: int = 0

    @property
    def status_sent(self) -> bool:
        """True when the proxy answers with ``status`` itself."""
        return self.kind in ("status", "reject")

    def take(self, method: str, path: str, body: bytes) -> bool:
        if self.fired >= self.times or not self.when(method, path, body):
            return False
        self.fired += 1
        return True


@dataclass
class Traffic:
    """What the proxy saw."""

    received: int = 0
    forwarded: int = 0
    injected: dict[str, int] = field(default_factory=dict)


class FaultProxy:
    """Forward loopback HTTP to ``upstream`` and inject the queued faults."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.upstream_path = parts.path.rstrip("/")
        self.faults: list[Fault] = []
        self.traffic = Traffic()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The proxy's equivalent of the upstream base URL."""
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}{self.upstream_path}"

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _pick(self, method: str, path: str, body: bytes) -> Fault | None:
        with self._lock:
            self.traffic.received += 1
            for fault in self.faults:
                if fault.take(method, path, body):
                    key = f"{fault.kind}:{fault.status}" if fault.status_sent else fault.kind
                    self.traffic.injected[key] = self.traffic.injected.get(key, 0) + 1
                    return fault
        return None

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        with self._lock:
            self.traffic.forwarded += 1
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        try:
            conn.request(method, path, body=body or None, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
            return response.status, kept, payload
        finally:
            conn.close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                """Stay quiet: request lines of a FHIR proxy may carry identifiers."""

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._handle()

            do_POST = do_PUT = do_DELETE = do_GET  # noqa: N815

            def _handle(self) -> None:
                with proxy._slots:
                    length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
                    body = self.rfile.read(length) if length else b""
                    fault = proxy._pick(self.command, self.path, body)
                    self._serve(fault, body)

            def _serve(self, fault: Fault | None, body: bytes) -> None:
                if fault is not None and fault.kind == "drop" and not fault.after_forward:
                    return self._drop()
                if fault is not None and fault.kind in ("status", "reject"):
                    return self._answer_fault(fault)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                status, response_headers, payload = proxy._forward(
                    self.command, self.path, headers, body
                )
                if fault is not None and fault.kind == "drop":
                    return self._drop()
                if fault is not None and fault.kind == "slow":
                    time.sleep(fault.delay)
                self._reply(status, response_headers, payload)

            def _answer_fault(self, fault: Fault) -> None:
                headers = [("Content-Type", "application/fhir+json")]
                if fault.retry_after is not None:
                    headers.append(("Retry-After", fault.retry_after))
                outcome = fault.outcome or {
                    "resourceType": "OperationOutcome",
                    "issue": [
                        {
                            "severity": "error",
                            "code": "transient",
                            "diagnostics": "injected by the fault proxy",
                        }
                    ],
                }
                self._reply(fault.status, headers, json.dumps(outcome).encode())

            def _reply(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
                try:
                    self.send_response(status)
                    for key, value in headers:
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up (timeout): fine

            def _drop(self) -> None:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        return Handler


@contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    """Run a FaultProxy in front of ``upstream`` for the duration of the block."""
    proxy = FaultProxy(upstream).start()
    try:
        yield proxy
    finally:
        proxy.stop()
