"""Mapping tests written in YAML (``tests:`` of a mapping file) run in the suite and on the CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from converters.cli import main
from converters.mapping.tables import load_mappings
from converters.workbench.mapping_tests import run_one
from tests.conftest import ROOT

MAPPINGS = load_mappings()


@pytest.mark.parametrize(
    ("file", "line", "spec"), MAPPINGS.tests,
    ids=[f"{Path(f).name}:{line}" for f, line, _ in MAPPINGS.tests],
)
def test_mapping_file_test_passes(file: str, line: int, spec: dict) -> None:
    result = run_one(MAPPINGS, file, line, spec)
    assert result.passed, result.describe()


def test_every_mapping_file_carries_at_least_one_test() -> None:
    tested = {file for file, _, _ in MAPPINGS.tests}
    untested = sorted(set(MAPPINGS.files) - tested)
    assert not untested, f"mapping files without a tests: entry: {untested}"


def test_a_failing_mapping_test_names_the_rule_and_shows_expected_and_actual() -> None:
    spec = dict(next(s for f, _, s in MAPPINGS.tests if f.endswith("codes/name-use.yaml")))
    spec["expect"] = [{"path": "Patient.name.use", "equals": "nickname"}]
    result = run_one(MAPPINGS, "mappings/codes/name-use.yaml", 1, spec)
    text = result.describe()
    assert not result.passed
    assert "- expected: nickname" in text and "+ actual:   official" in text
    assert "-> mappings/hl7v2/datatypes.yaml:" in text and "Patient.name[0].use" in text


def test_an_element_that_should_be_absent_is_reported_with_its_value() -> None:
    spec = dict(next(s for f, _, s in MAPPINGS.tests if f.endswith("codes/name-use.yaml")))
    spec["expect"], spec["expect_absent"] = [], ["Patient.gender"]
    result = run_one(MAPPINGS, "x.yaml", 1, spec)
    assert "- expected: (nothing)" in result.describe()
    assert "+ actual:   female" in result.describe()


def test_the_command_exits_1_when_a_changed_rule_breaks_a_test(tmp_path: Path, capsys) -> None:
    copy = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", copy)
    table = copy / "codes" / "administrative-gender.yaml"
    table.write_text(table.read_text().replace("value: female", "value: other", 1))

    code = main(["mappings", "test", "--mappings", str(copy)])

    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL" in out and "PID-8 F is female" in out and "+ actual:   other" in out


def test_the_command_exits_0_when_every_test_passes(capsys) -> None:
    assert main(["mappings", "test"]) == 0
    assert " 0 failed" in capsys.readouterr().out


def test_an_expectation_can_choose_a_resource_by_its_alias() -> None:
    spec = dict(next(s for f, _, s in MAPPINGS.tests
                     if f.endswith("organization-practice.yaml")))
    spec["expect"] = [{"resource": "practice", "path": "Organization.name",
                       "equals": "Praktijk Test"}]
    assert run_one(MAPPINGS, "x.yaml", 1, spec).passed
    spec["expect"] = [{"resource": "sender", "path": "Organization.name",
                       "equals": "Praktijk Test"}]
    assert "+ actual:   TESTZH" in run_one(MAPPINGS, "x.yaml", 1, spec).describe()


def test_an_expectation_names_every_keyed_resource_of_an_alias() -> None:
    spec = dict(next(s for f, _, s in MAPPINGS.tests if f.endswith("ada32/message.yaml")))
    spec["expect"] = [{"resource": "birth", "path": "Procedure.code.coding.code",
                       "equals": "3950001"}]
    assert run_one(MAPPINGS, "x.yaml", 1, spec).passed
    spec["expect"] = [{"resource": "birt", "path": "Procedure.code.coding.code",
                       "equals": "3950001"}]
    assert not run_one(MAPPINGS, "x.yaml", 1, spec).passed
