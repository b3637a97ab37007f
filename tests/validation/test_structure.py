"""The fast structural walk and pydantic's model validation both catch broken structure."""

from __future__ import annotations

import pytest

from converters.validation import structure


def observation(**changes: object) -> dict[str, object]:
    resource: dict[str, object] = {
        "resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "11996-6"}]},
    }
    resource.update(changes)
    return resource


BROKEN = {
    "unknown element": observation(focus=[{"reference": "Condition/1"}]),
    "single element given as array": observation(status=["final"]),
    "array element given as object": observation(identifier={"value": "1"}),
    "malformed dateTime": observation(effectiveDateTime="2024-13-01"),
    "base required element missing": {"resourceType": "Observation", "status": "final"},
    "two types for one choice": observation(valueString="a", valueBoolean=True),
}


@pytest.mark.parametrize("mode", ["fast", "pydantic"])
def test_a_well_formed_observation_has_no_structural_problem(mode):
    assert structure.check(observation(valueQuantity={"value": 2}), mode) == []


@pytest.mark.parametrize("mode", ["fast", "pydantic"])
@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_broken_structure_is_reported(mode, case):
    assert structure.check(BROKEN[case], mode) != []


def test_fast_mode_refuses_a_boolean_given_as_string_which_pydantic_coerces():
    # FHIR JSON (STU3 §2.6.2) writes booleans as true/false; pydantic's lax mode accepts "true".
    broken = observation(valueBoolean="true")

    assert structure.check(broken, "fast") == [
        ("Observation.valueBoolean", "not a valid FHIR boolean")]
    assert structure.check(broken, "pydantic") == []


def test_fast_mode_names_the_element_and_never_the_value():
    problems = structure.check(observation(effectiveDateTime="1999-99-99"))

    assert problems == [("Observation.effectiveDateTime", "not a valid FHIR dateTime")]


def test_scan_returns_every_extension_with_its_path():
    resource = observation(_status={"extension": [{"url": "http://example.org/a"}]})

    _problems, extensions = structure.scan(resource)

    assert extensions == [("Observation._status.extension[0]", {"url": "http://example.org/a"})]
