"""Acute overdracht 2.1 (REPC_IN002120NL): the corpus handovers load as Babyconnect FHIR.

Corpus: nictiz-acute-overdracht-hl7v3/ (fictitious test data): three handover messages
(daphne.xml, REPC_EX002120NL_AcuteOverdracht-dp.xml, Scenario S05-AW.XML), a message without
careProvisionRequest (empty.xml) and two ADA renderings of S05 that no table maps yet.
Tables: mappings/hl7v3/acute-overdracht.yaml and mappings/hl7v3/acute-overdracht/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import corpus_path
from tests.support.xmlsources import bundles, convert

HANDOVERS = ("daphne.xml", "REPC_EX002120NL_AcuteOverdracht-dp.xml", "Scenario_S05-AW.XML")
BC = "http://nictiz.nl/fhir/StructureDefinition/"


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    out = tmp_path_factory.mktemp("acute") / "out"
    report = convert([corpus_path("nictiz-acute-overdracht-hl7v3")], out)
    return report, bundles(out)


def _resources(bundle: dict, profile: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"]
            if BC + profile in e["resource"].get("meta", {}).get("profile", [])]


def _url(bundle: dict, resource: dict) -> str:
    return next(e["fullUrl"] for e in bundle["entry"] if e["resource"] is resource)


def _one(bundle: dict, profile: str) -> dict:
    found = _resources(bundle, profile)
    assert len(found) == 1, (profile, len(found))
    return found[0]


def test_the_three_handovers_load_and_the_rest_is_quarantined_for_a_named_reason(
    written: tuple[dict, dict],
) -> None:
    report, by_file = written
    assert sorted(by_file) == sorted(HANDOVERS)
    reasons = {Path(q["file"]).name: q["code"] for q in report["quarantined"]}
    assert reasons == {
        "empty.xml": "structure",  # no careProvisionRequest: nothing is handed over
        "Scenario S05-AW-ada.xml": "unsupported",
        "Scenario S05-AW-ada-text.xml": "unsupported",
    }


@pytest.mark.parametrize("name", HANDOVERS)
def test_a_handover_gives_the_woman_her_pregnancy_record_and_the_transfer_of_care(
    written: tuple[dict, dict], name: str
) -> None:
    bundle = written[1][name]
    woman = _one(bundle, "bc-Woman")
    pregnancy = _one(bundle, "zib-Pregnancy")
    episode = _one(bundle, "bc-MaternalRecord")
    referral = _one(bundle, "bc-ReferralRequest")

    assert woman["identifier"][0]["system"] == "http://fhir.nl/fhir/NamingSystem/bsn"
    assert pregnancy["subject"]["reference"] == _url(bundle, woman)
    assert episode["diagnosis"][0]["condition"]["reference"] == _url(bundle, pregnancy)
    assert referral["type"]["coding"][0]["code"] == "308292007"
    assert referral["subject"]["reference"] == _url(bundle, woman)
    assert referral["reasonCode"]  # every corpus handover names why


@pytest.mark.parametrize(("name", "gravidity", "parity"), [
    ("daphne.xml", 3, 1),
    ("REPC_EX002120NL_AcuteOverdracht-dp.xml", 2, 1),
    ("Scenario_S05-AW.XML", 3, 1),
])
def test_gravidity_and_parity_come_from_the_current_pregnancy(
    written: tuple[dict, dict], name: str, gravidity: int, parity: int
) -> None:
    bundle = written[1][name]
    assert _one(bundle, "zib-Pregnancy-Gravidity")["valueQuantity"]["value"] == gravidity
    assert _one(bundle, "zib-Pregnancy-Parity")["valueQuantity"]["value"] == parity


@pytest.mark.parametrize(("name", "children"), [
    ("daphne.xml", 1),
    ("REPC_EX002120NL_AcuteOverdracht-dp.xml", 1),
    ("Scenario_S05-AW.XML", 0),  # only the membranes have broken: nobody is born yet
])
def test_a_child_its_birth_and_its_mother_link_exist_only_once_born(
    written: tuple[dict, dict], name: str, children: int
) -> None:
    bundle = written[1][name]
    assert len(_resources(bundle, "bc-Child")) == children
    assert len(_resources(bundle, "bc-Birth")) == children
    assert len(_resources(bundle, "bc-MotherOf")) == children
    assert len(_resources(bundle, "bc-DeliveryProcedure")) == 1


def test_the_birth_weight_is_the_born_childs_not_an_earlier_pregnancys(
    written: tuple[dict, dict],
) -> None:
    bundle = written[1]["REPC_EX002120NL_AcuteOverdracht-dp.xml"]
    weights = [o["valueQuantity"]["value"] for o in _resources(bundle, "bc-BirthObservation")
               if o["code"]["coding"][0]["code"] == "8339-4"]
    assert weights == [3850]  # the obstetric history's child weighed 3500 g


def test_the_mother_link_carries_the_womans_bsn(written: tuple[dict, dict]) -> None:
    bundle = written[1]["daphne.xml"]
    woman = _one(bundle, "bc-Woman")
    assert _one(bundle, "bc-MotherOf")["identifier"][0]["value"] == woman["identifier"][0]["value"]


def test_the_midwife_and_her_practice_are_identified_by_uzi_agb_and_ura(
    written: tuple[dict, dict],
) -> None:
    bundle = written[1]["daphne.xml"]
    resources = [e["resource"] for e in bundle["entry"]]
    practitioner = next(r for r in resources if r["resourceType"] == "Practitioner")
    organization = next(r for r in resources if r["resourceType"] == "Organization")
    assert {i["system"].rsplit("/", 1)[1] for i in practitioner["identifier"]} == {
        "uzi-nr-pers", "agb-z"}
    systems = {i["system"] for i in organization["identifier"]}
    assert "http://fhir.nl/fhir/NamingSystem/ura" in systems


def test_delivery_findings_point_at_the_delivery(written: tuple[dict, dict]) -> None:
    bundle = written[1]["Scenario_S05-AW.XML"]
    full_url = _url(bundle, _one(bundle, "bc-DeliveryProcedure"))
    findings = _resources(bundle, "bc-DeliveryObservation")
    codes = {f["code"]["coding"][0]["code"] for f in findings}
    assert {"160611000146102", "168089007", "364332008", "289251005"} <= codes
    for finding in findings:
        focus = [x for x in finding["extension"] if x["url"].endswith("observation-focusSTU3")]
        assert focus[0]["valueReference"]["reference"] == full_url
