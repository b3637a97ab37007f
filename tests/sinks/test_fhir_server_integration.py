"""The FHIR loader against a real server (sekmet-fhir), directly and through a faulty network.

Every test tags what it writes with its own ``meta.tag`` and uses its own BSNs and ids, so tests
sharing the session's server do not see each other's resources.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import httpx
import pytest

from converters.errors import RejectedByServer
from converters.sinks.fhir_server import FhirServerSink, LoadResult, ServerSettings
from tests.sinks.bundles import BSN_SYSTEM, TAG_SYSTEM, synthetic_bsn, woman_and_gravidity
from tests.support.fault_proxy import Fault, body_contains, fault_proxy

pytestmark = pytest.mark.server

# Long enough that a healthy request on a busy two-core machine never times out (a spurious
# timeout would write an extra version and spoil the exact counts), short enough to keep the
# slow-response test quick.
CLIENT_TIMEOUT = 2.0

OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [
        {
            "severity": "error",
            "code": "business-rule",
            "diagnostics": "refused by policy (injected)",
        }
    ],
}


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def server(fhir_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fhir_server, timeout=10) as client:
        yield client


def _tagged(server: httpx.Client, rtype: str, tag: str) -> list[dict]:
    bundle = server.get(f"/{rtype}", params={"_tag": f"{TAG_SYSTEM}|{tag}", "_count": "1000"})
    return [entry["resource"] for entry in bundle.json().get("entry", [])]


def _versions(resources: list[dict]) -> dict[str, int]:
    return {r["id"]: int(r["meta"]["versionId"]) for r in resources}


def _women_with(server: httpx.Client, bsn: str) -> list[dict]:
    bundle = server.get("/Patient", params={"identifier": f"{BSN_SYSTEM}|{bsn}"}).json()
    return [entry["resource"] for entry in bundle.get("entry", [])]


def _items(tag: str, count: int, first: int) -> list[tuple[str, dict]]:
    return [
        (f"export.hl7#{n}", woman_and_gravidity(synthetic_bsn(first + n), f"{tag}-obs-{n}", tag))
        for n in range(count)
    ]


# -- what the server does with our bundles -----------------------------------------------------


def test_observation_reference_by_urn_uuid_is_resolved_to_the_conditionally_updated_woman(
    fhir_server: str, server: httpx.Client, tag: str
):
    bsn = synthetic_bsn(10_001)
    with FhirServerSink(ServerSettings(base_url=fhir_server)) as sink:
        ids = sink.send(woman_and_gravidity(bsn, f"{tag}-obs", tag))

    women = _women_with(server, bsn)
    observation = server.get(f"/Observation/{tag}-obs").json()
    assert len(women) == 1
    assert observation["subject"]["reference"] == f"Patient/{women[0]['id']}"
    assert server.get(f"/{observation['subject']['reference']}").status_code == 200
    assert ids == [f"Patient/{women[0]['id']}/_history/1", f"Observation/{tag}-obs/_history/1"]


def test_posting_the_same_bundle_again_matches_the_woman_instead_of_creating_another(
    fhir_server: str, server: httpx.Client, tag: str
):
    bsn = synthetic_bsn(10_002)
    bundle = woman_and_gravidity(bsn, f"{tag}-obs", tag)
    with FhirServerSink(ServerSettings(base_url=fhir_server)) as sink:
        first = sink.send(bundle)
        second = sink.send(bundle)

    women = _women_with(server, bsn)
    assert len(women) == 1
    assert first[0].rsplit("/_history", 1)[0] == second[0].rsplit("/_history", 1)[0]
    # The server writes a new version on every update: skipping unchanged content is ours to do.
    assert women[0]["meta"]["versionId"] == "2"


def test_put_with_a_client_id_creates_the_resource_under_that_id(
    fhir_server: str, server: httpx.Client, tag: str
):
    with FhirServerSink(ServerSettings(base_url=fhir_server)) as sink:
        sink.send(woman_and_gravidity(synthetic_bsn(10_003), f"{tag}-new", tag))

    assert server.get(f"/Observation/{tag}-new").json()["id"] == f"{tag}-new"


def test_stu3_only_body_site_for_a_fetus_is_accepted(
    fhir_server: str, server: httpx.Client, tag: str
):
    bundle = woman_and_gravidity(synthetic_bsn(10_004), f"{tag}-obs", tag)
    fetus = {
        "resourceType": "BodySite",
        "id": f"{tag}-fetus",  # bc-Fetus, SCT 83418008
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "83418008"}]},
        "patient": {"reference": bundle["entry"][0]["fullUrl"]},
    }
    bundle["entry"].append(
        {
            "fullUrl": f"urn:uuid:{uuid.uuid4()}",
            "resource": fetus,
            "request": {"method": "PUT", "url": f"BodySite/{tag}-fetus"},
        }
    )
    with FhirServerSink(ServerSettings(base_url=fhir_server)) as sink:
        sink.send(bundle)

    stored = server.get(f"/BodySite/{tag}-fetus").json()
    assert stored["patient"]["reference"].startswith("Patient/")


def test_a_bundle_the_server_refuses_fails_only_its_own_record_in_a_group(
    fhir_server: str, server: httpx.Client, tag: str
):
    items = _items(tag, 4, first=11_000)
    broken = items[2][1]["entry"][1]
    broken["request"]["url"] = f"Observation/{tag}-other-id"  # id in body != id in URL: 400
    settings = ServerSettings(base_url=fhir_server, group_size=4, concurrency=1)

    with FhirServerSink(settings) as sink:
        results = {r.key: r for r in sink.send_many(items)}

    assert [k for k, r in results.items() if not r.ok] == ["export.hl7#2"]
    refused = results["export.hl7#2"].error
    assert isinstance(refused, RejectedByServer) and refused.status == 400
    assert refused.outcome["resourceType"] == "OperationOutcome"
    assert sorted(_versions(_tagged(server, "Observation", tag))) == sorted(
        f"{tag}-obs-{n}" for n in (0, 1, 3)
    )


# -- through a faulty network ------------------------------------------------------------------


def _load_through(
    proxy_url: str, items: list[tuple[str, dict]], **settings: object
) -> dict[str, LoadResult]:
    values = {"timeout": CLIENT_TIMEOUT, "backoff_base": 0.01, "backoff_cap": 0.05, **settings}
    settings = ServerSettings(base_url=proxy_url, **values)  # type: ignore[arg-type]
    with FhirServerSink(settings) as sink:
        return {r.key: r for r in sink.send_many(items)}


def test_busy_dropping_and_slow_network_still_loads_everything_once(
    fhir_server: str, server: httpx.Client, tag: str, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    items = _items(tag, 16, first=12_000)
    with fault_proxy(fhir_server) as proxy:
        proxy.add(Fault("status", times=3, status=503, retry_after="1"))
        proxy.add(Fault("status", times=2, status=429, retry_after="Wed, 21 Oct 2015 07:28:00 GMT"))
        proxy.add(Fault("drop", times=2))
        proxy.add(Fault("drop", after_forward=True, when=body_contains(f'{tag}-obs-5"')))
        proxy.add(Fault("slow", delay=CLIENT_TIMEOUT + 1.5, when=body_contains(f'{tag}-obs-9"')))

        results = _load_through(proxy.url, items, concurrency=4, max_retries=12)
        injected = dict(proxy.traffic.injected)
    load_log = caplog.text  # the loader's log, before this test's own queries add to it

    assert injected == {"status:503": 3, "status:429": 2, "drop": 3, "slow": 1}
    assert len(results) == 16 and all(r.ok for r in results.values())
    observations = _versions(_tagged(server, "Observation", tag))
    women = _versions(_tagged(server, "Patient", tag))
    assert len(observations) == 16 and len(women) == 16  # nothing created twice
    # Only the two requests the server had done before the client lost the answer were written
    # again on retry (same resource, new version); everything else was written exactly once.
    twice = {oid for oid, version in observations.items() if version > 1}
    assert twice == {f"{tag}-obs-5", f"{tag}-obs-9"}
    assert max(observations.values()) == 2
    assert sum(women.values()) == 16 + 2
    assert "POST /fhir -> 503" in load_log  # where and what status, but:
    assert "fault proxy" not in load_log  # no OperationOutcome text,
    assert not [n for n in range(12_000, 12_016) if synthetic_bsn(n) in load_log]  # no BSN,
    assert tag not in load_log  # no resource id


def test_an_injected_refusal_fails_only_its_record_and_keeps_the_outcome(
    fhir_server: str, server: httpx.Client, tag: str
):
    items = _items(tag, 8, first=13_000)
    with fault_proxy(fhir_server) as proxy:
        proxy.add(
            Fault(
                "reject", times=10, status=422, outcome=OUTCOME, when=body_contains(f'{tag}-obs-6"')
            )
        )
        proxy.add(Fault("status", times=2, status=503, retry_after="0"))

        results = _load_through(proxy.url, items, concurrency=2, group_size=3)

    failed = {k: r for k, r in results.items() if not r.ok}
    assert list(failed) == ["export.hl7#6"]
    assert failed["export.hl7#6"].status == 422
    assert failed["export.hl7#6"].error.outcome == OUTCOME  # type: ignore[union-attr]
    assert server.get(f"/Observation/{tag}-obs-6").status_code == 404
    assert len(_tagged(server, "Observation", tag)) == 7
    assert all(len(r.server_ids) == 2 for r in results.values() if r.ok)
