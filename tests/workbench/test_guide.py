"""The worked examples of docs/mapping-guide.md work: each chapter is applied to a copy of
``mappings/`` and its ``guide check`` blocks pass as mapping tests."""

from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from converters.mapping.tables import load_mappings
from converters.workbench.mapping_tests import run_one
from tests.conftest import ROOT

GUIDE = ROOT / "docs" / "mapping-guide.md"
_FENCE = re.compile(r"^```yaml guide ?(?P<info>[^\n]*)\n(?P<body>.*?)^```", re.M | re.S)


@dataclass
class Block:
    action: str
    options: dict[str, str]
    body: str


def _chapters() -> dict[str, list[Block]]:
    chapters: dict[str, list[Block]] = {}
    for chapter in re.split(r"^## ", GUIDE.read_text(encoding="utf-8"), flags=re.M)[1:]:
        title = chapter.splitlines()[0]
        blocks = []
        for found in _FENCE.finditer(chapter):
            words = shlex.split(found["info"])
            options = dict(w.split("=", 1) for w in words if "=" in w)
            action = next(iter(options), None) or words[0]
            blocks.append(Block(action, options, found["body"]))
        if blocks:
            chapters[title] = blocks
    return chapters


CHAPTERS = _chapters()


def _apply(block: Block, mappings: Path) -> None:
    target = mappings / block.options[block.action]
    if block.action == "write":
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.body, encoding="utf-8")
        return
    lines = target.read_text(encoding="utf-8").splitlines(keepends=True)
    anchor = block.options["after"]
    at = next(i for i, line in enumerate(lines) if line.rstrip("\n") == anchor)
    lines[at + 1:at + 1] = [block.body]
    target.write_text("".join(lines), encoding="utf-8")


def test_the_guide_has_worked_examples_for_every_source_format() -> None:
    titles = " ".join(CHAPTERS)
    assert all(fmt in titles for fmt in ("HL7v2", "XML", "CSV"))
    for blocks in CHAPTERS.values():
        assert sum(b.action == "check" for b in blocks) >= 3  # a code, a field, a layout


@pytest.mark.parametrize("title", list(CHAPTERS))
def test_the_worked_examples_of_the_chapter_pass_their_checks(title: str, tmp_path: Path) -> None:
    mappings = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", mappings)
    checked = 0
    for block in CHAPTERS[title]:
        if block.action != "check":
            _apply(block, mappings)
            continue
        loaded = load_mappings(mappings)
        for spec in yaml.safe_load(block.body):
            result = run_one(loaded, "docs/mapping-guide.md", 0, spec)
            assert result.passed, result.describe()
            checked += 1
    assert checked >= 3


def test_a_check_fails_before_its_example_is_applied(tmp_path: Path) -> None:
    blocks = CHAPTERS[next(t for t in CHAPTERS if "HL7v2" in t)]
    first_check = next(b for b in blocks if b.action == "check")
    spec = yaml.safe_load(first_check.body)[0]
    assert not run_one(load_mappings(), "docs/mapping-guide.md", 0, spec).passed
