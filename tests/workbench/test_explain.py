"""``babyconnect explain``: every element of the output names its source place and mapping rule."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from converters.cli import main
from converters.mapping.engine import Engine
from converters.mapping.tables import load_mappings
from converters.workbench.explain import ASSEMBLER, convert_traced, elements, pick_record
from tests.conftest import ROOT, SAMPLES

HL7_SAMPLES = ["adt_a04_pregnant_woman.hl7", "adt_a01_newborn_twins.hl7",
               "oru_r01_prenatal_screening.hl7"]
CSV_SAMPLE = SAMPLES / "kraamzorg" / "vendor_a_visits.csv"
ASSEMBLER_PATHS = re.compile(r"^(resourceType|id|meta\..*)$")


@pytest.fixture(scope="module")
def mappings():
    return load_mappings()


def _explained(path: Path, mappings):
    traced = convert_traced(pick_record(path), mappings)
    return traced, elements(traced)


def _rule_line(origin: str) -> str:
    file, line = origin.rsplit(":", 1)
    return (ROOT / file).read_text(encoding="utf-8").splitlines()[int(line) - 1]


def _source_samples(mappings) -> list[Path]:
    paths = [SAMPLES / "hl7v2" / name for name in HL7_SAMPLES]
    if CSV_SAMPLE.exists() and any(m.source == "csv" for m in mappings.messages):
        paths.append(CSV_SAMPLE)
    return paths


def test_every_written_element_names_its_source_place_and_a_rule_file_and_line(mappings):
    for path in _source_samples(mappings):
        traced, found = _explained(path, mappings)
        written = [e for e in found if not ASSEMBLER_PATHS.match(e.path)]
        assert written, path
        for element in written:
            assert element.source != ASSEMBLER, f"{path.name}: {element.path} has no lineage"
            assert all(re.fullmatch(r"mappings/.+\.yaml:\d+", r) for r in element.rules)


def test_the_rule_line_named_really_holds_a_rule_writing_that_element(mappings):
    _, found = _explained(SAMPLES / "hl7v2" / "adt_a04_pregnant_woman.hl7", mappings)
    checked = 0
    for element in found:
        for origin in element.rules:
            if origin == ASSEMBLER:
                continue
            line = _rule_line(origin)
            assert re.search(r"-\s*(\{\s*)?target:", line), f"{origin} holds: {line!r}"
            checked += 1
    assert checked > 20


def test_a_top_level_rule_names_its_own_target_on_its_line(mappings):
    _, found = _explained(SAMPLES / "hl7v2" / "adt_a04_pregnant_woman.hl7", mappings)
    gender = next(e for e in found if e.path == "gender")
    assert gender.source == "PID-8"
    assert "target: gender" in _rule_line(gender.rules[0])


def test_fhir_paths_have_concrete_indices_and_repetitions_are_named(mappings):
    _, found = _explained(SAMPLES / "hl7v2" / "adt_a04_pregnant_woman.hl7", mappings)
    second_id = next(e for e in found if e.path == "identifier[1].value")
    assert second_id.source == "PID-3(2).1"
    assert second_id.rules[0].startswith("mappings/hl7v2/datatypes.yaml:")


def test_a_repeated_segment_is_named_with_its_occurrence(mappings):
    _, found = _explained(SAMPLES / "hl7v2" / "oru_r01_prenatal_screening.hl7", mappings)
    sources = {e.source for e in found if e.resource.startswith("Observation/")}
    assert "OBX[3]-5.1" in sources
    assert "OBX[12]-11" in sources


def test_lineage_is_not_recorded_when_trace_is_off(mappings):
    record = pick_record(SAMPLES / "hl7v2" / "adt_a04_pregnant_woman.hl7")
    conversion = Engine(mappings).convert(record)
    assert conversion.lineage == [] and conversion.read == set()


def test_the_command_prints_json_with_one_entry_per_element(capsys):
    code = main(["explain", str(SAMPLES / "hl7v2" / "adt_a01_newborn_twins.hl7"),
                 "--record", "LINDE-ADT-0202", "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["record_id"] == "LINDE-ADT-0202"
    assert any(e["path"] == "Patient.multipleBirthInteger" and e["source"] == "PID-25"
               for e in data["elements"])


def test_the_text_form_puts_source_left_rule_between_and_fhir_right(capsys):
    main(["explain", str(SAMPLES / "hl7v2" / "adt_a04_pregnant_woman.hl7")])
    line = next(l for l in capsys.readouterr().out.splitlines() if "Patient.gender" in l)
    source, rule, fhir = line.split()[0], line.split()[1], line.split()[2]
    assert (source, fhir) == ("PID-8", "Patient.gender")
    assert rule.startswith("mappings/hl7v2/resources/woman.yaml:")


def test_asking_for_a_record_that_is_not_there_is_a_usage_error(capsys):
    code = main(["explain", str(SAMPLES / "hl7v2" / "adt_a04_pregnant_woman.hl7"),
                 "--position", "9"])
    assert code == 2
    assert "position 9" in capsys.readouterr().err
