"""Kernset Geboortezorg 2.3 obstetric history: each earlier pregnancy is its own, not the current.

The HL7v3 organizer template 2.16.840.1.113883.2.4.6.10.90.901095 (ADA
``obstetrische_anamnese_gegroepeerd_per_voorgaande_zwangerschap``) holds one earlier pregnancy. The
tables (``mappings/hl7v3/kernset23-history/``) give each its own resolved zib-Pregnancy, maternal
record, findings, diagnoses, delivery, children and births, keyed per occurrence.

Corpus: nictiz-peri-hl7v3-cda/2.3.6/kernset_geboortezorg (four scenarios with one earlier
pregnancy each; the ADA copies are resolved against 1 January 2022 as in the cross-format test).
The corpus has no case with two or more earlier pregnancies, so a synthetic message with four (one
with twins, one without a due date, two sharing a due date) checks that every finding points at its
own pregnancy, delivery and birth, in both renderings.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from tests.conftest import corpus_path
from tests.support.xmlsources import bundles, canonical, convert, resolve_placeholders

GENERATED_ON = date(2022, 1, 1)
HL7 = "urn:hl7-org:v3"
NS = {"hl7": HL7}
HISTORY_HL7 = "//hl7:organizer[hl7:templateId/@root='2.16.840.1.113883.2.4.6.10.90.901095']"
HISTORY_ADA = "//obstetrische_anamnese_gegroepeerd_per_voorgaande_zwangerschap"
SD = "http://nictiz.nl/fhir/StructureDefinition/"
FOCUS = SD + "observation-focusSTU3"

# Resources (without Provenance) each case gave before the history was mapped: the current
# pregnancy's must stay exactly these.
# With the current pregnancy's diagnoses (kernset23/diagnosis): one in scenario1, one in
# scenario2_1elijn, three in scenario2_2elijn, two in scenario5. With the current delivery's
# observations (tests/xmlsources/test_kernset23_delivery.py): six in scenario1 (onset of labour,
# placenta, blood loss, perineum, rupture of membranes, onset of pushing), none in scenario2_1elijn
# (no delivery), five in scenario2_2elijn (no pushing), four in scenario5 (neither membranes nor
# pushing).
BEFORE = {
    "hl7": {"scenario1-23": 23, "scenario2_1elijn-23": 11, "scenario2_2elijn-23": 24,
            "scenario5-23": 22},
    "ada": {"scenario1-23": 21, "scenario2_1elijn-23": 9, "scenario2_2elijn-23": 22,
            "scenario5-23": 20},
}
# What the history of each case gives: per earlier pregnancy its Condition, maternal record,
# EindeZw, due date and irregular antibodies; where it had a delivery, the delivery, placenta and
# blood loss (scenario5 sends no blood loss), and per child bc-Child, bc-MotherOf, bc-Birth, type
# partus, birth weight percentile and Apgar 5; and its diagnoses (kernset23-history/diagnosis: two
# in scenario2_1elijn, three in scenario2_2elijn, two in scenario5).
HISTORY_COUNTS = {"scenario1-23": 14, "scenario2_1elijn-23": 7, "scenario2_2elijn-23": 8,
                  "scenario5-23": 15}
CASES = tuple(HISTORY_COUNTS)


# -- inputs -------------------------------------------------------------------------------------


def _strip_history(text: str) -> bytes:
    """The same document without its obstetric history (the output as before the history)."""
    tree = etree.fromstring(text.encode("utf-8"))
    for found in tree.xpath(HISTORY_HL7, namespaces=NS):
        wrapper = found.getparent()  # pertinentInformation3
        wrapper.getparent().remove(wrapper)
    for found in tree.xpath(HISTORY_ADA):
        found.getparent().remove(found)
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8")


def _hl7_observation(code: str, system: str, value: str, negation: str = "") -> str:
    negation_attr = f' negationInd="{negation}"' if negation else ""
    return (f'<observation classCode="OBS" moodCode="EVN"{negation_attr}>'
            f'<code code="{code}" codeSystem="{system}"/>{value}</observation>')


def _hl7_birth(born: str, partus: str, apgar: str) -> str:
    return (
        '<outboundRelationship typeCode="COMP"><procedure classCode="PROC" moodCode="EVN">'
        '<templateId root="2.16.840.1.113883.2.4.6.10.90.901108"/>'
        '<code code="Baring" codeSystem="2.16.840.1.113883.2.4.3.22.1.3"/>'
        '<subject typeCode="SBJ"><personalRelationship classCode="PRS">'
        '<code code="CHILD" codeSystem="2.16.840.1.113883.5.111"/>'
        '<relationshipHolder classCode="PSN" determinerCode="INSTANCE">'
        f'<birthTime value="{born.replace("-", "")}"/></relationshipHolder>'
        '</personalRelationship></subject>'
        '<outboundRelationship typeCode="COMP">'
        + _hl7_observation("364336006", "2.16.840.1.113883.6.96",
                           f'<value code="{partus}" codeSystem="2.16.840.1.113883.6.96"/>')
        + '</outboundRelationship><outboundRelationship typeCode="COMP">'
        + _hl7_observation("9274-2", "2.16.840.1.113883.6.1", f'<value value="{apgar}"/>')
        + "</outboundRelationship></procedure></outboundRelationship>"
    )


def _hl7_history(pregnancy: dict[str, Any]) -> str:
    parts = [_hl7_observation("EindeZw", "2.16.840.1.113883.2.4.4.13",
                              f'<value code="{pregnancy["end"]}" '
                              'codeSystem="2.16.840.1.113883.2.4.4.13.46"/>')]
    if pregnancy["edd"]:
        parts.append(_hl7_observation("EDDDef", "2.16.840.1.113883.2.4.4.13",
                                      f'<value value="{pregnancy["edd"].replace("-", "")}"/>'))
    parts.append(_hl7_observation("312457003", "2.16.840.1.113883.6.96", "",
                                  "false" if pregnancy["antibodies"] else "true"))
    if pregnancy["blood_loss"]:
        births = "".join(_hl7_birth(*b) for b in pregnancy["births"])
        parts.append(
            '<procedure classCode="PROC" moodCode="EVN">'
            '<code code="236973005" codeSystem="2.16.840.1.113883.6.96"/>'
            '<outboundRelationship typeCode="COMP">'
            + _hl7_observation("364332008", "2.16.840.1.113883.6.96",
                               f'<value value="{pregnancy["blood_loss"]}" unit="ml"/>')
            + f"</outboundRelationship>{births}</procedure>")
    components = "".join(f'<component typeCode="COMP">{p}</component>' for p in parts)
    return ('<pertinentInformation3 typeCode="PERT">'
            '<organizer classCode="CONTAINER" moodCode="EVN">'
            '<templateId root="2.16.840.1.113883.2.4.6.10.90.901095"/>'
            f'<code code="248983002" codeSystem="2.16.840.1.113883.6.96"/>{components}'
            "</organizer></pertinentInformation3>")


def _ada_history(pregnancy: dict[str, Any]) -> str:
    parts = [f'<wijze_einde_zwangerschap code="{pregnancy["end"]}" '
             'codeSystem="2.16.840.1.113883.2.4.4.13.46"/>']
    if pregnancy["edd"]:
        parts.append(f'<definitieve_a_terme_datum value="{pregnancy["edd"]}"/>')
    parts.append(f'<irregulaire_antistoffenq value="{str(pregnancy["antibodies"]).lower()}"/>')
    if pregnancy["blood_loss"]:
        births = "".join(
            "<vorige_uitkomst_per_kind><vorige_baring>"
            f'<demografische_gegevens><geboortedatum value="{born}"/></demografische_gegevens>'
            "<kindspecifieke_gegevens_vorige_uitkomsten>"
            f'<type_partus code="{partus}" codeSystem="2.16.840.1.113883.6.96"/>'
            f'<apgarscore_na_5_min value="{apgar}"/>'
            "</kindspecifieke_gegevens_vorige_uitkomsten></vorige_baring></vorige_uitkomst_per_kind>"
            for born, partus, apgar in pregnancy["births"])
        parts.append("<eerdere_bevalling>"
                     f'<hoeveelheid_bloedverlies value="{pregnancy["blood_loss"]}" unit="ml"/>'
                     f"{births}</eerdere_bevalling>")
    return ("<obstetrische_anamnese_gegroepeerd_per_voorgaande_zwangerschap>"
            + "".join(parts) + "</obstetrische_anamnese_gegroepeerd_per_voorgaande_zwangerschap>")


# Four earlier pregnancies: twins in the first; no due date in the third; the fourth repeats the
# first one's due date (a sender's mistake that must not merge two pregnancies). Each has its own
# way of ending, blood loss and birth values, so every finding can be traced to its pregnancy.
EARLIER = [
    {"edd": "2016-01-10", "end": "1", "antibodies": False, "blood_loss": "300",
     "births": [("2016-01-08", "177184002", "9"), ("2016-01-08", "11466000", "7")]},
    {"edd": "2018-03-01", "end": "2", "antibodies": True, "blood_loss": "", "births": []},
    {"edd": "", "end": "3", "antibodies": False, "blood_loss": "800",
     "births": [("2019-05-05", "3311000146109", "10")]},
    {"edd": "2016-01-10", "end": "4", "antibodies": True, "blood_loss": "", "births": []},
]
WOMAN = "999910048"  # made up, passes the 11-test
CHILD = "999910061"  # made up, passes the 11-test

SYNTHETIC_HL7 = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<REPC_IN004014NL xmlns="{HL7}"><id root="2.16.840.1.113883.2.4.6.99.1" extension="TEST-1"/>'
    '<ControlActProcess classCode="CACT" moodCode="EVN"><subject typeCode="SUBJ">'
    '<registrationProcess classCode="REG" moodCode="EVN"><subject2 typeCode="SUBJ">'
    '<CareProvisionEvent classCode="PCPR" moodCode="EVN">'
    '<templateId root="2.16.840.1.113883.2.4.6.10.90.76"/>'
    '<id root="2.16.840.1.113883.2.4.6.99.2" extension="DOSSIER-1"/>'
    '<effectiveTime><low value="20210601"/></effectiveTime>'
    f'<subject typeCode="SBJ"><patient classCode="PAT"><id root="2.16.840.1.113883.2.4.6.3" '
    f'extension="{WOMAN}"/></patient></subject>'
    '<pertinentInformation3 typeCode="PERT">'
    + _hl7_observation("Gravidity", "2.16.840.1.113883.2.4.4.13", '<value value="5"/>')
    + "</pertinentInformation3>"
    + "".join(_hl7_history(p) for p in EARLIER[:2])
    + '<pertinentInformation3 typeCode="PERT"><organizer classCode="CLUSTER" moodCode="EVN">'
    '<templateId root="2.16.840.1.113883.2.4.6.10.90.901101"/>'
    '<component typeCode="COMP"><procedure classCode="PROC" moodCode="EVN">'
    '<templateId root="2.16.840.1.113883.2.4.6.10.90.901102"/>'
    '<subject typeCode="SBJ"><personalRelationship classCode="PRS">'
    '<code code="CHILD" codeSystem="2.16.840.1.113883.5.111"/>'
    '<relationshipHolder classCode="PSN" determinerCode="INSTANCE">'
    f'<id root="2.16.840.1.113883.2.4.6.3" extension="{CHILD}"/><birthTime value="20220201"/>'
    "</relationshipHolder></personalRelationship></subject>"
    '<outboundRelationship typeCode="COMP">'
    + _hl7_observation("9274-2", "2.16.840.1.113883.6.1", '<value value="8"/>')
    + "</outboundRelationship></procedure></component></organizer></pertinentInformation3>"
    + "".join(_hl7_history(p) for p in EARLIER[2:])
    + "</CareProvisionEvent></subject2></registrationProcess></subject></ControlActProcess>"
    "</REPC_IN004014NL>"
)
SYNTHETIC_ADA = (
    '<?xml version="1.0" encoding="UTF-8"?><adaxml><data>'
    '<kernset_geboortezorg transactionRef="2.16.840.1.113883.2.4.3.11.60.90.77.4.2437" id="t-1">'
    '<zorgverlening><datum_start_zorgverantwoordelijkheid value="2021-06-01"/></zorgverlening>'
    f'<vrouw><burgerservicenummer root="2.16.840.1.113883.2.4.6.3" value="{WOMAN}"/></vrouw>'
    + "".join(_ada_history(p) for p in EARLIER)
    + '<zwangerschap><dossiernummer root="2.16.840.1.113883.2.4.6.99.2" value="DOSSIER-1"/>'
    '<graviditeit value="5"/></zwangerschap>'
    "<uitkomst_per_kind><baring><demografische_gegevens><identificaties_kind>"
    f'<bsn_kind root="2.16.840.1.113883.2.4.6.3" value="{CHILD}"/></identificaties_kind>'
    '<geboortedatum value="2022-02-01"/></demografische_gegevens>'
    '<kindspecifieke_uitkomstgegevens><lichamelijk_onderzoek_kind>'
    '<apgarscore_na_5_min value="8"/></lichamelijk_onderzoek_kind>'
    "</kindspecifieke_uitkomstgegevens></baring></uitkomst_per_kind>"
    "</kernset_geboortezorg></data></adaxml>"
)


# -- running ------------------------------------------------------------------------------------


def _run(inputs: dict[str, str], out: Path) -> tuple[dict, dict[str, dict]]:
    folder = out / "in"
    folder.mkdir(parents=True)
    for name, text in inputs.items():
        (folder / name).write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    report = convert([folder], out / "out")
    return report, {Path(name).stem: bundle for name, bundle in bundles(out / "out").items()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Per format: the corpus cases as they are and without their history, converted."""
    base = corpus_path("nictiz-peri-hl7v3-cda", "2.3.6", "kernset_geboortezorg")
    found: dict[str, dict] = {}
    for fmt, sub in (("hl7", "hl7_instance"), ("ada", "ada_instance")):
        texts = {f"{case}.xml": resolve_placeholders(
            (base / sub / f"{case}.xml").read_text(encoding="utf-8"), GENERATED_ON)
            for case in CASES}
        whole_report, whole = _run(texts, tmp_path_factory.mktemp(f"{fmt}-whole"))
        bare_report, bare = _run({n: _strip_history(t) for n, t in texts.items()},
                                 tmp_path_factory.mktemp(f"{fmt}-bare"))
        organizers = {case: len(etree.fromstring(texts[f"{case}.xml"].encode("utf-8")).xpath(
            HISTORY_HL7 if fmt == "hl7" else HISTORY_ADA, namespaces=NS)) for case in CASES}
        found[fmt] = {"reports": (whole_report, bare_report), "whole": whole, "bare": bare,
                      "organizers": organizers}
    return found


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """The synthetic message in both renderings, with and without its history."""
    inputs = {"hl7.xml": SYNTHETIC_HL7, "ada.xml": SYNTHETIC_ADA}
    report, whole = _run(inputs, tmp_path_factory.mktemp("synthetic-whole"))
    bare_report, bare = _run({n: _strip_history(t) for n, t in inputs.items()},
                             tmp_path_factory.mktemp("synthetic-bare"))
    assert report["outcomes"] == {"loaded": 2}, report
    assert bare_report["outcomes"] == {"loaded": 2}, bare_report
    return {"whole": whole, "bare": bare}


