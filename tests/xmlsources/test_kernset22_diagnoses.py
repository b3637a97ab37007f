"""Kernset Geboortezorg 2.2 diagnoses: disorders of the pregnancy and of the delivery.

The 2.2 "Diagnose" organizers (SCT 439401001, no template) of this pregnancy (HL7v3 directly under
the CareProvisionEvent, ADA ``zwangerschap/diagnose``, peri22x section ``diagnose``) give one
Condition zib-Problem + bc-DisorderOfPregnancy per item naming a disorder (``kernset22/diagnosis``),
those inside the delivery (HL7v3 organizer 236973005, ADA ``bevalling/diagnose_bevalling``, peri22x
section ``baring``) one bc-DisorderOfLaborAndDelivery per item answered yes, part of the delivery
(``kernset22/delivery-diagnosis``). The diagnoses of an earlier pregnancy (HL7v3 organizer
248983002, ADA ``obstetrische_anamnese…/diagnose``) are not read: the 2.2 tables have no earlier
pregnancy to hang them on.

Corpus: nictiz-peri-hl7v3-cda/2_2/kernset_aanleverbericht (seven scenarios, HL7v3 and ADA) and
peri22x/peri22x2hl7 (voorbeeld-kernset-1 in three formats; voorbeeld-kernset-3 has history
diagnoses only).
"""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from tests.conftest import corpus_path
from tests.support.xmlsources import bundles, convert

SD = "http://nictiz.nl/fhir/StructureDefinition/"
PART_OF = "http://hl7.org/fhir/StructureDefinition/condition-partOf"
FETAL_DISTRESS = "609415007:246090004=12867002"  # a SNOMED CT expression, kept as sent

# Per scenario: this pregnancy's disorders (code, day of onset) and the delivery's (code). Not
# here: the history's (scenario2_1elijn and 2_2elijn bleeding and hyperemesis, scenario5 UTI and
# cholestasis), which must not turn up as this pregnancy's.
EXPECTED: dict[str, tuple[set[tuple[str, str]], set[str]]] = {
    "scenario1": ({("307534009", "2014-03-02")}, set()),
    "scenario2_1elijn": ({("48194001", "2014-05-06")}, set()),
    "scenario2_2elijn": ({("37849005", "2014-05-12"), ("MolaPartieelIntacteZw", "2014-05-12"),
                          ("398254007", "2014-05-12")}, set()),
    "scenario3": ({("131148009", "2014-05-21"), ("307534009", "2014-05-21"),
                   ("267258002", "2014-05-21"), ("415105001", "2014-05-21")},
                  {"312974005", FETAL_DISTRESS}),
    "scenario4_1elijn": (set(), set()),
    "scenario4_2elijn": ({("307534009", "2014-05-07")}, {"237320005", "249166003"}),
    "scenario5": ({("199616008", "2014-01-09"), ("415105001", "2014-01-09")}, set()),
}
# peri22x voorbeeld-kernset-1: no date on its diagnoses in any format (the ADA and HL7v3
# renderings have none; the peri22x section's effectStamp is not the diagnosis date).
PERI22X_CASE = "voorbeeld-kernset-1"
PERI22X_EXPECTED = ({("131148009", ""), ("307534009", ""), ("48194001", ""), ("415105001", "")},
                    {"44223004"})


@pytest.fixture(scope="module")
def nictiz(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, dict]]:
    folder = corpus_path("nictiz-peri-hl7v3-cda", "2_2", "kernset_aanleverbericht")
    out = tmp_path_factory.mktemp("kernset22-diagnoses")
    ada = out / "ada-in"
    ada.mkdir()
    for case in EXPECTED:
        shutil.copy(folder / "ada_instance" / f"{case}.xml", ada / f"{case}.xml")
    hl7 = [folder / "hl7_instance" / f"result_{case}.xml" for case in EXPECTED]
    found = {}
    for fmt, inputs in (("hl7", hl7), ("ada", [ada])):
        report = convert(inputs, out / fmt)
        # Strict validation: a Condition the profiles refuse would quarantine its document.
        assert report["outcomes"] == {"loaded": len(EXPECTED)}, (fmt, report["quarantined"])
        found[fmt] = {name.removeprefix("result_").removesuffix(".xml"): bundle
                      for name, bundle in bundles(out / fmt).items()}
    return found


