"""FHIR XML is read into the FHIR JSON form, with the models deciding what repeats."""

from __future__ import annotations

import pytest

from converters.validation.fhirxml import FhirXmlError, xml_to_resource

# A synthetic Patient: repeating name/given, a primitive with an extension, an empty display.
PATIENT_XML = b"""<Patient xmlns="http://hl7.org/fhir">
  <id value="synthetic-1"/>
  <active value="true"/>
  <name>
    <family value="Testfamilie"/>
    <given value="Anna"/>
    <given value="Bea"/>
  </name>
  <maritalStatus><coding><code value="M"/><display value=""/></coding></maritalStatus>
  <birthDate value="1990-01-01">
    <extension url="http://hl7.org/fhir/StructureDefinition/patient-birthTime">
      <valueDateTime value="1990-01-01T10:00:00+01:00"/>
    </extension>
  </birthDate>
  <multipleBirthInteger value="2"/>
</Patient>"""


def test_repeating_elements_become_arrays_and_single_ones_do_not():
    patient = xml_to_resource(PATIENT_XML)

    assert patient["resourceType"] == "Patient"
    assert patient["name"][0]["given"] == ["Anna", "Bea"]
    assert patient["name"][0]["family"] == "Testfamilie"


def test_primitive_types_get_their_json_types():
    patient = xml_to_resource(PATIENT_XML)

    assert patient["active"] is True
    assert patient["multipleBirthInteger"] == 2


def test_an_extension_on_a_primitive_goes_to_the_underscore_property():
    patient = xml_to_resource(PATIENT_XML)

    assert patient["birthDate"] == "1990-01-01"
    assert patient["_birthDate"]["extension"][0]["url"].endswith("patient-birthTime")


def test_an_empty_display_attribute_is_kept_for_structural_validation_to_judge():
    patient = xml_to_resource(PATIENT_XML)

    assert patient["maritalStatus"]["coding"][0]["display"] == ""


def test_a_bundle_entry_resource_is_unwrapped():
    bundle = xml_to_resource(
        b'<Bundle xmlns="http://hl7.org/fhir"><type value="transaction"/><entry>'
        b'<fullUrl value="urn:uuid:1b6e6a3e-0000-4000-8000-000000000001"/>'
        b'<resource><Patient><id value="p1"/></Patient></resource></entry></Bundle>'
    )

    assert bundle["entry"][0]["resource"] == {"resourceType": "Patient", "id": "p1"}


def test_xml_outside_the_fhir_namespace_is_refused_without_quoting_content():
    with pytest.raises(FhirXmlError, match="not in the FHIR namespace"):
        xml_to_resource(b"<adaxml><secret>999999999</secret></adaxml>")
