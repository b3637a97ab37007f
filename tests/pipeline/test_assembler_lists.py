"""The assembler writes a repeated identifier once but keeps repeated names in their places."""

from __future__ import annotations

from converters.fhir.assembler import _resolve
from converters.mapping.engine import AliasRef


def test_a_given_name_equal_to_another_is_kept_in_its_position() -> None:
    name = {"given": ["Anna", "M", "Anna"],
            "_given": [None, {"extension": [{"url": "iso21090-EN-qualifier",
                                              "valueCode": "IN"}]},
                       {"extension": [{"url": "iso21090-EN-qualifier", "valueCode": "CL"}]}]}
    _resolve(name, {})
    assert name["given"] == ["Anna", "M", "Anna"]
    assert len(name["_given"]) == 3


def test_the_same_identifier_written_twice_is_kept_once() -> None:
    body = {"identifier": [{"system": "urn:x", "value": "1"}, {"system": "urn:x", "value": "1"}]}
    _resolve(body, {})
    assert body["identifier"] == [{"system": "urn:x", "value": "1"}]


def test_a_reference_to_an_alias_not_produced_is_dropped() -> None:
    body = {"performer": [{"reference": AliasRef("practitioner")}]}
    _resolve(body, {})
    assert "performer" not in body