# -- reading the output -------------------------------------------------------------------------


def _entries(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["fullUrl"]: e["resource"] for e in bundle["entry"]
            if e["resource"]["resourceType"] != "Provenance"}


def _is(resource: dict[str, Any], profile: str, code: str | None = None) -> bool:
    if SD + profile not in resource.get("meta", {}).get("profile", []):
        return False
    return code is None or code in {c["code"] for c in resource["code"]["coding"]}


def _of(resources: dict[str, dict], profile: str, code: str | None = None) -> dict[str, dict]:
    return {url: r for url, r in resources.items() if _is(r, profile, code)}


def _code(resource: dict[str, Any]) -> str:
    return resource["valueCodeableConcept"]["coding"][0]["code"]


def _focus(resource: dict[str, Any]) -> str:
    return next(e["valueReference"]["reference"] for e in resource.get("extension", [])
                if e["url"] == FOCUS)


def _history(bundle: dict, bare: dict) -> dict[str, dict]:
    """The resources the history added: those the same document without it does not give."""
    current = _entries(bare)
    return {url: r for url, r in _entries(bundle).items() if url not in current}


# -- corpus -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["hl7", "ada"])
def test_every_corpus_case_loads_with_and_without_its_history(corpus: dict, fmt: str) -> None:
    whole_report, bare_report = corpus[fmt]["reports"]
    assert whole_report["outcomes"] == {"loaded": len(CASES)}
    assert bare_report["outcomes"] == {"loaded": len(CASES)}


