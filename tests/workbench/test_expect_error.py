"""``expect_error`` in a YAML mapping test: the record must be quarantined with that code."""

from __future__ import annotations

import pytest

from converters.mapping.tables import load_mappings
from converters.workbench.mapping_tests import run_one


@pytest.fixture(scope="module")
def lochia_test() -> tuple[object, dict]:
    mappings = load_mappings()
    spec = next(t for _, _, t in mappings.tests if t.get("name", "").startswith("a lochia code"))
    return mappings, spec


def test_the_expected_quarantine_passes(lochia_test) -> None:
    mappings, spec = lochia_test
    assert run_one(mappings, "f", 1, spec).failures == []


def test_another_code_fails_naming_both(lochia_test) -> None:
    mappings, spec = lochia_test
    failures = run_one(mappings, "f", 1, {**spec, "expect_error": {"code": "bad-date"}}).failures
    assert failures and "'bad-date'" in failures[0] and "'unknown-code'" in failures[0]


def test_a_record_that_converts_fails_the_expectation(lochia_test) -> None:
    mappings, spec = lochia_test
    fixed = {**spec, "input": spec["input"].replace(";XYZ", ";")}
    failures = run_one(mappings, "f", 1, fixed).failures
    assert failures == ["expected the record to be quarantined with code 'unknown-code', "
                        "but it converted"]
