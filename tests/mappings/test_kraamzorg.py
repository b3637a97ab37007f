"""The kraamzorg column tables: both sample layouts convert through YAML alone (issue 4)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples" / "kraamzorg"
CLI = Path(sys.executable).parent / "babyconnect"
BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"

EXPECTED_QUARANTINE = {
    ("vendor_a_visits.csv", "row 8"): ("bad-datetime", "bezoekdatum"),
    ("vendor_a_visits.csv", "row 9"): ("unknown-code", "lochia"),
    ("vendor_a_visits.csv", "row 10"): ("missing-required", "BSN moeder"),
    ("vendor_a_visits.csv", "row 11"): ("wrong-decimal-separator", "temp moeder"),
    ("vendor_a_visits.csv", "row 12"): ("malformed", "row 12"),
    ("vendor_b_measurements.csv", "row 10"): ("wrong-decimal-separator", "waarde"),
    ("vendor_b_measurements.csv", "row 11"): ("malformed", "row 11"),
    ("vendor_b_measurements.csv", "row 12"): ("unknown-code", "rol"),
    ("vendor_b_measurements.csv", "row 13"): ("bad-number", "waarde"),
    ("vendor_b_measurements.csv", "row 14"): ("bad-datetime", "meetmoment"),
}


def _convert(inputs: Path, out: Path, *extra: str) -> dict:
    subprocess.run([str(CLI), "convert", str(inputs), "--out", str(out), *extra],
                   cwd=ROOT, check=False, capture_output=True, timeout=600)
    return json.loads((out / "report.json").read_text(encoding="utf-8"))


def _ndjson(out: Path, resource_type: str) -> list[dict]:
    path = out / "ndjson" / f"{resource_type}.ndjson"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("kraamzorg")
    return _convert(SAMPLES, out / "target"), out / "target"


def test_run_report_counts_add_up_to_the_input_rows(converted: tuple[dict, Path]) -> None:
    report, _ = converted
    assert report["records_in"] == 11 + 14 + 14
    assert report["outcomes"] == {"loaded": 6 + 9 + 9, "quarantined": 5 + 5 + 5}


def test_bad_rows_are_quarantined_with_file_row_column_and_reason(
    converted: tuple[dict, Path],
) -> None:
    report, _ = converted
    found = {(Path(q["file"]).name, q["record"]): q for q in report["quarantined"]}
    for (file, row), (code, column) in EXPECTED_QUARANTINE.items():
        entry = found[(file, row)]
        assert entry["code"] == code, (file, row)
        assert column in entry["field"], (file, row)
        assert entry["reason"]
    xlsx_rows = {row for file, row in found if file.endswith(".xlsx")}
    assert xlsx_rows == {"row 10", "row 11", "row 12", "row 13", "row 14"}


def test_vendor_a_visit_becomes_an_encounter_with_summer_time_offset(
    converted: tuple[dict, Path],
) -> None:
    _, out = converted
    starts = sorted(e["period"]["start"] for e in _ndjson(out, "Encounter"))
    assert "2024-03-28T09:30:00+01:00" in starts
    assert "2024-03-31T10:15:00+02:00" in starts
    assert all(e["subject"]["identifier"]["system"] == BSN_SYSTEM for e in _ndjson(out, "Encounter"))


def test_observations_point_at_the_person_by_conditional_bsn_reference(
    converted: tuple[dict, Path],
) -> None:
    _, out = converted
    observations = _ndjson(out, "Observation")
    references = {o["subject"]["reference"] for o in observations}
    assert f"Patient?identifier={BSN_SYSTEM}|999990019" in references
    assert f"Patient?identifier={BSN_SYSTEM}|999990068" in references
    assert not (out / "ndjson" / "Patient.ndjson").exists()


def test_lochia_and_hours_are_coded_as_the_geboortezorg_value_sets_say(
    converted: tuple[dict, Path],
) -> None:
    _, out = converted
    by_code: dict[str, list[dict]] = {}
    for observation in _ndjson(out, "Observation"):
        by_code.setdefault(observation["code"]["coding"][0]["code"], []).append(observation)
    lochia = {o["valueCodeableConcept"]["coding"][0]["code"] for o in by_code["249211006"]}
    assert lochia <= {"289585005", "289581001", "289580000"} and "289581001" in lochia
    hours = {o["valueQuantity"]["value"] for o in by_code["160631000146109"]}
    assert hours == {49, 42}
    delivered = {o["valueQuantity"]["value"] for o in by_code["uren-geleverd"]}
    assert 6.5 in delivered
    weights = by_code["29463-7"]
    assert all(w["meta"]["profile"] == [
        "http://nictiz.nl/fhir/StructureDefinition/zib-BodyWeight"] for w in weights)


def test_kraamverzorgende_and_organisation_are_identified_by_agb(
    converted: tuple[dict, Path],
) -> None:
    _, out = converted
    agbs = {i["value"] for p in _ndjson(out, "Practitioner") for i in p["identifier"]}
    assert agbs == {"22012345", "22012346"}
    organisations = _ndjson(out, "Organization")
    assert [o["identifier"][0]["value"] for o in organisations] == ["22700001"]


def test_output_passes_the_profile_validator(converted: tuple[dict, Path]) -> None:
    try:
        from converters.validation import ProfileValidator
    except ImportError:
        pytest.skip("converters.validation is not importable yet")
    _, out = converted
    validator = ProfileValidator.default()
    errors = []
    for path in (out / "ndjson").glob("*.ndjson"):
        for resource in _ndjson(out, path.stem):
            errors += [f for f in validator.validate(resource) if f.severity == "error"]
    assert errors == []


THIRD_LAYOUT = """\
# A third vendor, added as YAML only (test of issue 4): one row per child weighing.
format_version: 1
kind: message
name: kraamzorg/vendor-c
source: csv
match:
  headers: [Kind BSN, Weegmoment, Gewicht]