@pytest.mark.parametrize("fmt", ["hl7", "ada"])
@pytest.mark.parametrize("case", CASES)
def test_one_earlier_pregnancy_per_history_organizer(corpus: dict, fmt: str, case: str) -> None:
    run = corpus[fmt]
    added = _history(run["whole"][case], run["bare"][case])
    pregnancies = _of(added, "zib-Pregnancy")
    episodes = _of(added, "bc-MaternalRecord")

    assert run["organizers"][case] >= 1
    assert len(pregnancies) == run["organizers"][case]
    assert {r["clinicalStatus"] for r in pregnancies.values()} == {"resolved"}
    # The current pregnancy is the one with the dossier number.
    assert all("identifier" not in r for r in pregnancies.values())
    assert len(episodes) == len(pregnancies)
    assert {r["status"] for r in episodes.values()} == {"finished"}
    diagnoses = {e["diagnosis"][0]["condition"]["reference"] for e in episodes.values()}
    assert diagnoses == set(pregnancies)
    assert len(added) == HISTORY_COUNTS[case]


@pytest.mark.parametrize("fmt", ["hl7", "ada"])
@pytest.mark.parametrize("case", CASES)
def test_the_current_pregnancy_is_unchanged(corpus: dict, fmt: str, case: str) -> None:
    run = corpus[fmt]
    whole, bare = _entries(run["whole"][case]), _entries(run["bare"][case])

    assert len(bare) == BEFORE[fmt][case]
    assert {url: whole.get(url) for url in bare} == bare  # same ids, same content
    current = [u for u, r in bare.items() if _is(r, "zib-Pregnancy")]
    assert len(current) == 1
    history_pregnancies = set(_of(_history(run["whole"][case], run["bare"][case]),
                                  "zib-Pregnancy"))
    for resource in bare.values():
        assert not history_pregnancies & set(_references(resource))