@pytest.fixture(scope="module")
def peri22x(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    folder = corpus_path("peri22x", "peri22x2hl7")
    out = tmp_path_factory.mktemp("peri22x-diagnoses")
    found = {}
    for fmt in ("peri22x", "ada", "hl7"):
        report = convert([folder / fmt / f"{PERI22X_CASE}.xml"], out / fmt)
        assert report["outcomes"] == {"loaded": 1}, (fmt, report["quarantined"])
        found[fmt] = bundles(out / fmt)[f"{PERI22X_CASE}.xml"]
    return found


def _entries(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["fullUrl"]: e["resource"] for e in bundle["entry"]}


def _profiled(resources: dict[str, dict], profile: str) -> dict[str, dict]:
    return {url: r for url, r in resources.items()
            if SD + profile in r.get("meta", {}).get("profile", [])}


def _part_of(condition: dict[str, Any]) -> str:
    return next(e["valueReference"]["reference"] for e in condition["extension"]
                if e["url"] == PART_OF)


def _split(bundle: dict[str, Any]) -> tuple[set[tuple[str, str]], set[str]]:
    """The disorders of the pregnancy (code, day of onset) and of the delivery (code)."""
    resources = _entries(bundle)
    (pregnancy,) = _profiled(resources, "zib-Pregnancy")
    (episode,) = _profiled(resources, "bc-MaternalRecord")
    (woman,) = _profiled(resources, "bc-Woman")
    deliveries = _profiled(resources, "bc-DeliveryProcedure")
    now: set[tuple[str, str]] = set()
    during: set[str] = set()
    for profile, category, owners in (("bc-DisorderOfPregnancy", "173300003", {pregnancy}),
                                      ("bc-DisorderOfLaborAndDelivery", "362972006", deliveries)):
        for condition in _profiled(resources, profile).values():
            assert SD + "zib-Problem" in condition["meta"]["profile"]
            assert condition["category"][0]["coding"][0]["code"] == category
            assert condition["subject"]["reference"] == woman
            assert condition["context"]["reference"] == episode
            assert _part_of(condition) in owners
            (coding,) = condition["code"]["coding"]
            if profile == "bc-DisorderOfPregnancy":
                now.add((coding["code"], condition.get("onsetDateTime", "")[:10]))
            else:
                assert "onsetDateTime" not in condition
                during.add(coding["code"])
    return now, during


@pytest.mark.parametrize("fmt", ["hl7", "ada"])
@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_each_2_2_diagnosis_is_a_disorder_of_this_pregnancy_or_its_delivery(
    nictiz: dict, fmt: str, case: str
) -> None:
    assert _split(nictiz[fmt][case]) == EXPECTED[case]


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_hl7v3_and_ada_2_2_disorders_differ_in_id_only_as_their_pregnancy_does(
    nictiz: dict, case: str
) -> None:
    # The ids hang on the pregnancy's, and only the HL7v3 rendering numbers the pregnancy
    # (test_kernset22_cross_format.test_only_the_hl7v3_rendering_numbers_the_pregnancy): the
    # disorders are matched by code, the rest of them is compared there, ids left out.
    for profile in ("bc-DisorderOfPregnancy", "bc-DisorderOfLaborAndDelivery"):
        found = {fmt: sorted((c["code"]["coding"][0]["code"], c["code"]["coding"][0].get("display"),
                              c["clinicalStatus"], c.get("onsetDateTime"))
                             for c in _profiled(_entries(nictiz[fmt][case]), profile).values())
                 for fmt in ("hl7", "ada")}
        assert found["hl7"] == found["ada"]


def test_scenario3_keeps_suspected_fetal_distress_as_its_snomed_expression(nictiz: dict) -> None:
    for fmt in ("hl7", "ada"):
        codings = [c["code"]["coding"] for c in
                   _profiled(_entries(nictiz[fmt]["scenario3"]),
                             "bc-DisorderOfLaborAndDelivery").values()]
        assert [{"system": "http://snomed.info/sct", "code": FETAL_DISTRESS,
                 "display": "Verdenking foetale nood"}] in codings


@pytest.mark.parametrize("fmt", ["peri22x", "ada", "hl7"])
def test_a_peri22x_dossier_and_its_renderings_give_the_same_diagnoses(
    peri22x: dict, fmt: str
) -> None:
    assert _split(peri22x[fmt]) == PERI22X_EXPECTED


def test_the_three_2_2_renderings_give_the_same_ids_and_yes_item_codings(peri22x: dict) -> None:
    found = {fmt: {url: c["code"]["coding"][0] for profile in
                   ("bc-DisorderOfPregnancy", "bc-DisorderOfLaborAndDelivery")
                   for url, c in _profiled(_entries(peri22x[fmt]), profile).items()}
             for fmt in ("peri22x", "ada", "hl7")}
    assert set(found["peri22x"]) == set(found["ada"]) == set(found["hl7"])
    for url, coding in found["hl7"].items():
        if coding["code"] in {"307534009", "48194001"}:
            # A coded item: peri22x sends a bare SNOMED CT code, without the display.
            assert found["peri22x"][url] == {"system": coding["system"], "code": coding["code"]}
        else:
            assert found["peri22x"][url] == coding == found["ada"][url]