resources:
  - as: weight
    map: kraamzorg/c-weight
---
"""

THIRD_RESOURCE = """\
format_version: 1
kind: resource
name: kraamzorg/c-weight
source: csv
resource_type: Observation
profiles: [http://nictiz.nl/fhir/StructureDefinition/zib-BodyWeight]
identity:
  from: [Kind BSN, Weegmoment]
rules:
  - {target: status, constant: final}
  - target: category[+].coding[+]
    constant: {system: "http://hl7.org/fhir/observation-category", code: vital-signs}
  - target: code.coding[+]
    constant: {system: "http://loinc.org", code: 29463-7, display: Body weight}
  - {target: subject.reference, source: Kind BSN, transform: bsn-reference, required: true}
  - {target: effectiveDateTime, source: Weegmoment, transform: datetime, required: true}
  - {target: valueQuantity.value, source: Gewicht, transform: decimal-comma, required: true}
  - {target: valueQuantity.unit, constant: g}
  - {target: valueQuantity.system, constant: "http://unitsofmeasure.org"}
  - {target: valueQuantity.code, constant: g}
"""


def test_a_third_layout_is_added_as_a_yaml_table_without_code_change(tmp_path: Path) -> None:
    mappings = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", mappings)
    (mappings / "kraamzorg" / "vendor-c.yaml").write_text(
        THIRD_LAYOUT.split("---")[0], encoding="utf-8")
    (mappings / "kraamzorg" / "resources" / "c-weight.yaml").write_text(
        THIRD_RESOURCE, encoding="utf-8")
    export = tmp_path / "in" / "vendor_c.csv"
    export.parent.mkdir()
    export.write_text("Kind BSN;Weegmoment;Gewicht\n999990020;02-04-2024 09:00;3412,5\n"
                      "999990020;03-04-2024 09:00;34.12\n", encoding="utf-8")

    report = _convert(export.parent, tmp_path / "out", "--mappings", str(mappings))

    assert report["outcomes"] == {"loaded": 1, "quarantined": 1}
    [weight] = _ndjson(tmp_path / "out", "Observation")
    assert weight["valueQuantity"]["value"] == 3412.5
    assert weight["effectiveDateTime"] == "2024-04-02T09:00:00+02:00"