@pytest.mark.parametrize("fmt", ["hl7", "ada"])
@pytest.mark.parametrize("case", CASES)
def test_every_history_resource_points_into_its_own_pregnancy(
    corpus: dict, fmt: str, case: str
) -> None:
    run = corpus[fmt]
    added = _history(run["whole"][case], run["bare"][case])
    current = set(_entries(run["bare"][case])) - {
        u for u, r in _entries(run["bare"][case]).items() if _is(r, "bc-Woman")}
    for resource in added.values():
        assert not set(_references(resource)) & current, resource["resourceType"]
    _check_links(added)


def test_the_first_scenario_history_holds_its_delivery_and_child(corpus: dict) -> None:
    run = corpus["hl7"]
    added = _history(run["whole"]["scenario1-23"], run["bare"]["scenario1-23"])
    (delivery_url,) = _of(added, "bc-DeliveryProcedure")
    (birth,) = _of(added, "bc-Birth").values()
    ((child_url, child),) = _of(added, "bc-Child").items()
    blood_loss = next(iter(_of(added, "bc-DeliveryObservation", "364332008").values()))
    end = next(iter(_of(added, "bc-PregnancyObservation", "EindeZw").values()))

    assert child == {"resourceType": "Patient", "id": child["id"], "meta": child["meta"],
                     "birthDate": "2018-12-08"}
    assert birth["subject"]["reference"] == child_url
    assert birth["partOf"][0]["reference"] == delivery_url
    assert blood_loss["valueQuantity"]["value"] == 550
    assert _focus(blood_loss) == delivery_url
    assert end["valueCodeableConcept"]["coding"][0]["code"] == "1"


