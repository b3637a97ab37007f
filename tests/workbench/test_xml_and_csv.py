"""The workbench on XML and CSV records: explain names XPaths and columns, coverage lists
element paths, attributes and columns no rule read."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from converters.mapping.tables import load_mappings
from converters.workbench.coverage import measure
from converters.workbench.explain import convert_traced, elements, pick_record
from tests.conftest import ROOT, SAMPLES

MESSAGE = """format_version: 1
kind: message
name: test/dossier
source: xml
match:
  kinds: ["xml:dossier"]
resources:
  - as: patient
    map: test/woman
"""
WOMAN = """format_version: 1
kind: resource
name: test/woman
source: xml
resource_type: Patient
profiles: [http://fhir.nl/fhir/StructureDefinition/nl-core-patient]
rules:
  - target: identifier[+].system
    constant: http://fhir.nl/fhir/NamingSystem/bsn
  - target: identifier[=].value
    source: vrouw/bsn/@waarde
"""
BIRTH_DATE = """  - target: birthDate
    source: vrouw/geboortedatum
    transform: date
"""
DOSSIER = ('<dossier><vrouw><bsn waarde="999911120"/>'
           '<geboortedatum>1990-01-01</geboortedatum></vrouw></dossier>')


def _mappings(tmp_path: Path, *, with_birth_date: bool) -> Path:
    folder = tmp_path / "mappings"
    if not folder.exists():
        shutil.copytree(ROOT / "mappings" / "codes", folder / "codes")
    (folder / "test").mkdir(exist_ok=True)
    (folder / "test" / "dossier.yaml").write_text(MESSAGE)
    (folder / "test" / "woman.yaml").write_text(WOMAN + (BIRTH_DATE if with_birth_date else ""))
    return folder


@pytest.fixture
def dossier(tmp_path: Path) -> Path:
    path = tmp_path / "dossier.xml"
    path.write_text(DOSSIER)
    return path


def test_explain_names_an_attribute_by_its_element_path(tmp_path: Path, dossier: Path) -> None:
    mappings = load_mappings(_mappings(tmp_path, with_birth_date=True))
    found = {e.path: e for e in elements(convert_traced(pick_record(dossier), mappings))}
    assert found["identifier[0].value"].source == "/dossier/vrouw/bsn/@waarde"
    assert found["identifier[0].system"].source == "constant"
    assert found["birthDate"].source == "/dossier/vrouw/geboortedatum"
    assert found["birthDate"].rules[0].endswith("test/woman.yaml:12")


def test_an_xml_element_no_rule_reads_is_listed_until_a_rule_uses_it(
        tmp_path: Path, dossier: Path) -> None:
    before = measure([dossier], load_mappings(_mappings(tmp_path, with_birth_date=False)))
    after = measure([dossier], load_mappings(_mappings(tmp_path, with_birth_date=True)))
    places = {place for _, place, _ in before.ranked_fields()}
    assert places == {"/dossier/vrouw/geboortedatum"}  # the BSN attribute was read
    assert not after.fields


def test_a_csv_column_no_rule_reads_is_listed_with_its_row() -> None:
    sample = SAMPLES / "kraamzorg" / "vendor_a_visits.csv"
    mappings = load_mappings()
    if not any(m.source == "csv" for m in mappings.messages):
        pytest.skip("no CSV mapping tables are present yet")
    ranked = measure([sample], mappings).ranked_fields()
    assert ("csv", "opmerking") in {(fmt, place) for fmt, place, _ in ranked}
    tally = next(t for fmt, place, t in ranked if place == "opmerking")
    assert tally.example.endswith("vendor_a_visits.csv#row 6")
