"""Profile validation of FHIR STU3 resources against the vendored Nictiz Babyconnect profiles."""

from __future__ import annotations

from converters.validation.fhirxml import xml_to_resource
from converters.validation.placeholders import normalise_placeholders
from converters.validation.validator import Finding, ProfileValidator

__all__ = ["Finding", "ProfileValidator", "normalise_placeholders", "xml_to_resource"]