def test_the_history_ids_are_the_same_in_both_formats(corpus: dict) -> None:
    for case in CASES:
        hl7 = _history(corpus["hl7"]["whole"][case], corpus["hl7"]["bare"][case])
        ada = _history(corpus["ada"]["whole"][case], corpus["ada"]["bare"][case])
        assert set(hl7) == set(ada), case


# -- synthetic: four earlier pregnancies --------------------------------------------------------


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return found + [r for value in node.values() for r in _references(value)]
    if isinstance(node, list):
        return [r for item in node for r in _references(item)]
    return []


def _check_links(added: dict[str, dict]) -> None:
    """Every history resource's pregnancy, record, delivery and birth belong together."""
    pregnancies = _of(added, "zib-Pregnancy")
    episode_of = {e["diagnosis"][0]["condition"]["reference"]: url
                  for url, e in _of(added, "bc-MaternalRecord").items()}
    assert len(episode_of) == len(pregnancies)
    for url, pregnancy in pregnancies.items():
        assert pregnancy["context"]["reference"] == episode_of[url]
    deliveries = _of(added, "bc-DeliveryProcedure")
    pregnancy_of = {url: d["reasonReference"][0]["reference"] for url, d in deliveries.items()}
    for url, delivery in deliveries.items():
        assert delivery["context"]["reference"] == episode_of[pregnancy_of[url]]
    births = _of(added, "bc-Birth")
    for url, birth in births.items():
        own = birth["reasonReference"][0]["reference"]
        assert pregnancy_of[birth["partOf"][0]["reference"]] == own
        assert birth["context"]["reference"] == episode_of[own]
        pregnancy_of[url] = own
    children = {b["subject"]["reference"]: url for url, b in births.items()}
    assert len(children) == len(births)  # each birth its own child
    assert set(children) == set(_of(added, "bc-Child"))
    mothers = _of(added, "bc-MotherOf")
    assert sorted(m["patient"]["reference"] for m in mothers.values()) == sorted(children)
    for url, resource in _of(added, "bc-DisorderOfPregnancy").items():
        own = next(e["valueReference"]["reference"] for e in resource["extension"]
                   if e["url"].endswith("condition-partOf"))
        assert own in pregnancies, url
        assert resource["context"]["reference"] == episode_of[own]
    for url, resource in added.items():
        if resource["resourceType"] != "Observation":
            continue
        focus = _focus(resource)
        own = pregnancy_of.get(focus, focus)
        assert own in pregnancies, url
        assert resource["context"]["reference"] == episode_of[own]
        if _is(resource, "zib-ApgarScore"):
            birth = births[children[resource["subject"]["reference"]]]
            assert birth["reasonReference"][0]["reference"] == own


