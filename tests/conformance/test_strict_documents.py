"""Conformance counts what the pipeline loads: a document failing validation adds nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

from converters import conformance as cf
from tests.conftest import ROOT

REFUSE = """    refuse:
      when: {path: "patient/@value = //vrouw/demografische_gegevens/patient/@value", equals: "true"}
      issue: birth-names-mother
"""

# A synthetic document whose only birth names the woman herself as the child.
DOCUMENT = """<adaxml><data><med_mij_uitbreiding_verloskunde_beschikbaarstellen>
  <administratief>
    <patient id="W"><identificatienummer value="999999990" root="2.16.840.1.113883.2.4.6.3"/>
      <geboortedatum value="1990-01-01"/></patient>
  </administratief>
  <vrouw><demografische_gegevens><patient value="W"/></demografische_gegevens></vrouw>
  <bevalling><uitdrijvingsfase><patient value="W"/></uitdrijvingsfase></bevalling>
</med_mij_uitbreiding_verloskunde_beschikbaarstellen></data></adaxml>
"""


def _document(tmp_path: Path) -> Path:
    path = tmp_path / "mother-as-child.xml"
    path.write_text(DOCUMENT, encoding="utf-8")
    return path


def test_a_document_the_pipeline_would_quarantine_reproduces_nothing(tmp_path: Path) -> None:
    tables = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", tables)
    message = tables / "ada32" / "message.yaml"
    text = message.read_text(encoding="utf-8")
    assert REFUSE in text
    message.write_text(text.replace(REFUSE, ""), encoding="utf-8")

    resources, problems = cf.Converter(tables).convert(_document(tmp_path))

    assert resources == []
    assert len(problems) == 1
    assert "profile finding" in problems[0] and "Procedure.subject" in problems[0]


def test_the_same_document_loads_once_the_birth_is_refused(tmp_path: Path) -> None:
    resources, problems = cf.Converter(ROOT / "mappings").convert(_document(tmp_path))

    assert problems == []
    assert any(r["resourceType"] == "Patient" for r in resources)
    assert not any(r["resourceType"] == "Procedure" and "bc-Birth" in str(r.get("meta"))
                   for r in resources)
