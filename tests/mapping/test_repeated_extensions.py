"""`extension[+url=...]` appends an extension per value; a keyed reference to nothing goes."""

from __future__ import annotations

from pathlib import Path

from converters.mapping.engine import Engine
from converters.mapping.tables import load_mappings
from converters.mapping.targetpath import compile_path, write
from converters.readers.xml import read_xml

SUPPORT = "http://example.org/fhir/StructureDefinition/supporting"

MESSAGE = """# Synthetic test map: one observation pointing at the steps of its <dossier>.
format_version: 1
kind: message
name: test/dossier
source: xml
match:
  kinds: ["xml:dossier"]
resources:
  - as: step
    map: test/step
    for_each: stap
    key: "@id"
  - as: finding
    map: test/finding
"""

STEP = """# Synthetic test map: a step of the dossier.
format_version: 1
kind: resource
name: test/step
source: xml
resource_type: Procedure
profiles: [http://example.org/fhir/StructureDefinition/step]
rules:
  - target: status
    source: "@status"
"""

FINDING = f"""# Synthetic test map: a finding supported by every step it names.
format_version: 1
kind: resource
name: test/finding
source: xml
resource_type: Observation
profiles: [http://example.org/fhir/StructureDefinition/finding]
rules:
  - target: status
    constant: final
  - target: code.text
    source: bevinding/@naam
  - target: extension[+url={SUPPORT}].valueReference
    reference: step
    key: bevinding/stap/@ref
    repeat: true
  - target: focus
    reference: step
    key: bevinding/focus/@ref
"""


def _finding(tmp_path: Path, document: str) -> dict:
    tables = tmp_path / "mappings"
    tables.mkdir()
    (tables / "message.yaml").write_text(MESSAGE, encoding="utf-8")
    (tables / "step.yaml").write_text(STEP, encoding="utf-8")
    (tables / "finding.yaml").write_text(FINDING, encoding="utf-8")
    source = tmp_path / "dossier.xml"
    source.write_text(document, encoding="utf-8")
    conversion = Engine(load_mappings(tables)).convert(next(iter(read_xml(source))))
    return next(d.body for d in conversion.drafts if d.alias == "finding")


def test_an_appending_url_step_adds_a_new_item_even_when_that_url_exists() -> None:
    body: dict = {}
    steps = compile_path(f"extension[+url={SUPPORT}].valueString")
    write(body, steps, "a")
    write(body, steps, "b")
    assert body["extension"] == [{"url": SUPPORT, "valueString": "a"},
                                 {"url": SUPPORT, "valueString": "b"}]


def test_a_matching_url_step_still_writes_into_the_existing_item() -> None:
    body: dict = {}
    steps = compile_path(f"extension[url={SUPPORT}].valueString")
    write(body, steps, "a")
    write(body, steps, "b")
    assert body["extension"] == [{"url": SUPPORT, "valueString": "b"}]


def test_each_keyed_reference_gets_its_own_extension(tmp_path: Path) -> None:
    finding = _finding(tmp_path, """<dossier><stap id="S1" status="completed"/>
      <stap id="S2" status="completed"/>
      <bevinding naam="b"><stap ref="S1"/><stap ref="S2"/></bevinding></dossier>""")
    targets = [e["valueReference"]["reference"] for e in finding["extension"]]
    assert targets == ["step#S1", "step#S2"]
    assert all(e["url"] == SUPPORT for e in finding["extension"])


def test_an_extension_whose_keyed_reference_names_nothing_is_dropped(tmp_path: Path) -> None:
    finding = _finding(tmp_path, """<dossier><stap id="S1" status="completed"/>
      <bevinding naam="b"><stap ref="S1"/><stap ref="GONE"/><focus ref="GONE"/></bevinding>
      </dossier>""")
    assert [e["valueReference"]["reference"] for e in finding["extension"]] == ["step#S1"]
    assert "focus" not in finding
