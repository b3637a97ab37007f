"""Kernset Geboortezorg 2.3 diagnoses: each becomes a disorder of the pregnancy it belongs to.

The "Diagnose" organizers (SCT 439401001) of the current pregnancy (HL7v3 template 901092 under
the CareProvisionEvent, ADA ``zwangerschap/diagnose``) and of an earlier one (inside the history
organizer 901095, ADA ``obstetrische_anamnese_gegroepeerd_per_voorgaande_zwangerschap/diagnose``)
give one Condition zib-Problem + bc-DisorderOfPregnancy per item naming a disorder
(``kernset23/diagnosis``, ``kernset23-history/diagnosis``): a coded item its value, a yes/no item
answered yes its own code. A no or a coded item without a code gives nothing. The delivery's
diagnoses (organizer 901014 inside the delivery, ADA ``bevalling/diagnose_bevalling``) give one
Condition zib-Problem + bc-DisorderOfLaborAndDelivery per item answered yes, part of the delivery
(``kernset23/delivery-diagnosis``), the suspected fetal distress with its SNOMED CT expression.

Corpus: nictiz-peri-hl7v3-cda/2.3.6/kernset_geboortezorg, seven scenarios as HL7v3 and as ADA (the
ADA copies resolved against 1 January 2022 as in the cross-format test).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from tests.conftest import corpus_path
from tests.support.xmlsources import convert_both

GENERATED_ON = date(2022, 1, 1)
SD = "http://nictiz.nl/fhir/StructureDefinition/"
PART_OF = "http://hl7.org/fhir/StructureDefinition/condition-partOf"

# Per case: the current pregnancy's diagnoses (code, onset), the earlier pregnancy's (code; the
# history gives no date) and the delivery's (code; no date either). Not here: scenario5's earlier
# "abnormal fetal growth" without a code (nullFlavor NI).
SUSPECTED_FETAL_DISTRESS = "609415007:246090004=12867002"  # a SNOMED CT expression, kept as sent
EXPECTED: dict[str, tuple[set[tuple[str, str]], set[str], set[str]]] = {
    "scenario1-23": ({("307534009", "2021-03-02")}, set(), set()),
    "scenario2_1elijn-23": ({("48194001", "2021-05-06")}, {"131148009", "14094001"}, set()),
    "scenario2_2elijn-23": ({("37849005", "2021-05-12"), ("MolaPartieelIntacteZw", "2021-05-12"),
                             ("398254007", "2021-05-12")},
                            {"37849005", "131148009", "14094001"}, set()),
    "scenario3-23": ({("131148009", "2021-05-21"), ("307534009", "2021-05-21"),
                      ("267258002", "2021-05-21"), ("415105001", "2021-05-21")}, set(),
                     {"312974005", SUSPECTED_FETAL_DISTRESS}),  # PPROM
    "scenario4_1elijn-23": (set(), set(), set()),
    "scenario4_2elijn-23": ({("307534009", "2021-05-07")}, set(),
                            {"237320005", "249166003"}),  # failure to progress (dilation, expulsion)
    "scenario5-23": ({("199616008", "2021-01-09"), ("415105001", "2021-01-09")},
                     {"307534009", "235888006"}, set()),
}
NOT_MAPPED = {"276604007", "40733004", "38341003", "310789003", "445872007", "NI"}  # items


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, dict]]:
    folder = corpus_path("nictiz-peri-hl7v3-cda", "2.3.6", "kernset_geboortezorg")
    hl7_report, ada_report, hl7, ada = convert_both(
        folder / "hl7_instance", folder / "ada_instance", GENERATED_ON,
        tmp_path_factory.mktemp("diagnoses"))
    # Strict validation: a Condition the profiles refuse would quarantine its document.
    assert hl7_report["outcomes"] == {"loaded": len(EXPECTED)}, hl7_report["quarantined"]
    assert ada_report["outcomes"] == {"loaded": len(EXPECTED)}, ada_report["quarantined"]
    return {"hl7": hl7, "ada": ada}


def _entries(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["fullUrl"]: e["resource"] for e in bundle["entry"]}


def _profiled(resources: dict[str, dict], profile: str) -> dict[str, dict]:
    return {url: r for url, r in resources.items()
            if SD + profile in r.get("meta", {}).get("profile", [])}


def _part_of(condition: dict[str, Any]) -> str:
    return next(e["valueReference"]["reference"] for e in condition["extension"]
                if e["url"] == PART_OF)


def _split(bundle: dict[str, Any]) -> tuple[set[tuple[str, str]], set[str], set[str]]:
    """The disorders of the current pregnancy (code, onset), of the earlier ones (code) and of the
    delivery (code)."""
    resources = _entries(bundle)
    pregnancies = _profiled(resources, "zib-Pregnancy")
    (current,) = [url for url, r in pregnancies.items() if "identifier" in r]
    episode_of = {e["diagnosis"][0]["condition"]["reference"]: url
                  for url, e in _profiled(resources, "bc-MaternalRecord").items()}
    now: set[tuple[str, str]] = set()
    before: set[str] = set()
    for condition in _profiled(resources, "bc-DisorderOfPregnancy").values():
        assert SD + "zib-Problem" in condition["meta"]["profile"]
        assert condition["category"][0]["coding"][0]["code"] == "173300003"
        assert condition["subject"]["reference"] in _profiled(resources, "bc-Woman")
        own = _part_of(condition)
        assert own in pregnancies
        assert condition["context"]["reference"] == episode_of[own]
        (coding,) = condition["code"]["coding"]
        assert coding["code"] not in NOT_MAPPED
        if own == current:
            now.add((coding["code"], condition["onsetDateTime"]))
        else:
            assert condition["clinicalStatus"] == "resolved"
            assert "onsetDateTime" not in condition
            before.add(coding["code"])
    deliveries = _profiled(resources, "bc-DeliveryProcedure")
    during: set[str] = set()
    for condition in _profiled(resources, "bc-DisorderOfLaborAndDelivery").values():
        assert SD + "zib-Problem" in condition["meta"]["profile"]
        assert SD + "bc-DisorderOfPregnancy" not in condition["meta"]["profile"]
        assert condition["category"][0]["coding"][0]["code"] == "362972006"
        assert condition["subject"]["reference"] in _profiled(resources, "bc-Woman")
        own = _part_of(condition)
        assert own in deliveries
        assert deliveries[own]["reasonReference"][0]["reference"] == current
        assert condition["context"]["reference"] == episode_of[current]
        assert "onsetDateTime" not in condition
        (coding,) = condition["code"]["coding"]
        assert coding["system"] == "http://snomed.info/sct"
        assert coding["code"] not in NOT_MAPPED
        during.add(coding["code"])
    return now, before, during


@pytest.mark.parametrize("fmt", ["hl7", "ada"])
@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_each_diagnosis_is_a_disorder_of_its_own_pregnancy(
    converted: dict, fmt: str, case: str
) -> None:
    assert _split(converted[fmt][f"{case}.xml"]) == EXPECTED[case]


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_both_formats_give_the_same_disorders_with_the_same_ids(converted: dict, case: str) -> None:
    for profile in ("bc-DisorderOfPregnancy", "bc-DisorderOfLaborAndDelivery"):
        found = {fmt: _profiled(_entries(converted[fmt][f"{case}.xml"]), profile)
                 for fmt in ("hl7", "ada")}
        assert set(found["hl7"]) == set(found["ada"])
        for url, condition in found["hl7"].items():
            assert condition["code"] == found["ada"][url]["code"]
            assert _part_of(condition) == _part_of(found["ada"][url])


def test_the_first_scenario_has_a_urinary_tract_infection_in_this_pregnancy(
    converted: dict,
) -> None:
    resources = _entries(converted["hl7"]["scenario1-23.xml"])
    (condition,) = _profiled(resources, "bc-DisorderOfPregnancy").values()
    assert condition["code"]["coding"] == [{"system": "http://snomed.info/sct",
                                           "code": "307534009", "display": "Urineweg infectie"}]
    assert condition["onsetDateTime"] == "2021-03-02"
    assert "identifier" in resources[_part_of(condition)]  # the current pregnancy


def test_an_earlier_pregnancys_bleeding_and_hyperemesis_are_not_the_current_ones(
    converted: dict,
) -> None:
    for fmt in ("hl7", "ada"):
        resources = _entries(converted[fmt]["scenario2_2elijn-23.xml"])
        pregnancies = _profiled(resources, "zib-Pregnancy")
        for condition in _profiled(resources, "bc-DisorderOfPregnancy").values():
            if condition["code"]["coding"][0]["code"] in {"131148009", "14094001"}:
                earlier = pregnancies[_part_of(condition)]
                assert "identifier" not in earlier and earlier["clinicalStatus"] == "resolved"


def test_suspected_fetal_distress_keeps_its_snomed_expression_and_validates(converted: dict) -> None:
    # The fixture asserts every scenario loads under strict validation; this is the one carrying
    # the post-coordinated code, in both formats with the same coding.
    for fmt in ("hl7", "ada"):
        resources = _entries(converted[fmt]["scenario3-23.xml"])
        codings = [c["code"]["coding"] for c in
                   _profiled(resources, "bc-DisorderOfLaborAndDelivery").values()]
        assert [{"system": "http://snomed.info/sct", "code": SUSPECTED_FETAL_DISTRESS,
                 "display": "Verdenking foetale nood"}] in codings