@pytest.mark.parametrize("fmt", ["hl7", "ada"])
def test_four_earlier_pregnancies_give_four_of_their_own(synthetic: dict, fmt: str) -> None:
    added = _history(synthetic["whole"][fmt], synthetic["bare"][fmt])
    pregnancies = _of(added, "zib-Pregnancy")

    assert len(pregnancies) == len(EARLIER)  # the fourth shares the first's due date: not merged
    assert len(_of(added, "bc-MaternalRecord")) == len(EARLIER)
    assert len(_of(added, "bc-DeliveryProcedure")) == 2
    assert len(_of(added, "bc-Birth")) == 3
    assert len(_of(added, "bc-Child")) == 3
    _check_links(added)


@pytest.mark.parametrize("fmt", ["hl7", "ada"])
def test_each_finding_is_on_the_pregnancy_delivery_and_birth_it_came_with(
    synthetic: dict, fmt: str
) -> None:
    added = _history(synthetic["whole"][fmt], synthetic["bare"][fmt])
    births = _of(added, "bc-Birth")
    deliveries = _of(added, "bc-DeliveryProcedure")
    pregnancy_of = {url: d["reasonReference"][0]["reference"] for url, d in deliveries.items()}
    by_pregnancy: dict[str, dict[str, Any]] = {url: {"births": []}
                                               for url in _of(added, "zib-Pregnancy")}
    for resource in added.values():
        if _is(resource, "bc-PregnancyObservation", "EindeZw"):
            by_pregnancy[_focus(resource)]["end"] = _code(resource)
        elif _is(resource, "bc-PregnancyObservation", "147781000146105"):
            by_pregnancy[_focus(resource)]["edd"] = resource["valueDateTime"]
        elif _is(resource, "zib-LaboratoryTestResult-Observation", "312457003"):
            by_pregnancy[_focus(resource)]["antibodies"] = resource["valueBoolean"]
        elif _is(resource, "bc-DeliveryObservation", "364332008"):
            by_pregnancy[pregnancy_of[_focus(resource)]]["blood_loss"] = (
                f'{resource["valueQuantity"]["value"]:g}')
    children = {b["subject"]["reference"]: url for url, b in births.items()}
    for resource in added.values():
        if _is(resource, "bc-BirthObservation", "364336006"):
            birth = births[_focus(resource)]
            apgar = next(a["valueQuantity"]["value"] for a in _of(added, "zib-ApgarScore").values()
                         if children[a["subject"]["reference"]] == _focus(resource))
            own = pregnancy_of[birth["partOf"][0]["reference"]]
            by_pregnancy[own]["births"].append(
                (birth["performedDateTime"][:10], _code(resource), str(apgar)))

    found = sorted(
        (p["end"], p.get("edd", ""), p["antibodies"], p.get("blood_loss", ""), sorted(p["births"]))
        for p in by_pregnancy.values())
    expected = sorted((p["end"], p["edd"], p["antibodies"], p["blood_loss"], sorted(p["births"]))
                      for p in EARLIER)
    assert found == expected


