"""Kernset Geboortezorg 2.3: the HL7v3 message and the ADA instance of a case give the same FHIR.

Corpus: nictiz-peri-hl7v3-cda/2.3.6/kernset_geboortezorg, seven scenarios each as ADA and as the
HL7v3 REPC_IN004014NL Nictiz generated from it. The ADA instances carry test-harness placeholder
dates (T-306D); the HL7v3 files were generated with 1 January 2022 as "today", so the ADA copies
are resolved against that day (in a temporary folder) before converting.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from tests.conftest import corpus_path
from tests.support.xmlsources import canonical, convert_both

GENERATED_ON = date(2022, 1, 1)
CASES = ("scenario1-23", "scenario2_1elijn-23", "scenario2_2elijn-23", "scenario3-23",
         "scenario4_1elijn-23", "scenario4_2elijn-23", "scenario5-23")
TWINS = "scenario3-23"  # two births in one message
# Earlier pregnancies in the obstetric history (HL7v3 organizer 901095, ADA
# obstetrische_anamnese_gegroepeerd_per_voorgaande_zwangerschap): each is its own zib-Pregnancy and
# bc-MaternalRecord beside the current one's (mappings/hl7v3/kernset23-history/), in both formats.
EARLIER_PREGNANCIES = {"scenario1-23": 1, "scenario2_1elijn-23": 1, "scenario2_2elijn-23": 1,
                       "scenario5-23": 1}

# What the ADA transaction cannot carry: the HL7v3 wrapper's author (ControlActProcess
# authorOrPerformer) and the author's organisation, added when Nictiz rendered ADA as HL7v3.
ONLY_IN_HL7V3 = {
    "Practitioner|http://fhir.nl/fhir/StructureDefinition/nl-core-practitioner",
    "Organization|ura",
}


def _kind(text: str) -> str:
    resource = json.loads(text)
    label = f"{resource['resourceType']}|{resource['meta']['profile'][-1]}"
    systems = {i.get("system", "") for i in resource.get("identifier", [])}
    if resource["resourceType"] == "Organization" and systems == {
        "http://fhir.nl/fhir/NamingSystem/ura"
    }:
        return "Organization|ura"
    return label


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict, dict, dict]:
    folder = corpus_path("nictiz-peri-hl7v3-cda", "2.3.6", "kernset_geboortezorg")
    return convert_both(folder / "hl7_instance", folder / "ada_instance", GENERATED_ON,
                        tmp_path_factory.mktemp("out"))


@pytest.mark.parametrize("case", CASES)
def test_hl7v3_and_ada_of_one_case_give_the_same_resources(
    converted: tuple[dict, dict, dict, dict], case: str
) -> None:
    _, _, hl7, ada = converted
    from_hl7, from_ada = canonical(hl7[f"{case}.xml"]), canonical(ada[f"{case}.xml"])

    only_hl7 = from_hl7 - from_ada
    only_ada = from_ada - from_hl7

    assert not only_ada, f"ADA gave resources HL7v3 did not: {list(only_ada)}"
    assert {_kind(t) for t in only_hl7} <= ONLY_IN_HL7V3, list(only_hl7)
    shared = Counter(_kind(t) for t in from_hl7 & from_ada)
    assert shared["Patient|http://nictiz.nl/fhir/StructureDefinition/bc-Woman"] == 1, case
    for expected in ("Condition|http://nictiz.nl/fhir/StructureDefinition/zib-Pregnancy",
                     "EpisodeOfCare|http://nictiz.nl/fhir/StructureDefinition/bc-MaternalRecord"):
        assert shared[expected] == 1 + EARLIER_PREGNANCIES.get(case, 0), (case, expected)


def test_the_kernset_has_no_names_so_neither_format_gives_one(
    converted: tuple[dict, dict, dict, dict],
) -> None:
    _, _, hl7, ada = converted
    for bundle in [*hl7.values(), *ada.values()]:
        for entry in bundle["entry"]:
            assert "name" not in entry["resource"] or entry["resource"]["resourceType"] not in (
                "Patient", "Practitioner", "RelatedPerson")


def test_every_case_loads_in_both_formats(converted: tuple[dict, dict, dict, dict]) -> None:
    hl7_report, ada_report, hl7, ada = converted
    for report, written in ((hl7_report, hl7), (ada_report, ada)):
        assert sorted(Path(name).stem for name in written) == sorted(CASES)
        assert report["outcomes"] == {"loaded": 7}


@pytest.mark.parametrize("fmt", ["hl7", "ada"])
def test_each_twin_gets_its_own_child_birth_and_mother_link(
    converted: tuple[dict, dict, dict, dict], fmt: str
) -> None:
    written = converted[2] if fmt == "hl7" else converted[3]
    entries = written[f"{TWINS}.xml"]["entry"]
    resources = [e["resource"] for e in entries]

    children = {e["fullUrl"] for e in entries if "bc-Child" in str(e["resource"].get("meta"))}
    births = [r for r in resources if "bc-Birth" in str(r.get("meta"))
              and r["resourceType"] == "Procedure"]
    mother_links = [r for r in resources if r["resourceType"] == "RelatedPerson"]

    assert len(children) == 2
    assert {b["subject"]["reference"] for b in births} == children
    assert {m["patient"]["reference"] for m in mother_links} == {
        b["subject"]["reference"] for b in births}
    focused = {
        ext["valueReference"]["reference"]
        for r in resources if "bc-BirthObservation" in str(r.get("meta"))
        for ext in r.get("extension", []) if ext["url"].endswith("observation-focusSTU3")
    }
    assert len(focused) == 2  # each child's birth weight and type partus point at its own birth


def test_gestational_age_uses_the_fhir_code_not_the_kernset_one(
    converted: tuple[dict, dict, dict, dict],
) -> None:
    _, _, hl7, _ = converted
    codes = {
        coding["code"]
        for bundle in hl7.values()
        for entry in bundle["entry"]
        if "zib-Pregnancy-PregnancyDuration" in str(entry["resource"].get("meta"))
        for coding in entry["resource"]["code"]["coding"]
    }
    assert codes == {"57036006"}  # Kernset 2.3 sends SCT 445872007 (DOMAIN.md 6)
