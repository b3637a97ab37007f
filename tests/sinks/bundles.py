"""Synthetic transaction Bundles shaped like the converter's output (no real people in them).

Each bundle holds a woman (Patient, conditional update on her BSN, as Babyconnect transactions do)
and one gravidity Observation (LOINC 11996-6, zib-Pregnancy-Gravidity) written with a client id and
pointing at the woman by her ``urn:uuid`` fullUrl.
"""

from __future__ import annotations

import uuid

BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"
TAG_SYSTEM = "urn:babyconnect:test-run"


def synthetic_bsn(number: int) -> str:
    """Return a nine-digit number starting 999 that passes the BSN eleven test (synthetic).

    Distinct ``number`` values below 50 000 give distinct results: of the prefixes 2n and 2n+1
    at least one has a valid check digit, since they differ by 2 in the weighted sum.
    """
    for prefix in (2 * number, 2 * number + 1):
        digits = f"999{prefix:05d}"
        total = sum(int(d) * w for d, w in zip(digits, range(9, 1, -1), strict=True))
        if total % 11 < 10:
            return digits + str(total % 11)
    raise AssertionError("unreachable: one of two neighbouring prefixes is always valid")


def woman_and_gravidity(bsn: str, observation_id: str, tag: str, gravidity: int = 2) -> dict:
    """Return a transaction Bundle: conditional PUT of a Patient, PUT of an Observation."""
    woman_url = f"urn:uuid:{uuid.uuid4()}"
    meta = {"tag": [{"system": TAG_SYSTEM, "code": tag}]}
    woman = {
        "resourceType": "Patient",
        "meta": meta,
        "identifier": [{"system": BSN_SYSTEM, "value": bsn}],
    }
    observation = {
        "resourceType": "Observation",
        "id": observation_id,
        "meta": meta,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "11996-6"}]},
        "subject": {"reference": woman_url},
        "valueQuantity": {"value": gravidity},
    }
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": woman_url,
                "resource": woman,
                "request": {"method": "PUT", "url": f"Patient?identifier={BSN_SYSTEM}|{bsn}"},
            },
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": observation,
                "request": {"method": "PUT", "url": f"Observation/{observation_id}"},
            },
        ],
    }