@pytest.mark.parametrize("fmt", ["hl7", "ada"])
def test_the_current_pregnancy_keeps_its_own_birth_and_resources(synthetic: dict, fmt: str) -> None:
    whole, bare = _entries(synthetic["whole"][fmt]), _entries(synthetic["bare"][fmt])
    added = _history(synthetic["whole"][fmt], synthetic["bare"][fmt])

    assert {url: whole.get(url) for url in bare} == bare
    (current,) = _of(bare, "zib-Pregnancy")
    assert _of(bare, "zib-Pregnancy")[current]["identifier"][0]["value"] == "DOSSIER-1"
    (birth,) = _of(bare, "bc-Birth").values()
    assert birth["reasonReference"][0]["reference"] == current
    (child,) = _of(bare, "bc-Child").values()
    assert child["identifier"][0]["value"] == CHILD
    assert Counter(r["resourceType"] for r in whole.values()) == (
        Counter(r["resourceType"] for r in bare.values())
        + Counter(r["resourceType"] for r in added.values()))


def test_the_synthetic_history_is_the_same_in_both_formats(synthetic: dict) -> None:
    hl7 = _history(synthetic["whole"]["hl7"], synthetic["bare"]["hl7"])
    ada = _history(synthetic["whole"]["ada"], synthetic["bare"]["ada"])

    assert set(hl7) == set(ada)  # the same ids
    as_bundle = lambda found: {"entry": [{"fullUrl": u, "resource": r}  # noqa: E731
                                         for u, r in found.items()]}
    assert canonical(as_bundle(hl7)) == canonical(as_bundle(ada))
