"""``babyconnect coverage``: populated source places no rule read, and codes no table knew."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from converters.cli import main
from converters.mapping.tables import load_mappings
from converters.workbench.coverage import measure
from converters.workbench.html import render_html
from tests.conftest import ROOT, SAMPLES, corpus_path
from tests.support.chromium import chromium, png_colours  # noqa: F401 (chromium: a fixture)

WOMAN = SAMPLES / "hl7v2" / "adt_a04_pregnant_woman.hl7"


def _places(report) -> set[str]:
    return {place for _, place, _ in report.ranked_fields()}


def _with_pid_14(tmp_path: Path) -> Path:
    """A copy of the woman sample whose PID carries a business phone (PID-14)."""
    lines = WOMAN.read_bytes().split(b"\r")
    pid = next(i for i, line in enumerate(lines) if line.startswith(b"PID|"))
    fields = lines[pid].split(b"|")
    fields[14] = b"+31301234567^WPN^PH"
    lines[pid] = b"|".join(fields)
    copy = tmp_path / "woman_with_work_phone.hl7"
    copy.write_bytes(b"\r".join(lines))
    return copy


def test_a_field_no_rule_reads_is_listed_until_a_rule_uses_it(tmp_path: Path) -> None:
    sample = _with_pid_14(tmp_path)
    assert "PID-14.1" in _places(measure([sample], load_mappings()))

    mappings = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", mappings)
    woman = mappings / "hl7v2" / "resources" / "woman.yaml"
    rule = "  - target: telecom[+]\n    source: PID-14\n    datatype: XTN-telecom\n"
    woman.write_text(woman.read_text().replace("rules:\n", "rules:\n" + rule, 1))

    assert "PID-14.1" not in _places(measure([sample], load_mappings(mappings)))


def test_fields_that_rules_read_are_not_listed() -> None:
    places = _places(measure([WOMAN], load_mappings()))
    assert not {"PID-3.1", "PID-5.1", "PID-7", "PID-8", "MSH-10"} & places


def test_unknown_codes_are_counted_with_an_example_record() -> None:
    report = measure([SAMPLES / "hl7v2" / "oru_r01_prenatal_screening.hl7"], load_mappings())
    table, _, code, tally = next(c for c in report.ranked_codes() if c[0] == "lab-tests")
    assert code == "ZZX" and tally.count == 1
    assert tally.example.endswith("oru_r01_prenatal_screening.hl7#LABLINDE-ORU-0042")


def test_the_corpus_hl7v2_exports_list_what_is_unmapped(tmp_path: Path, capsys) -> None:
    inputs = [corpus_path("nl-hl7v2-mmerlijn"), corpus_path("hl7v2-generic-msfhirconverter")]
    for folder in inputs:
        if not folder.exists():
            pytest.skip(f"public corpus folder {folder.name} is not present")

    code = main(["coverage", *map(str, inputs), "--out", str(tmp_path)])

    out = capsys.readouterr().out
    assert code == 0
    assert re.search(r"hl7v2\s+OBX-1\s+\d+", out)
    assert (tmp_path / "coverage.html").exists()


def test_the_reports_hold_places_and_record_ids_never_values(tmp_path: Path, capsys) -> None:
    main(["coverage", str(_with_pid_14(tmp_path)), "--out", str(tmp_path)])
    html = (tmp_path / "coverage.html").read_text()
    for text in (capsys.readouterr().out, html):
        assert "PID-14.1" in text
        assert "+31301234567" not in text and "Jansen" not in text and "999990317" not in text


def test_the_html_chart_has_one_bar_per_ranked_place() -> None:
    report = measure([SAMPLES / "hl7v2"], load_mappings())
    html = render_html(report)
    assert html.count('<rect class="bar"') == min(20, len(report.fields))
    assert not re.search(r"<script|<link|src=|href=|@import|url\(", html)  # self-contained


def test_the_html_report_renders_its_chart_in_headless_chromium(chromium, tmp_path: Path) -> None:
    main(["coverage", str(SAMPLES / "hl7v2"), "--out", str(tmp_path)])
    page = (tmp_path / "coverage.html").as_uri()

    dom = chromium("--dump-dom", page)
    shot = tmp_path / "shot.png"
    chromium(f"--screenshot={shot}", "--window-size=900,700", page)

    assert dom.stdout.count('class="bar"') >= 5
    colours = png_colours(shot)
    assert (0x2F, 0x6D, 0xB5) in colours  # the bar colour: the chart was painted
    assert len(colours) > 10
