"""The FHIR loader against scripted answers (httpx.MockTransport).

Covers retries, final refusals, OAuth2 client credentials, grouping and ordering, settings.
"""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from types import SimpleNamespace

import httpx
import pytest

from converters.errors import ConfigurationError, RejectedByServer, TransientLoadError
from converters.sinks.fhir_server import (
    FhirServerSink,
    RetriesExhausted,
    ServerSettings,
    backoff_delay,
    retry_after_seconds,
    server_ids,
    ssl_verification,
)
from tests.sinks.bundles import synthetic_bsn, woman_and_gravidity

BASE = "https://fhir.example.test/fhir"
OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "invalid", "diagnostics": "bad code"}],
}


def _response_for(request: httpx.Request) -> httpx.Response:
    """Answer a transaction like a server would: one location per entry."""
    bundle = json.loads(request.content)
    entries = []
    for i, entry in enumerate(bundle["entry"]):
        rtype = entry["resource"]["resourceType"]
        entries.append(
            {"response": {"status": "201 Created", "location": f"{BASE}/{rtype}/r{i}/_history/1"}}
        )
    return httpx.Response(
        200, json={"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
    )


class Script:
    """A mock server answering from a queue of canned responses, then like a healthy server."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            answer = self.answers.pop(0) if self.answers else None
        if isinstance(answer, Exception):
            raise answer
        return answer if answer is not None else _response_for(request)


def _sink(script: Script, **settings: object) -> tuple[FhirServerSink, list[float]]:
    client = httpx.Client(transport=httpx.MockTransport(script))
    sink = FhirServerSink(ServerSettings(base_url=BASE, **settings), client=client)
    sleeps: list[float] = []
    sink.sleep = sleeps.append
    return sink, sleeps


def _bundle(n: int = 1) -> dict:
    return woman_and_gravidity(synthetic_bsn(n), f"obs-{n}", "unit")


# -- retries -----------------------------------------------------------------------------------


def test_busy_server_is_retried_until_it_accepts_and_retry_after_seconds_is_honoured():
    script = Script(
        httpx.Response(503, headers={"Retry-After": "7"}),
        httpx.Response(429, headers={"Retry-After": "3"}),
    )
    sink, sleeps = _sink(script)

    ids = sink.send(_bundle())

    assert ids == ["Patient/r0/_history/1", "Observation/r1/_history/1"]
    assert len(script.requests) == 3
    assert sleeps == [7.0, 3.0]


def test_retry_after_as_http_date_is_turned_into_seconds():
    now = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=42), usegmt=True)

    assert retry_after_seconds(later, now=now) == pytest.approx(42.0)
    assert retry_after_seconds("not a date") is None


def test_retry_after_is_capped_by_the_backoff_cap():
    script = Script(httpx.Response(503, headers={"Retry-After": "3600"}))
    sink, sleeps = _sink(script, backoff_cap=5.0)

    sink.send(_bundle())

    assert sleeps == [5.0]


def test_full_jitter_stays_within_the_exponential_ceiling():
    settings = ServerSettings(base_url=BASE, backoff_base=0.5, backoff_cap=4.0)
    rng = random.Random(7)

    delays = {
        attempt: [backoff_delay(attempt, settings, None, rng) for _ in range(200)]
        for attempt in range(1, 7)
    }

    for attempt, values in delays.items():
        ceiling = min(4.0, 0.5 * 2 ** (attempt - 1))
        assert all(0.0 <= v <= ceiling for v in values)
        assert max(values) > ceiling / 2  # jitter spreads over the range, not a fixed pause


def test_dropped_connections_and_timeouts_are_retried():
    request = httpx.Request("POST", BASE)
    script = Script(
        httpx.ConnectError("refused", request=request),
        httpx.ReadTimeout("slow", request=request),
        httpx.RemoteProtocolError("dropped", request=request),
    )
    sink, sleeps = _sink(script)

    assert len(sink.send(_bundle())) == 2
    assert len(sleeps) == 3


def test_server_busy_beyond_the_retry_budget_raises_a_retryable_error():
    script = Script(*[httpx.Response(502) for _ in range(10)])
    sink, _ = _sink(script, max_retries=2)

    with pytest.raises(RetriesExhausted) as raised:
        sink.send(_bundle())

    assert isinstance(raised.value, TransientLoadError)
    assert raised.value.retryable is True
    assert raised.value.status == 502
    assert len(script.requests) == 3


def test_a_final_4xx_is_not_retried_and_keeps_the_operation_outcome():
    script = Script(httpx.Response(422, json=OUTCOME))
    sink, sleeps = _sink(script)

    with pytest.raises(RejectedByServer) as raised:
        sink.send(_bundle())

    assert raised.value.status == 422
    assert raised.value.outcome == OUTCOME
    assert raised.value.retryable is False
    assert len(script.requests) == 1 and sleeps == []


def test_requests_are_fhir_json_transactions_asking_for_minimal_responses():
    script = Script()
    sink, _ = _sink(script, bearer_token="static-token")

    sink.send(_bundle())

    request = script.requests[0]
    assert request.method == "POST" and str(request.url) == BASE
    assert request.headers["Content-Type"].startswith("application/fhir+json")
    assert request.headers["Prefer"] == "return=minimal"
    assert request.headers["Authorization"] == "Bearer static-token"
    assert json.loads(request.content)["type"] == "transaction"


def test_server_ids_are_taken_from_absolute_and_relative_locations():
    response = {
        "entry": [
            {"response": {"location": "https://x.test/fhir/Patient/123/_history/4"}},
            {"response": {"location": "Observation/abc-1/_history/1"}},
            {"response": {"status": "200 OK"}},
        ]
    }

    assert server_ids(response) == ["Patient/123/_history/4", "Observation/abc-1/_history/1", None]


# -- OAuth2 client credentials -----------------------------------------------------------------


class OAuthServer:
    """Token endpoint plus FHIR endpoint that accepts only the newest token."""

    def __init__(self, revoke_first: bool = False) -> None:
        self.issued: list[str] = []
        self.token_requests: list[httpx.Request] = []
        self.revoke_first = revoke_first

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            self.token_requests.append(request)
            self.issued.append(f"token-{len(self.issued) + 1}")
            return httpx.Response(
                200,
                json={"access_token": self.issued[-1], "token_type": "Bearer", "expires_in": 300},
            )
        if self.revoke_first and request.headers.get("Authorization") == "Bearer token-1":
            return httpx.Response(401)
        return _response_for(request)


def _oauth_sink(server: OAuthServer) -> FhirServerSink:
    settings = ServerSettings(
        base_url=BASE,
        oauth_token_url="https://idp.test/token",
        oauth_client_id="loader",
        oauth_client_secret="s3cret",
        oauth_scope="system/*.write",
    )
    client = httpx.Client(transport=httpx.MockTransport(server))
    return FhirServerSink(settings, client=client)


def test_oauth_token_is_fetched_once_and_reused():
    server = OAuthServer()
    sink = _oauth_sink(server)

    sink.send(_bundle(1))
    sink.send(_bundle(2))

    assert len(server.token_requests) == 1
    form = dict(x.split("=") for x in server.token_requests[0].content.decode().split("&"))
    assert form["grant_type"] == "client_credentials"
    assert server.token_requests[0].headers["Authorization"].startswith("Basic ")


def test_a_401_fetches_a_fresh_token_once_and_succeeds():
    server = OAuthServer(revoke_first=True)
    sink = _oauth_sink(server)

    assert len(sink.send(_bundle())) == 2
    assert server.issued == ["token-1", "token-2"]


# -- many bundles ------------------------------------------------------------------------------


def test_group_size_merges_bundles_into_one_transaction_and_splits_the_ids_back():
    script = Script()
    sink, _ = _sink(script, group_size=3, concurrency=1)

    results = list(sink.send_many((f"file.hl7#{n}", _bundle(n)) for n in range(3)))

    assert len(script.requests) == 1
    by_key = {r.key: r for r in results}
    assert by_key["file.hl7#0"].server_ids == ["Patient/r0/_history/1", "Observation/r1/_history/1"]
    assert by_key["file.hl7#2"].server_ids == ["Patient/r4/_history/1", "Observation/r5/_history/1"]


def test_a_refused_group_is_resent_record_by_record_so_only_the_bad_one_fails():
    def server(request: httpx.Request) -> httpx.Response:
        if b"obs-bad" in request.content:
            return httpx.Response(400, json=OUTCOME)
        return _response_for(request)

    client = httpx.Client(transport=httpx.MockTransport(server))
    sink = FhirServerSink(ServerSettings(base_url=BASE, group_size=4), client=client)
    items = [(f"k{n}", _bundle(n)) for n in range(3)]
    items.insert(1, ("bad", woman_and_gravidity(synthetic_bsn(9), "obs-bad", "unit")))

    results = {r.key: r for r in sink.send_many(items)}

    assert sorted(results) == ["bad", "k0", "k1", "k2"]
    assert [k for k, r in results.items() if not r.ok] == ["bad"]
    assert isinstance(results["bad"].error, RejectedByServer)
    assert results["bad"].error.outcome == OUTCOME
    assert results["k1"].server_ids == ["Patient/r0/_history/1", "Observation/r1/_history/1"]


def test_bundles_writing_the_same_patient_are_not_merged_and_not_sent_at_once():
    in_flight: dict[str, int] = {}
    overlaps: list[str] = []
    order: list[int] = []
    lock = threading.Lock()

    def server(request: httpx.Request) -> httpx.Response:
        bundle = json.loads(request.content)
        url = bundle["entry"][0]["request"]["url"]
        with lock:
            in_flight[url] = in_flight.get(url, 0) + 1
            if in_flight[url] > 1 or len(bundle["entry"]) != 2:
                overlaps.append(url)
            order.append(bundle["entry"][1]["resource"]["valueQuantity"]["value"])
        time.sleep(0.02)  # widen the window in which a wrong dispatcher would overlap
        with lock:
            in_flight[url] -= 1
        return _response_for(request)

    client = httpx.Client(transport=httpx.MockTransport(server))
    sink = FhirServerSink(ServerSettings(base_url=BASE, concurrency=4, group_size=2), client=client)
    same_woman = synthetic_bsn(1)
    items = [
        (f"k{n}", woman_and_gravidity(same_woman, f"obs-{n}", "unit", gravidity=n))
        for n in range(6)
    ]

    results = list(sink.send_many(items))

    assert all(r.ok for r in results) and len(results) == 6
    assert overlaps == []
    assert order == [0, 1, 2, 3, 4, 5]


def test_every_key_gets_a_result_when_the_server_stays_down():
    request = httpx.Request("POST", BASE)
    script = Script(*[httpx.ConnectError("down", request=request) for _ in range(100)])
    sink, _ = _sink(script, max_retries=1, group_size=2)

    results = list(sink.send_many((f"k{n}", _bundle(n)) for n in range(5)))

    assert sorted(r.key for r in results) == ["k0", "k1", "k2", "k3", "k4"]
    assert all(not r.ok and isinstance(r.error, TransientLoadError) for r in results)


# -- settings ----------------------------------------------------------------------------------


def test_tls_verification_is_on_by_default_and_off_only_when_asked():
    assert ssl_verification(ServerSettings(base_url=BASE)) is True
    assert ssl_verification(ServerSettings(base_url=BASE, verify_tls=False)) is False


def test_settings_are_read_from_the_environment():
    environ = {
        "BABYCONNECT_FHIR_URL": BASE,
        "BABYCONNECT_FHIR_TOKEN": "t",
        "BABYCONNECT_FHIR_CONCURRENCY": "8",
        "BABYCONNECT_FHIR_VERIFY_TLS": "false",
        "BABYCONNECT_FHIR_CLIENT_ID": "id",
        "BABYCONNECT_FHIR_CLIENT_SECRET": "secret",
        "BABYCONNECT_FHIR_OAUTH_TOKEN_URL": "https://idp.test/token",
    }

    settings = ServerSettings.from_env(environ, group_size=5)

    assert settings.base_url == BASE and settings.bearer_token == "t"
    assert settings.concurrency == 8 and settings.verify_tls is False
    assert settings.oauth_client_id == "id" and settings.group_size == 5


def test_a_malformed_environment_value_names_the_variable_not_the_value():
    environ = {"BABYCONNECT_FHIR_URL": BASE, "BABYCONNECT_FHIR_TIMEOUT": "soon"}

    with pytest.raises(ConfigurationError, match="BABYCONNECT_FHIR_TIMEOUT") as raised:
        ServerSettings.from_env(environ)

    assert "soon" not in str(raised.value)


def test_missing_url_in_the_environment_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="BABYCONNECT_FHIR_URL"):
        ServerSettings.from_env({})


def test_airflow_connection_with_oauth_extra_uses_login_and_password_as_client():
    conn = SimpleNamespace(
        host="fhir.example.test",
        schema="https",
        port=8443,
        login="loader",
        password="secret",
        extra_dejson={
            "base_path": "fhir",
            "concurrency": "2",
            "oauth_token_url": "https://idp.test/token",
        },
    )

    settings = ServerSettings.from_airflow_connection(conn)

    assert settings.base_url == "https://fhir.example.test:8443/fhir"
    assert settings.oauth_client_id == "loader" and settings.oauth_client_secret == "secret"
    assert settings.bearer_token is None and settings.concurrency == 2


def test_airflow_connection_password_without_oauth_is_a_bearer_token():
    conn = SimpleNamespace(
        host="http://127.0.0.1:8090/fhir",
        schema="",
        port=None,
        login=None,
        password="tok",
        extra_dejson={},
    )

    settings = ServerSettings.from_airflow_connection(conn)

    assert settings.base_url == "http://127.0.0.1:8090/fhir" and settings.bearer_token == "tok"


def test_airflow_connection_with_an_unknown_extra_key_is_refused():
    conn = SimpleNamespace(
        host="h", schema="", port=None, login=None, password=None, extra_dejson={"concurency": 2}
    )

    with pytest.raises(ConfigurationError, match="concurency"):
        ServerSettings.from_airflow_connection(conn)
