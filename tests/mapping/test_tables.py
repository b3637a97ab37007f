"""Mapping tables: every error names the file, the line and the key path."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from converters.errors import MappingTableError
from converters.mapping.lint import lint
from converters.mapping.tables import DEFAULT_MAPPINGS, load_mappings


@pytest.fixture
def tables(tmp_path: Path) -> Path:
    copy = tmp_path / "mappings"
    shutil.copytree(DEFAULT_MAPPINGS, copy)
    return copy


def _edit(path: Path, old: str, new: str) -> int:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"test setup: {old!r} not in {path.name}"
    line = text[: text.index(old)].count("\n") + 1
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return line


def test_the_shipped_tables_lint_clean() -> None:
    problems, mappings = lint()
    assert problems == []
    assert mappings is not None and len(mappings.messages) >= 2


def test_unknown_code_table_names_file_line_and_key(tables: Path) -> None:
    path = tables / "hl7v2" / "resources" / "woman.yaml"
    line = _edit(path, "codes: administrative-gender", "codes: gender-that-does-not-exist")
    with pytest.raises(MappingTableError) as caught:
        load_mappings(tables)
    error = caught.value
    assert error.file.endswith("hl7v2/resources/woman.yaml")
    assert error.line == line
    assert error.key_path == "rules[3].codes"
    assert "unknown table 'gender-that-does-not-exist'" in str(error)


def test_unknown_key_is_refused_by_the_schema_with_its_line(tables: Path) -> None:
    path = tables / "codes" / "administrative-gender.yaml"
    line = _edit(path, "  - {source: M, value: male}", "  - {source: M, value: male, colour: red}")
    with pytest.raises(MappingTableError) as caught:
        load_mappings(tables)
    assert caught.value.line == line
    assert caught.value.key_path == "rows[1]"
    assert "colour" in caught.value.reason


def test_bad_hl7_path_is_reported_at_the_rule(tables: Path) -> None:
    path = tables / "hl7v2" / "resources" / "child.yaml"
    line = _edit(path, "source: PID-25", "source: PID25")
    with pytest.raises(MappingTableError) as caught:
        load_mappings(tables)
    assert caught.value.line == line
    assert caught.value.key_path.endswith(".source")


def test_yaml_syntax_error_names_the_line(tables: Path) -> None:
    path = tables / "codes" / "name-use.yaml"
    line = _edit(path, "  - {source: D, value: usual}", "  - {source: D, value: usual")
    with pytest.raises(MappingTableError) as caught:
        load_mappings(tables)
    assert caught.value.file.endswith("codes/name-use.yaml")
    assert caught.value.line in (line, line + 1)


def test_missing_format_version_is_refused(tables: Path) -> None:
    path = tables / "codes" / "telecom-use.yaml"
    _edit(path, "format_version: 1\n", "")
    with pytest.raises(MappingTableError) as caught:
        load_mappings(tables)
    assert "format_version" in str(caught.value)


def test_reference_to_an_alias_the_message_does_not_produce_is_refused(tables: Path) -> None:
    path = tables / "hl7v2" / "resources" / "lab-result.yaml"
    _edit(path, "reference: lab", "reference: laboratory")
    with pytest.raises(MappingTableError) as caught:
        load_mappings(tables)
    assert "laboratory" in str(caught.value)


def test_lint_checks_hl7_fields_against_hl7apy(tables: Path) -> None:
    path = tables / "hl7v2" / "resources" / "woman.yaml"
    _edit(path, "source: PID-29", "source: PID-99")
    problems, _ = lint(tables)
    assert len(problems) == 1
    assert "woman.yaml" in problems[0] and "PID" in problems[0] and "99" in problems[0]


def test_duplicate_code_row_is_refused(tables: Path) -> None:
    path = tables / "codes" / "administrative-gender.yaml"
    line = _edit(path, "  - {source: O, value: other}", "  - {source: f, value: other}")
    with pytest.raises(MappingTableError) as caught:
        load_mappings(tables)
    assert caught.value.line == line
    assert "twice" in caught.value.reason
