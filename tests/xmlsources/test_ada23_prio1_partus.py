"""ADA 2.3 prio 1 (previous and current pregnancy) and delivery data against Nictiz's reference FHIR.

Inputs: ``nictiz-gebz-babyconnect-fhir/2.3`` (three previous pregnancies, one current pregnancy,
one bevallingsgegevens). The prio 1 test instances carry placeholder dates (``T-1431D``); Nictiz's
output puts T-1431D on 2016-08-01, so they are resolved against 2 July 2020 in copies (never in the
repository). Our resources are compared with Nictiz's transaction Bundles by content (profile, code,
value; not ids), with every difference named (``NOT_PRODUCED``, ``DIFFERENCES``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import corpus_path
from tests.support.xmlsources import bundles, convert, resolve_placeholders

BASE = ("nictiz-gebz-babyconnect-fhir", "2.3")
INPUTS = {"prio1_vorige_zwangerschap": "ada_instance", "prio1_huidige_zwangerschap": "ada_instance",
          "partus": "ada-instance"}
# T-1431D is 2016-08-01 in Nictiz's output of wouden-1e (datum_einde_zwangerschap, geboortedatum).
GENERATED_ON = date(2020, 7, 2)
FHIR = "{http://hl7.org/fhir}"
BC = "http://nictiz.nl/fhir/StructureDefinition/"
FOCUS = BC + "observation-focusSTU3"
WOMAN_BSN = "999910413"  # Nictiz's test BSN in all five instances

# What Nictiz's output has that we deliberately do not produce, by comparison key (below).
NOT_PRODUCED = {
    ("Composition", "bc-TransactionComposition"):
        "a document summary per transaction; the project writes transaction Bundles of the "
        "clinical resources only, as for every other source",
    ("Practitioner", ""):
        "prio 1: Nictiz invents an empty practitioner from the zorgverlener the instances have "
        "commented out; nothing in the input names one",
    ("PractitionerRole", "", "prio1"):
        "prio 1: the role of that empty practitioner",
    ("ReferralRequest", "bc-ReferralRequest"):
        "partus: the referral (verwijsdetails: date, receiving organisation 1200 without an "
        "identifier system, AGB specialism, perinatal period) is not mapped yet "
        "(docs/xml-sources.md)",
    ("Organization", "1200"):
        "partus: the referral's receiving organisation, only referenced by the referral",
    ("Observation", "bc-BirthObservation", "8339-4", None):
        "partus: a birth weight without a value (nullFlavor NI); we write no empty finding",
}
# Known differences in how the same resource is written (the comparison normalises them).
DIFFERENCES = {
    "zib-Pregnancy code": "Nictiz writes SCT 364320009; the profile fixes 118185001",
    "zib-Pregnancy clinicalStatus": "Nictiz writes 'finished' (not a condition-clinical code); "
                                    "we write 'resolved'",
    "patient profiles": "Nictiz writes nl-core-patient only; we add bc-Woman / bc-Child",
    "birth weight subject": "Nictiz: subject the child, no focus; bc-BirthObservation demands the "
                            "woman as subject, so ours focuses the bc-Birth instead",
    "partus times": "Nictiz writes the local times of the partus instance as UTC (Z); we keep "
                    "them local (+02:00); compared to the minute",
    "EDD (partus)": "Nictiz: zib-Pregnancy-TermDate without a code; ours bc-PregnancyObservation "
                    "SCT 147781000146105 (kernset23/edd)",
    "Hb": "Nictiz: LOINC 718-7 (mass/volume) with a value in mmol/L; ours 59260-0 (moles/volume)",
    "practitioner name": "Nictiz puts the free-text name in family; ours in name.text",
    "code systems": "Nictiz writes 'PerinatologyProcedurePRN' and 'https://snomed.info/sct'; ours "
                    "urn:oid:2.16.840.1.113883.2.4.3.22.1.3 and http://snomed.info/sct "
                    "(compared by code)",
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict[str, dict]]:
    base = corpus_path(*BASE)
    folder = tmp_path_factory.mktemp("ada23-prio1")
    resolved = folder / "in"
    for case, sub in INPUTS.items():
        (resolved / case).mkdir(parents=True)
        for source in sorted((base / case / sub).glob("*.xml")):
            text = source.read_text(encoding="utf-8")
            (resolved / case / source.name).write_text(
                resolve_placeholders(text, GENERATED_ON), encoding="utf-8")
    out = folder / "out"
    report = convert([resolved / case for case in INPUTS], out, validation="strict")
    return report, bundles(out)


def _resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] != "Provenance"]


def _ours(found: dict[str, dict], name: str) -> list[dict[str, Any]]:
    return _resources(found[name.replace(" ", "_")])


# -- Nictiz's reference FHIR (XML) as plain dicts ---------------------------------------------


def _xml_to_dict(element: ET.Element) -> Any:
    node: dict[str, Any] = {}
    if "value" in element.attrib:
        node["value"] = element.attrib["value"]
    if "url" in element.attrib:
        node["url"] = element.attrib["url"]
    for child in element:
        tag = child.tag.replace(FHIR, "")
        if tag == "text" and child.find("{http://www.w3.org/1999/xhtml}div") is not None:
            continue  # the narrative
        node.setdefault(tag, []).append(_xml_to_dict(child))
    return node


def _v(node: Any, *path: str) -> str | None:
    """The first value along ``path`` in an XML-derived dict (lists at every level)."""
    for step in path:
        if not isinstance(node, dict) or step not in node:
            return None
        node = node[step][0]
    return node.get("value") if isinstance(node, dict) else None


def _reference_resources(path: Path) -> list[tuple[str, dict[str, Any]]]:
    root = ET.parse(path).getroot()
    found = []
    for entry in root.findall(f"{FHIR}entry"):
        resource = entry.find(f"{FHIR}resource")[0]
        found.append((resource.tag.replace(FHIR, ""), _xml_to_dict(resource)))
    return found


def _tail(profiles: list[str]) -> str:
    specific = [p for p in profiles if "/bc-" in p or "/zib-" in p]
    return (specific[-1] if specific else "").rsplit("/", 1)[-1]


def _minute(text: str | None) -> str | None:
    return text[:16] if text else text


def _number(text: Any) -> str | None:
    return None if text is None else f"{float(text):g}"


def _key_nictiz(kind: str, r: dict[str, Any], case: str) -> tuple:
    profiles = [p["value"] for p in r.get("meta", [{}])[0].get("profile", [])]
    tail = _tail(profiles)
    if kind == "Patient":
        bsn = _v(r, "identifier", "value")
        return ("Patient", "woman") if bsn == WOMAN_BSN else ("Patient", "child", _v(r, "birthDate"))
    if kind == "Condition":
        return ("Condition", tail)
    if kind == "EpisodeOfCare":
        return ("EpisodeOfCare", tail, _v(r, "type", "coding", "code"), _v(r, "status"))
    if kind == "Procedure":
        return ("Procedure", tail, _v(r, "code", "coding", "code"),
                _minute(_v(r, "performedPeriod", "start")))
    if kind == "Organization":
        return ("Organization", _v(r, "name") or _v(r, "identifier", "value"))
    if kind == "PractitionerRole":
        return ("PractitionerRole", "", "prio1" if case != "partus" else "partus")
    if kind == "Practitioner":
        return ("Practitioner", _v(r, "name", "family") or "")
    if kind == "RelatedPerson":
        return ("RelatedPerson", _v(r, "name", "family"), _v(r, "name", "given"))
    if kind == "Observation":
        code = _v(r, "code", "coding", "code")
        if tail == "zib-Pregnancy-TermDate":  # DIFFERENCES "EDD (partus)"
            tail, code = "bc-PregnancyObservation", "147781000146105"
        if code == "718-7":  # DIFFERENCES "Hb"
            code = "59260-0"
        value = (_number(_v(r, "valueQuantity", "value")) or _v(r, "valueCodeableConcept", "coding", "code")
                 or _minute(_v(r, "valueDateTime")))
        return ("Observation", tail, code, value)
    return (kind, tail)


def _key_ours(r: dict[str, Any]) -> tuple:
    kind = r["resourceType"]
    tail = _tail(r.get("meta", {}).get("profile", []))
    first = lambda items: (items or [{}])[0]  # noqa: E731
    if kind == "Patient":
        if tail == "bc-Woman":
            return ("Patient", "woman")
        return ("Patient", "child", r.get("birthDate"))
    if kind == "Condition":
        return ("Condition", tail)
    if kind == "EpisodeOfCare":
        return ("EpisodeOfCare", tail, first(first(r.get("type"))["coding"])["code"], r.get("status"))
    if kind == "Procedure":
        return ("Procedure", tail, first(r["code"]["coding"])["code"],
                _minute(r.get("performedPeriod", {}).get("start")))
    if kind == "Organization":
        return ("Organization", r.get("name") or first(r.get("identifier")).get("value"))
    if kind == "PractitionerRole":
        return ("PractitionerRole", "", "partus")
    if kind == "Practitioner":
        return ("Practitioner", first(r.get("name")).get("text") or "")
    if kind == "RelatedPerson":
        name = first(r.get("name"))
        return ("RelatedPerson", name.get("family"), first(name.get("given")) or None)
    if kind == "Observation":
        value = (_number(r.get("valueQuantity", {}).get("value"))
                 or first(r.get("valueCodeableConcept", {}).get("coding")).get("code")
                 or _minute(r.get("valueDateTime")))
        return ("Observation", tail, first(r["code"]["coding"])["code"], value)
    return (kind, tail)


def _not_produced(key: tuple) -> bool:
    return any(key[:len(k)] == k for k in NOT_PRODUCED)


def _compare(reference: Path, ours: list[dict[str, Any]], case: str) -> tuple[Counter, Counter, Counter]:
    """Return (reference keys, matched keys, reference keys deliberately not produced)."""
    expected = Counter(_key_nictiz(kind, r, case) for kind, r in _reference_resources(reference))
    produced = Counter(_key_ours(r) for r in ours)
    skipped = Counter({k: n for k, n in expected.items() if _not_produced(k)})
    return expected, (expected - skipped) & produced, skipped


def _reference_bundles(case: str) -> list[Path]:
    folder = corpus_path(*BASE, case, "fhir_instance")
    return sorted(p for p in folder.glob("*transaction*.xml") if "conditionalReferences" not in p.name)


def _gravidity(path: Path) -> str:
    for kind, r in _reference_resources(path):
        if kind == "Observation" and _v(r, "code", "coding", "code") == "11996-6":
            return _v(r, "valueQuantity", "value")
    raise AssertionError(f"no gravidity in {path.name}")


# -- 1. everything loads ----------------------------------------------------------------------


def test_all_five_instances_load_under_strict_validation(run: tuple) -> None:
    report, found = run
    assert report["records_in"] == 5
    assert report["outcomes"] == {"loaded": 5}, report["quarantined"]
    assert "invalid" not in report["quarantine_reasons"]
    assert set(found) == {"wouden-1e_zwangerschap.xml", "wouden-2e_zwangerschap.xml",
                          "wouden-3e_zwangerschap.xml", "wouden-huidige_zwangerschap.xml",
                          "bevallingsgegevens.xml"}


def test_unresolved_placeholders_are_quarantined_bad_datetime(tmp_path: Path) -> None:
    base = corpus_path(*BASE)
    report = convert([base / case / sub for case, sub in INPUTS.items()], tmp_path / "out")
    reasons = {Path(q["file"]).name: q["code"] for q in report["quarantined"]}
    assert reasons == {"wouden-1e zwangerschap.xml": "bad-datetime",
                       "wouden-2e zwangerschap.xml": "bad-datetime",
                       "wouden-3e zwangerschap.xml": "bad-datetime",
                       "wouden-huidige zwangerschap.xml": "bad-datetime"}
    # bevallingsgegevens carries real dates and loads as it is.
    assert report["outcomes"] == {"loaded": 1, "quarantined": 4}


# -- 2. against Nictiz's reference output ------------------------------------------------------


def test_previous_pregnancies_match_nictiz_resource_by_resource(run: tuple) -> None:
    _, found = run
    references = _reference_bundles("prio1_vorige_zwangerschap")
    assert len(references) == 3
    totals = Counter()
    for reference in references:
        ours = _ours(found, f"wouden-{_gravidity(reference)}e zwangerschap.xml")
        expected, matched, skipped = _compare(reference, ours, "prio1")
        missing = expected - skipped - matched
        assert not missing, f"{reference.name}: not produced: {sorted(missing)}"
        totals.update(expected=sum(expected.values()), matched=sum(matched.values()),
                      skipped=sum(skipped.values()))
    # 21 + 11 + 21 resources in Nictiz's Bundles; all but the Composition, the empty
    # practitioner and its role (3 per Bundle) are matched.
    assert totals == Counter(expected=53, matched=44, skipped=9)


def test_partus_matches_nictiz_resource_by_resource(run: tuple) -> None:
    _, found = run
    (reference,) = _reference_bundles("partus")
    expected, matched, skipped = _compare(reference, _ours(found, "bevallingsgegevens.xml"), "partus")
    missing = expected - skipped - matched
    assert not missing, f"not produced: {sorted(missing)}"
    assert sum(expected.values()) == 25
    assert sum(matched.values()) == 21
    assert set(skipped) == {("Composition", "bc-TransactionComposition"),
                            ("ReferralRequest", "bc-ReferralRequest"), ("Organization", "1200"),
                            ("Observation", "bc-BirthObservation", "8339-4", None)}


# -- 3. key elements, each of which a broken mapping would change --------------------------------


def _by(resources: list[dict], kind: str, profile: str = "", code: str = "") -> list[dict]:
    return [r for r in resources if r["resourceType"] == kind
            and (not profile or BC + profile in r.get("meta", {}).get("profile", []))
            and (not code or any(c.get("code") == code for c in r.get("code", {}).get("coding", [])))]


def _one(resources: list[dict], kind: str, profile: str = "", code: str = "") -> dict:
    found = _by(resources, kind, profile, code)
    assert len(found) == 1, (kind, profile, code, len(found))
    return found[0]


def _url(bundle: dict, resource: dict) -> str:
    return next(e["fullUrl"] for e in bundle["entry"] if e["resource"] is resource)


def _focus(resource: dict) -> str:
    return next(e["valueReference"]["reference"] for e in resource.get("extension", [])
                if e["url"] == FOCUS)


def test_each_previous_pregnancy_is_its_own_resolved_pregnancy_and_maternal_record(run: tuple) -> None:
    _, found = run
    ids = set()
    for number in ("1", "2", "3"):
        bundle = found[f"wouden-{number}e_zwangerschap.xml"]
        ours = _resources(bundle)
        pregnancy = _one(ours, "Condition", "zib-Pregnancy")
        assert pregnancy["code"]["coding"][0]["code"] == "118185001"
        assert pregnancy["clinicalStatus"] == "resolved"
        episode = _one(ours, "EpisodeOfCare", "bc-MaternalRecord")
        assert episode["status"] == "finished"
        assert episode["diagnosis"][0]["condition"]["reference"] == _url(bundle, pregnancy)
        gravidity = _one(ours, "Observation", "zib-Pregnancy-Gravidity")
        assert gravidity["valueQuantity"]["value"] == int(number)
        assert _focus(gravidity) == _url(bundle, pregnancy)
        ids.add(pregnancy["id"])
    assert len(ids) == 3  # three pregnancies of one woman, not one Condition overwritten


def test_first_pregnancy_delivery_birth_and_child(run: tuple) -> None:
    _, found = run
    bundle = found["wouden-1e_zwangerschap.xml"]
    ours = _resources(bundle)
    woman = _one(ours, "Patient", "bc-Woman")
    assert woman["name"][0]["family"] == "van der Wouden"
    delivery = _one(ours, "Procedure", "bc-DeliveryProcedure")
    assert delivery["performedPeriod"]["start"] == "2016-07-31T21:46:00+02:00"
    birth = _one(ours, "Procedure", "bc-Birth")
    assert birth["partOf"][0]["reference"] == _url(bundle, delivery)
    child = _one(ours, "Patient", "bc-Child")
    assert child["birthDate"] == "2016-08-01"
    assert birth["subject"]["reference"] == _url(bundle, child)
    mother = _one(ours, "RelatedPerson", "bc-MotherOf")
    assert mother["patient"]["reference"] == _url(bundle, child)
    assert mother["identifier"][0]["value"] == WOMAN_BSN

    blood_loss = _one(ours, "Observation", "bc-DeliveryObservation", "364332008")
    assert blood_loss["valueQuantity"]["value"] == 600
    assert blood_loss["valueQuantity"]["code"] == "ml"
    assert _focus(blood_loss) == _url(bundle, delivery)
    perineum = _one(ours, "Observation", "bc-DeliveryObservation", "364297003")
    assert perineum["valueCodeableConcept"]["coding"][0]["code"] == "609344008"
    dilation = _one(ours, "Observation", "bc-DeliveryObservation", "249120008")
    assert dilation["valueDateTime"] == "2016-07-31T21:46:00+02:00"

    weight = _one(ours, "Observation", "bc-BirthObservation", "8339-4")
    assert weight["valueQuantity"]["value"] == 4810
    assert _focus(weight) == _url(bundle, birth)
    pushing = _one(ours, "Observation", "bc-BirthObservation", "249163006")
    assert pushing["valueDateTime"] == "2016-08-01T01:01:00+02:00"
    assert _focus(pushing) == _url(bundle, birth)
    partus = _one(ours, "Observation", "bc-BirthObservation", "364336006")
    assert partus["valueCodeableConcept"]["coding"][0] == {
        "system": "http://snomed.info/sct", "code": "3311000146109",
        "display": "Vaginale kunstverlossing"}
    apgar = _one(ours, "Observation", "zib-ApgarScore")
    assert apgar["valueQuantity"]["value"] == 6
    assert apgar["subject"]["reference"] == _url(bundle, child)

    end = _one(ours, "Observation", "bc-PregnancyObservation", "EindeZw")
    assert end["valueCodeableConcept"]["coding"][0]["system"] == "urn:oid:2.16.840.1.113883.2.4.4.13.46"
    assert end["valueCodeableConcept"]["coding"][0]["code"] == "1"
    end_date = _one(ours, "Observation", "bc-PregnancyObservation", "118951000146109")
    assert end_date["valueDateTime"] == "2016-08-01"


def test_what_we_add_beyond_nictiz_for_the_first_pregnancy(run: tuple) -> None:
    """Concepts of the instances Nictiz's output leaves out: gestational age at birth and the
    assisted vaginal delivery (vacuum)."""
    _, found = run
    bundle = found["wouden-1e_zwangerschap.xml"]
    ours = _resources(bundle)
    duration = _one(ours, "Observation", "zib-Pregnancy-PregnancyDuration")
    assert duration["code"]["coding"][0]["code"] == "57036006"
    assert duration["valueQuantity"] == {"value": 289, "unit": "d",
                                         "system": "http://unitsofmeasure.org", "code": "d"}
    assert duration["effectiveDateTime"] == "2016-08-01"
    vacuum = _one(ours, "Procedure", "bc-ObstetricProcedure")
    assert vacuum["code"]["coding"][0]["code"] == "61586001"
    assert vacuum["partOf"][0]["reference"] == _url(bundle, _one(ours, "Procedure", "bc-Birth"))
    third = _resources(found["wouden-3e_zwangerschap.xml"])
    assert _one(third, "Observation", "zib-Pregnancy-PregnancyDuration")["valueQuantity"]["value"] == 268
    assert _by(third, "Procedure", "bc-ObstetricProcedure") == []  # a spontaneous birth


def test_ectopic_pregnancy_has_no_delivery(run: tuple) -> None:
    ours = _resources(run[1]["wouden-2e_zwangerschap.xml"])
    assert _by(ours, "Procedure") == []
    assert _by(ours, "Patient", "bc-Child") == []
    end = _one(ours, "Observation", "bc-PregnancyObservation", "EindeZw")
    assert end["valueCodeableConcept"]["coding"][0]["code"] == "4"  # EUG


def test_partus_key_elements(run: tuple) -> None:
    _, found = run
    bundle = found["bevallingsgegevens.xml"]
    ours = _resources(bundle)
    delivery = _one(ours, "Procedure", "bc-DeliveryProcedure")
    assert delivery["performedPeriod"]["start"] == "2018-08-30T14:09:00+02:00"
    blood_loss = _one(ours, "Observation", "bc-DeliveryObservation", "364332008")
    assert blood_loss["valueQuantity"]["value"] == 980
    perineum = _one(ours, "Observation", "bc-DeliveryObservation", "364297003")
    assert perineum["valueCodeableConcept"]["coding"][0]["code"] == "199925004"
    child = _one(ours, "Patient", "bc-Child")
    assert child["identifier"][0] == {"system": "http://fhir.nl/fhir/NamingSystem/bsn",
                                      "value": "951847624"}
    assert child["birthDate"] == "2018-08-30"
    birth = _one(ours, "Procedure", "bc-Birth")
    assert birth["performedDateTime"] == "2018-08-30T23:59:00+02:00"
    assert birth["partOf"][0]["reference"] == _url(bundle, delivery)
    partus = _one(ours, "Observation", "bc-BirthObservation", "364336006")
    assert partus["valueCodeableConcept"]["coding"][0]["code"] == "177184002"
    assert _by(ours, "Observation", "bc-BirthObservation", "8339-4") == []  # NI, see NOT_PRODUCED
    assert _by(ours, "Observation", "zib-Pregnancy-PregnancyDuration") == []  # nullFlavor NI
    edd = _one(ours, "Observation", "bc-PregnancyObservation", "147781000146105")
    assert edd["valueDateTime"] == "2018-09-08"
    place = _one(ours, "Observation", "bc-PregnancyObservation", "PRN4209")
    assert place["code"]["coding"][0]["system"] == "urn:oid:2.16.840.1.113883.2.4.3.22.1.3"
    abo = _one(ours, "Observation", "zib-LaboratoryTestResult-Observation", "883-9")
    assert abo["valueCodeableConcept"]["coding"][0]["code"] == "165743006"
    (partner,) = [r for r in ours if r["resourceType"] == "RelatedPerson"
                  and BC + "bc-MotherOf" not in r["meta"]["profile"]]
    assert partner["name"][0]["given"] == ["Kees"]


def test_current_pregnancy(run: tuple) -> None:
    ours = _resources(run[1]["wouden-huidige_zwangerschap.xml"])
    pregnancy = _one(ours, "Condition", "zib-Pregnancy")
    assert pregnancy["clinicalStatus"] == "active"
    assert _one(ours, "Observation", "zib-Pregnancy-Gravidity")["valueQuantity"]["value"] == 4
    assert _one(ours, "Observation", "zib-Pregnancy-Parity")["valueQuantity"]["value"] == 2
    edd = _one(ours, "Observation", "bc-PregnancyObservation", "161714006")
    assert edd["valueDateTime"] == "2020-06-29"  # T-3D
    hb = _one(ours, "Observation", "zib-LaboratoryTestResult-Observation", "59260-0")
    assert hb["valueQuantity"]["value"] == 8.5
    assert hb["effectiveDateTime"] == "2020-04-21"  # T-72D
    rh_c = _one(ours, "Observation", "zib-LaboratoryTestResult-Observation", "1159-3")
    assert rh_c["valueCodeableConcept"]["coding"][0]["code"] == "733119003"


def test_the_current_and_previous_pregnancies_are_different_conditions_of_one_woman(run: tuple) -> None:
    _, found = run
    cases = {name: b for name, b in found.items() if name.startswith("wouden")}
    women = {_url(b, _one(_resources(b), "Patient", "bc-Woman")) for b in cases.values()}
    pregnancies = {_url(b, _one(_resources(b), "Condition", "zib-Pregnancy"))
                   for b in cases.values()}
    assert len(women) == 1
    assert len(pregnancies) == 4

