"""Kernset 2.2 aanleverbericht: Nictiz's HL7v3 message and its ADA instance give the same FHIR.

Corpus: nictiz-peri-hl7v3-cda/2_2/kernset_aanleverbericht, seven scenarios as ADA
(`scenarioN.xml`) and as the HL7v3 REPC_IN004014NL Nictiz generated from them
(`result_scenarioN.xml`). Scenario 3 reports twins. Resources are compared by profile, code and
value, ids removed, references by target profile (tests/support/xmlsources.canonical). What only
one format carries is named below.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from typing import Any

import pytest

from tests.conftest import corpus_path
from tests.support.xmlsources import bundles, canonical, convert

CASES = ("scenario1", "scenario2_1elijn", "scenario2_2elijn", "scenario3", "scenario4_1elijn",
         "scenario4_2elijn", "scenario5")
TWINS = "scenario3"
# The ADA instance's birth order -> birth weight of that child, in scenario3.ADA.
TWIN_WEIGHTS = {1: 2040, 2: 1580}

# What only the HL7v3 message carries: the wrapper's author and the author's organisation.
ONLY_IN_HL7V3 = {
    "Practitioner|http://fhir.nl/fhir/StructureDefinition/nl-core-practitioner",
    "Organization|http://fhir.nl/fhir/StructureDefinition/nl-core-organization",
}
PREGNANCY = "http://nictiz.nl/fhir/StructureDefinition/zib-Pregnancy"


def _comparable(bundle: dict[str, Any]) -> Counter[str]:
    """Canonical texts without what the HL7v3 rendering adds to ids.

    The HL7v3 ids name their issuer (`urn:oid:` systems) where ADA has a bare number, and the
    generator gave each CareProvisionEvent an id (the pregnancy's dossier number) that these
    ADA instances do not have: both are left out of the comparison, and tested on their own.
    """
    found: Counter[str] = Counter()
    for text, count in canonical(bundle).items():
        resource = json.loads(text)
        if resource["meta"]["profile"][-1] == PREGNANCY:
            resource.pop("identifier", None)
        for identifier in resource.get("identifier", []):
            if str(identifier.get("system", "")).startswith("urn:oid:"):
                identifier.pop("system")
        found[json.dumps(resource, sort_keys=True)] += count
    return found


def _kind(text: str) -> str:
    resource = json.loads(text)
    return f"{resource['resourceType']}|{resource['meta']['profile'][-1]}"


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict, dict]]:
    folder = corpus_path("nictiz-peri-hl7v3-cda", "2_2", "kernset_aanleverbericht")
    out = tmp_path_factory.mktemp("kernset22")
    # The ADA folder also holds instances of another transaction (999.x, unsupported): only
    # the scenarios that have an HL7v3 rendering are converted.
    ada = out / "ada-in"
    ada.mkdir()
    for case in CASES:
        shutil.copy(folder / "ada_instance" / f"{case}.xml", ada / f"{case}.xml")
    hl7 = [folder / "hl7_instance" / f"result_{case}.xml" for case in CASES]
    return {
        "hl7": (convert(hl7, out / "hl7"), bundles(out / "hl7")),
        "ada": (convert([ada], out / "ada"), bundles(out / "ada")),
    }


def test_every_case_loads_in_both_formats(converted: dict[str, tuple[dict, dict]]) -> None:
    for fmt, (report, _) in converted.items():
        assert report["outcomes"] == {"loaded": len(CASES)}, (fmt, report["quarantined"])


@pytest.mark.parametrize("case", CASES)
def test_hl7v3_and_ada_of_one_case_differ_only_by_the_hl7v3_author(
    converted: dict[str, tuple[dict, dict]], case: str
) -> None:
    from_hl7 = _comparable(converted["hl7"][1][f"result_{case}.xml"])
    from_ada = _comparable(converted["ada"][1][f"{case}.xml"])

    assert not from_ada - from_hl7, list(from_ada - from_hl7)
    assert {_kind(t) for t in from_hl7 - from_ada} == ONLY_IN_HL7V3, list(from_hl7 - from_ada)


def test_only_the_hl7v3_rendering_numbers_the_pregnancy(
    converted: dict[str, tuple[dict, dict]],
) -> None:
    for fmt, expected in (("hl7", True), ("ada", False)):
        for case in CASES:
            name = f"result_{case}.xml" if fmt == "hl7" else f"{case}.xml"
            pregnancies = [e["resource"] for e in converted[fmt][1][name]["entry"]
                           if PREGNANCY in e["resource"].get("meta", {}).get("profile", [])]
            assert len(pregnancies) == 1, (fmt, case)
            assert bool(pregnancies[0].get("identifier")) is expected, (fmt, case)


@pytest.mark.parametrize("fmt", ["hl7", "ada"])
def test_each_twin_gets_its_own_child_birth_mother_link_and_weight(
    converted: dict[str, tuple[dict, dict]], fmt: str
) -> None:
    name = f"result_{TWINS}.xml" if fmt == "hl7" else f"{TWINS}.xml"
    entries = converted[fmt][1][name]["entry"]
    by_url = {e["fullUrl"]: e["resource"] for e in entries}
    profiled = [(url, r, r.get("meta", {}).get("profile", [""])[-1]) for url, r in by_url.items()]

    children = {url: r for url, r, p in profiled if p.endswith("/bc-Child")}
    births = {url: r for url, r, p in profiled if p.endswith("/bc-Birth")}
    mother_links = [r for url, r, p in profiled if r["resourceType"] == "RelatedPerson"]

    assert sorted(c["multipleBirthInteger"] for c in children.values()) == [1, 2]
    assert len({c["identifier"][0]["value"] for c in children.values()}) == 2
    assert {b["subject"]["reference"] for b in births.values()} == set(children)
    assert sorted(m["patient"]["reference"] for m in mother_links) == sorted(children)

    weights = {}
    for _, resource, profile in profiled:
        if profile.endswith("/bc-BirthObservation") and resource["code"]["coding"][0][
                "code"] == "8339-4":
            focus = next(ext["valueReference"]["reference"] for ext in resource["extension"]
                         if ext["url"].endswith("observation-focusSTU3"))
            child = children[births[focus]["subject"]["reference"]]
            weights[child["multipleBirthInteger"]] = resource["valueQuantity"]["value"]
    assert weights == TWIN_WEIGHTS
