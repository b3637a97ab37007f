"""Resources broken one rule at a time each produce exactly the expected finding.

All resources here are synthetic: identifiers, names and dates are invented for the tests.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from converters.validation.compiler import Library
from converters.validation.validator import Finding, ProfileValidator

NICTIZ = "http://nictiz.nl/fhir/StructureDefinition/"
GRAVIDITY = NICTIZ + "zib-Pregnancy-Gravidity"
TELECOM_TYPE = NICTIZ + "zib-ContactInformation-TelecomType"
BSN = "http://fhir.nl/fhir/NamingSystem/bsn"


@pytest.fixture(scope="module")
def validator() -> ProfileValidator:
    return ProfileValidator.default()


def gravidity() -> dict[str, Any]:
    """A valid zib-Pregnancy-Gravidity observation (LOINC 11996-6, a count in UCUM '1')."""
    return {
        "resourceType": "Observation",
        "id": "gravidity-1",
        "meta": {"profile": [GRAVIDITY]},
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "11996-6"}]},
        "subject": {"reference": "Patient/woman-1"},
        "valueQuantity": {"value": 2, "system": "http://unitsofmeasure.org", "code": "1"},
    }


def only(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, [f.as_dict() for f in findings]
    return findings[0]


def test_a_valid_gravidity_observation_has_no_findings(validator):
    assert validator.validate(gravidity()) == []


def test_a_missing_required_element_is_a_cardinality_finding(validator):
    resource = gravidity()
    del resource["valueQuantity"]  # zib-Pregnancy-Gravidity: value[x]:valueQuantity 1..1

    finding = only(validator.validate(resource))

    assert (finding.rule, finding.path, finding.profile) == (
        "cardinality", "Observation.value[x]", GRAVIDITY)
    assert "valueQuantity required" in finding.message


def test_a_wrong_fixed_value_is_a_fixed_finding(validator):
    resource = gravidity()
    resource["valueQuantity"]["system"] = "http://example.org/units"  # fixed: UCUM

    finding = only(validator.validate(resource))

    assert (finding.rule, finding.path) == ("fixed", "Observation.valueQuantity.system")
    assert "http://unitsofmeasure.org" in finding.message


def test_a_wrong_code_makes_the_required_coding_slice_empty(validator):
    resource = gravidity()
    resource["code"]["coding"][0]["code"] = "11977-6"  # parity, not gravidity

    finding = only(validator.validate(resource))

    assert (finding.rule, finding.path) == ("slice", "Observation.code.coding:Gravidity")


def test_an_undeclared_extension_with_an_unknown_url_is_an_extension_finding(validator):
    resource = gravidity()
    resource["extension"] = [
        {"url": "http://example.org/fhir/StructureDefinition/made-up", "valueString": "x"}
    ]

    finding = only(validator.validate(resource))

    assert (finding.rule, finding.path) == ("extension", "Observation.extension[0]")
    assert "unknown extension" in finding.message


def test_a_declared_extension_with_the_wrong_value_type_is_an_extension_finding(validator):
    resource = gravidity()
    resource["extension"] = [  # observation-focusSTU3 takes a valueReference
        {"url": NICTIZ + "observation-focusSTU3", "valueString": "pregnancy"}
    ]

    finding = only(validator.validate(resource))

    assert (finding.rule, finding.profile) == ("extension", NICTIZ + "observation-focusSTU3")
    assert finding.path == "Observation.extension[0].valueString"


def test_a_reference_to_a_resource_of_the_wrong_type_is_a_reference_finding(validator):
    resource = gravidity()
    resource["subject"] = {"reference": "Organization/org-1"}

    finding = only(validator.validate(resource))

    assert (finding.rule, finding.path) == ("reference", "Observation.subject")
    assert "Organization" in finding.message and "Patient" in finding.message


def test_a_reference_to_a_bundle_entry_with_the_wrong_profile_is_a_reference_finding(validator):
    observation = gravidity()
    observation["subject"] = {"reference": "urn:uuid:5a6d1c1e-0000-4000-8000-000000000001"}
    observation["extension"] = [{
        "url": NICTIZ + "observation-focusSTU3",
        "valueReference": {"reference": "urn:uuid:5a6d1c1e-0000-4000-8000-000000000002"},
    }]
    patient = {"resourceType": "Patient", "id": "woman-1",
               "meta": {"profile": ["http://fhir.nl/fhir/StructureDefinition/nl-core-patient"]}}
    not_a_pregnancy = {  # focusSTU3 here must point at a zib-Pregnancy Condition
        "resourceType": "Condition", "id": "c-1",
        "meta": {"profile": [NICTIZ + "zib-Problem"]},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "38341003"}]},
        "subject": {"reference": "Patient/woman-1"},
    }
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:5a6d1c1e-0000-4000-8000-000000000001", "resource": patient},
        {"fullUrl": "urn:uuid:5a6d1c1e-0000-4000-8000-000000000002", "resource": not_a_pregnancy},
        {"fullUrl": "urn:uuid:5a6d1c1e-0000-4000-8000-000000000003", "resource": observation},
    ]}

    findings = [
        f for f in validator.validate_bundle(bundle) if f.resource == "Observation/gravidity-1"
    ]

    finding = only(findings)
    assert (finding.rule, finding.path) == ("reference", "Observation.extension[0].valueReference")
    assert "zib-Pregnancy" in finding.message


def test_a_code_outside_a_required_binding_is_a_binding_error(validator):
    patient = {
        "resourceType": "Patient", "id": "woman-1",
        "meta": {"profile": ["http://fhir.nl/fhir/StructureDefinition/nl-core-patient"]},
        "telecom": [{
            "extension": [{"url": TELECOM_TYPE, "valueCodeableConcept": {"coding": [
                {"system": "http://hl7.org/fhir/v3/AddressUse", "code": "XX"}]}}],
            "system": "phone", "value": "0612345678",
        }],
    }

    finding = only(validator.validate(patient))

    assert (finding.rule, finding.severity, finding.profile) == ("binding", "error", TELECOM_TYPE)
    assert finding.path == "Patient.telecom[0].extension[0].valueCodeableConcept"
    assert "0612345678" not in finding.message


def test_a_wrong_identifier_system_leaves_a_required_identifier_slice_empty():
    library = Library()
    library.add({  # a local profile requiring the BSN slice of bc-Woman
        "resourceType": "StructureDefinition", "url": "http://example.org/fhir/woman-with-bsn",
        "type": "Patient", "kind": "resource", "derivation": "constraint",
        "baseDefinition": NICTIZ + "bc-Woman",
        "differential": {"element": [
            {"id": "Patient.identifier:BSN", "path": "Patient.identifier", "sliceName": "BSN",
             "min": 1},
        ]},
    })
    woman = {
        "resourceType": "Patient", "id": "woman-1",
        "meta": {"profile": ["http://example.org/fhir/woman-with-bsn"]},
        "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/bsn-typo",
                        "value": "999999990"}],
    }

    finding = only(ProfileValidator(library).validate(woman))

    assert (finding.rule, finding.path) == ("slice", "Patient.identifier:BSN")
    assert BSN in finding.message and "999999990" not in finding.message
    woman["identifier"][0]["system"] = BSN
    assert ProfileValidator(library).validate(woman) == []


def test_a_closed_slicing_rejects_a_repetition_matching_no_slice():
    library = Library()
    library.add({
        "resourceType": "StructureDefinition", "url": "http://example.org/fhir/closed-coding",
        "type": "Observation", "kind": "resource", "derivation": "constraint",
        "baseDefinition": GRAVIDITY,
        "differential": {"element": [{
            "id": "Observation.code.coding", "path": "Observation.code.coding",
            "slicing": {"discriminator": [{"type": "value", "path": "code"}], "rules": "closed"},
        }]},
    })
    resource = gravidity()
    resource["meta"]["profile"] = ["http://example.org/fhir/closed-coding"]
    resource["code"]["coding"].append({"system": "http://snomed.info/sct", "code": "161732006"})

    finding = only(ProfileValidator(library).validate(resource))

    assert (finding.rule, finding.path) == ("slice", "Observation.code.coding[1]")


def test_an_element_unknown_to_stu3_is_a_structure_finding(validator):
    resource = gravidity()
    resource["focus"] = [{"reference": "Condition/c-1"}]  # R4 element, not in STU3

    finding = only(validator.validate(resource))

    assert (finding.rule, finding.profile, finding.path) == ("structure", "", "Observation.focus")


def test_an_unvendored_profile_is_reported_never_silently_passed(validator):
    resource = gravidity()
    resource["meta"]["profile"] = ["http://example.org/fhir/StructureDefinition/unknown"]

    finding = only(validator.validate(resource))

    assert (finding.rule, finding.severity) == ("unknown-profile", "warning")
    assert validator.unchecked_hits[
        "unknown profile http://example.org/fhir/StructureDefinition/unknown"] >= 1


def test_an_extensible_binding_miss_is_a_warning(validator):
    encounter_class = {
        "resourceType": "Encounter", "id": "enc-1",
        "meta": {"profile": [NICTIZ + "zib-Encounter"]},
        "status": "finished",
        "class": {"system": "http://example.org/classes", "code": "other"},
        "subject": {"reference": "Patient/woman-1"},
    }

    finding = only(validator.validate(encounter_class))

    assert (finding.rule, finding.severity, finding.path) == (
        "binding", "warning", "Encounter.class")


def test_unchecked_lists_filters_invariants_and_unvendored_value_sets(validator):
    rules = validator.unchecked()

    assert any("filter on http://snomed.info/sct" in rule for rule in rules)
    assert any("invariant" in rule for rule in rules)
    assert any("not vendored" in rule for rule in rules)


def test_default_returns_one_shared_validator():
    assert ProfileValidator.default() is ProfileValidator.default()


def test_a_finding_turns_into_a_plain_dict():
    finding = Finding("Patient/p1", "http://x/p", "Patient.gender", "binding", "m", "warning")

    assert finding.as_dict() == {
        "resource": "Patient/p1", "profile": "http://x/p", "path": "Patient.gender",
        "rule": "binding", "message": "m", "severity": "warning",
    }


def test_a_resource_without_id_is_named_by_its_bundle_position(validator):
    resource = copy.deepcopy(gravidity())
    del resource["id"]
    resource["status"] = "not-a-status code"

    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": resource}]}
    findings = validator.validate_bundle(bundle)

    assert {f.resource for f in findings} <= {"Observation#0", "Bundle#0"}


def _request_with_context(target: dict[str, Any]) -> dict[str, Any]:
    request = {
        "resourceType": "ProcedureRequest", "id": "pr-1",
        "meta": {"profile": [NICTIZ + "zib-ProcedureRequest"]},
        "status": "active", "intent": "order",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "241491007"}]},
        "subject": {"reference": "Patient/woman-1"},
        "context": {"reference": "urn:uuid:5a6d1c1e-0000-4000-8000-000000000009"},
    }
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:5a6d1c1e-0000-4000-8000-000000000009", "resource": target},
        {"fullUrl": "urn:uuid:5a6d1c1e-0000-4000-8000-000000000010", "resource": request},
    ]}


def _context_findings(validator: ProfileValidator, target: dict[str, Any]) -> list[Finding]:
    return [f for f in validator.validate_bundle(_request_with_context(target))
            if f.path == "ProcedureRequest.context"]


def test_a_target_profile_of_another_type_does_not_constrain_a_reference(validator):
    # Reference(zib-Encounter | EpisodeOfCare): any EpisodeOfCare will do.
    episode = {"resourceType": "EpisodeOfCare", "id": "e-1", "status": "active",
               "meta": {"profile": [NICTIZ + "bc-MaternalRecord"]},
               "patient": {"reference": "Patient/woman-1"}}
    assert _context_findings(validator, episode) == []


def test_a_target_profile_of_the_same_type_still_constrains_a_reference(validator):
    encounter = {"resourceType": "Encounter", "id": "enc-1", "status": "finished",
                 "subject": {"reference": "Patient/woman-1"}}
    finding = only(_context_findings(validator, encounter))
    assert finding.rule == "reference" and "zib-Encounter" in finding.message
