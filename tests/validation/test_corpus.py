"""Nictiz's published FHIR instances validate with only the findings explained in the docs."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from converters.validation.command import _unindexed
from converters.validation.validator import ProfileValidator
from tests.support.validation_corpus import corpus_instances  # noqa: F401  (fixture)

DOC = Path(__file__).resolve().parents[2] / "docs" / "validation.md"
_CELL_SPLIT = re.compile(r"(?<!\\)\|")


def explained_findings() -> Counter[tuple[str, ...]]:
    """Read the known-findings table of docs/validation.md into (key) -> count."""
    text = DOC.read_text(encoding="utf-8")
    table = text.split("<!-- known-findings:start -->")[1].split("<!-- known-findings:end -->")[0]
    explained: Counter[tuple[str, ...]] = Counter()
    for line in table.splitlines():
        cells = [c.strip().replace("\\|", "|") for c in _CELL_SPLIT.split(line)[1:-1]]
        if len(cells) == 7 and cells[0].isdigit():
            explained[tuple(cells[1:6])] += int(cells[0])
            assert cells[6], f"finding without explanation: {cells}"
    return explained


def test_the_corpus_has_exactly_the_explained_findings(corpus_instances):  # noqa: F811
    validator = ProfileValidator.default()
    found: Counter[tuple[str, ...]] = Counter()
    for _path, resource in corpus_instances:
        for f in validator.validate(resource):
            profile = f.profile.rsplit("/", 1)[-1]
            found[(f.severity, f.rule, profile, _unindexed(f.path), f.message)] += 1

    assert found == explained_findings()


def test_every_corpus_error_is_of_a_kind_the_docs_name(corpus_instances):  # noqa: F811
    assert len(corpus_instances) > 800
    assert {key[1] for key in explained_findings()} <= {
        "binding", "cardinality", "reference", "extension"}


def test_the_corpus_has_no_structural_problem_in_either_mode(corpus_instances):  # noqa: F811
    fast = ProfileValidator(structure_mode="fast")
    strict = ProfileValidator(structure_mode="pydantic")
    for path, resource in corpus_instances:
        for validator in (fast, strict):
            structural = [f for f in validator.validate(resource) if f.rule == "structure"]
            assert structural == [], path
