"""Kernset Geboortezorg 2.3: the current delivery's observations, in HL7v3 and in ADA 2.3.

The delivery organizer (HL7v3 template 901101, ADA ``bevalling``) gives, focus the delivery
(bc-DeliveryObservation): how labour began (``BeginDeliv`` / ``wijze_waarop_de_baring_begon`` ->
SCT 160611000146102, ``kernset23/onset-of-labour``), the delivery of the placenta
(``AfterBirthMethod`` -> SCT 236994008, ``kernset23/placenta``), blood loss (SCT 364332008 in ml,
``kernset23/blood-loss``) and the perineum after delivery (SCT 364297003,
``kernset23/perineum``). Recorded per child (inside the birth procedure 901102, ADA
``baring/kindspecifieke_maternale_gegevens``): the rupture of membranes (SCT 289251005, a delivery
observation on the delivery, one per birth, ``kernset23/rupture-of-membranes``) and the moment of
active pushing (``PRN530401`` -> bc-BirthObservation SCT 249163006 on that birth,
``kernset23/onset-of-pushing``). The earlier pregnancies' placenta and blood loss
(``kernset23-history/*``) point at their own deliveries and are not counted here.

Corpus: nictiz-peri-hl7v3-cda/2.3.6/kernset_geboortezorg, seven scenarios as HL7v3 and as ADA (the
ADA copies resolved against 1 January 2022 as in the cross-format test).
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

import pytest

from tests.conftest import corpus_path
from tests.support.xmlsources import convert_both

GENERATED_ON = date(2022, 1, 1)
SD = "http://nictiz.nl/fhir/StructureDefinition/"
FOCUS = SD + "observation-focusSTU3"
SCT = "http://snomed.info/sct"
ONSET, PLACENTA, BLOOD_LOSS, PERINEUM = "160611000146102", "236994008", "364332008", "364297003"
MEMBRANES, PUSHING = "289251005", "249163006"
ONSET_LIST = "urn:oid:2.16.840.1.113883.2.4.3.22.1.2.46"
PLACENTA_LIST = "urn:oid:2.16.840.1.113883.2.4.4.13.19"

# Per case: the delivery's observations (code, value: a code, ml or a moment) and the births'
# (code, birth order, moment). scenario2_1elijn reports no delivery; scenario5 no rupture of
# membranes nor pushing; scenario2_2elijn no pushing; scenario3 is twins.
EXPECTED: dict[str, tuple[Counter, Counter]] = {
    "scenario1-23": (
        Counter({(ONSET, "3"), (PLACENTA, "0"), (BLOOD_LOSS, 615), (PERINEUM, "199916005"),
                 (MEMBRANES, "2021-10-08T09:15:00+02:00")}),
        Counter({(PUSHING, "2021-10-08T12:13:00+02:00")})),
    "scenario2_1elijn-23": (Counter(), Counter()),
    "scenario2_2elijn-23": (
        Counter({(ONSET, "3"), (PLACENTA, "4"), (BLOOD_LOSS, 980), (PERINEUM, "289854007"),
                 (MEMBRANES, "2021-08-30T23:04:00+02:00")}),
        Counter()),
    "scenario3-23": (
        Counter({(ONSET, "2"), (PLACENTA, "2"), (BLOOD_LOSS, 1740), (PERINEUM, "609344008"),
                 (MEMBRANES, "2021-08-27T22:09:00+02:00"),
                 (MEMBRANES, "2021-08-27T23:13:00+02:00")}),
        Counter({(PUSHING, "2021-08-27T23:49:00+02:00"), (PUSHING, "2021-08-28T06:45:00+02:00")})),
    "scenario4_1elijn-23": (
        Counter({(ONSET, "2"), (PLACENTA, "0"), (BLOOD_LOSS, 1120), (PERINEUM, "199930000"),
                 (MEMBRANES, "2021-08-03T07:04:00+02:00")}),
        Counter({(PUSHING, "2021-08-04T22:15:00+02:00")})),
    "scenario4_2elijn-23": (
        Counter({(ONSET, "2"), (PLACENTA, "0"), (BLOOD_LOSS, 1120), (PERINEUM, "199930000"),
                 (MEMBRANES, "2021-08-03T07:04:00+02:00")}),
        Counter({(PUSHING, "2021-08-04T22:15:00+02:00")})),
    "scenario5-23": (
        Counter({(ONSET, "3"), (PLACENTA, "4"), (BLOOD_LOSS, 1500), (PERINEUM, "289854007")}),
        Counter()),
}


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, dict]]:
    folder = corpus_path("nictiz-peri-hl7v3-cda", "2.3.6", "kernset_geboortezorg")
    hl7_report, ada_report, hl7, ada = convert_both(
        folder / "hl7_instance", folder / "ada_instance", GENERATED_ON,
        tmp_path_factory.mktemp("delivery"))
    # Strict validation: an observation the profiles refuse would quarantine its document.
    assert hl7_report["outcomes"] == {"loaded": len(EXPECTED)}, hl7_report["quarantined"]
    assert ada_report["outcomes"] == {"loaded": len(EXPECTED)}, ada_report["quarantined"]
    return {"hl7": hl7, "ada": ada}


def _entries(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["fullUrl"]: e["resource"] for e in bundle["entry"]}


def _profiled(resources: dict[str, dict], profile: str) -> dict[str, dict]:
    return {url: r for url, r in resources.items()
            if SD + profile in r.get("meta", {}).get("profile", [])}


def _focus(observation: dict[str, Any]) -> str:
    (reference,) = [e["valueReference"]["reference"] for e in observation.get("extension", [])
                    if e["url"] == FOCUS]
    return reference


def _value(observation: dict[str, Any]) -> Any:
    if "valueQuantity" in observation:
        quantity = observation["valueQuantity"]
        assert (quantity["unit"], quantity["system"], quantity["code"]) == (
            "ml", "http://unitsofmeasure.org", "ml")
        return quantity["value"]
    if "valueDateTime" in observation:
        return observation["valueDateTime"]
    (coding,) = observation["valueCodeableConcept"]["coding"]
    code = observation["code"]["coding"][0]["code"]
    expected_system = {ONSET: ONSET_LIST, PLACENTA: PLACENTA_LIST, PERINEUM: SCT}[code]
    assert coding["system"] == expected_system
    return coding["code"]


def _observations(bundle: dict[str, Any]) -> tuple[Counter, Counter]:
    """The current delivery's observations (code, value) and its births' (code, value)."""
    resources = _entries(bundle)
    (current,) = [url for url, r in _profiled(resources, "zib-Pregnancy").items()
                  if "identifier" in r]
    deliveries = [url for url, r in _profiled(resources, "bc-DeliveryProcedure").items()
                  if r["reasonReference"][0]["reference"] == current]
    births = {url for url, r in _profiled(resources, "bc-Birth").items()
              if r["resourceType"] == "Procedure"
              and {p["reference"] for p in r.get("partOf", [])} <= set(deliveries)
              and r.get("partOf")}
    (woman,) = _profiled(resources, "bc-Woman")
    episode = next(url for url, r in _profiled(resources, "bc-MaternalRecord").items()
                   if r["diagnosis"][0]["condition"]["reference"] == current)
    of_delivery: Counter = Counter()
    of_birth: Counter = Counter()
    for observation in _profiled(resources, "bc-DeliveryObservation").values():
        if _focus(observation) not in deliveries:
            continue  # an earlier pregnancy's delivery (kernset23-history)
        assert SD + "bc-BirthObservation" not in observation["meta"]["profile"]
        assert observation["status"] == "final"
        assert observation["subject"]["reference"] == woman
        assert observation["context"]["reference"] == episode
        (code,) = observation["code"]["coding"]
        assert code["system"] == SCT
        of_delivery[(code["code"], _value(observation))] += 1
    for observation in _profiled(resources, "bc-BirthObservation").values():
        (code,) = observation["code"]["coding"]
        if code["code"] != PUSHING:
            continue  # type partus, birth weight: tests/xmlsources/test_kernset23_cross_format.py
        assert _focus(observation) in births
        assert observation["subject"]["reference"] == woman
        assert observation["context"]["reference"] == episode
        of_birth[(code["code"], _value(observation))] += 1
    return of_delivery, of_birth


@pytest.mark.parametrize("fmt", ["hl7", "ada"])
@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_the_delivery_gives_its_observations(converted: dict, fmt: str, case: str) -> None:
    of_delivery, of_birth = _observations(converted[fmt][f"{case}.xml"])
    assert of_delivery == EXPECTED[case][0]
    assert of_birth == EXPECTED[case][1]


def test_each_twin_has_its_own_pushing_on_its_own_birth(converted: dict) -> None:
    for fmt in ("hl7", "ada"):
        resources = _entries(converted[fmt]["scenario3-23.xml"])
        pushing = [r for r in _profiled(resources, "bc-BirthObservation").values()
                   if r["code"]["coding"][0]["code"] == PUSHING]
        assert len({_focus(r) for r in pushing}) == 2
        membranes = [r for r in _profiled(resources, "bc-DeliveryObservation").values()
                     if r["code"]["coding"][0]["code"] == MEMBRANES]
        assert len({_focus(r) for r in membranes}) == 1  # both on the one delivery
        assert len({r["valueDateTime"] for r in membranes}) == 2


def test_both_formats_give_the_same_observations(converted: dict) -> None:
    for case in EXPECTED:
        assert _observations(converted["hl7"][f"{case}.xml"]) == _observations(
            converted["ada"][f"{case}.xml"])
