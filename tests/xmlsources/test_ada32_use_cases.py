"""All four MedMij use cases of PWD 3.2 go through the same ADA tables.

The corpus holds Nictiz's instances of two of them (integrale zwangerschapskaart, uitbreiding
verloskunde); the kraamzorg and ultrasound transactions carry the same dataset concepts under
their own element, shown here with synthetic documents.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from converters.mapping.engine import Engine
from converters.mapping.tables import load_mappings
from converters.readers.xml import read_xml
from tests.conftest import ROOT

BODY = """
  <administratief>
    <contact id="C1"><contact_type code="HH" codeSystem="2.16.840.1.113883.5.4"/>
      <contact_soort code="158111000146102" codeSystem="2.16.840.1.113883.6.96"/>
      <begin_datum_tijd value="2024-05-02"/></contact>
    <patient id="W"><identificatienummer value="999999990" root="2.16.840.1.113883.2.4.6.3"/>
      <geboortedatum value="1990-01-01"/></patient>
  </administratief>
  <vrouw><demografische_gegevens><patient value="W"/></demografische_gegevens></vrouw>
  <zwangerschapsgegevens>
    <zwangerschap><graviditeit value="1"/></zwangerschap>
  </zwangerschapsgegevens>
"""


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(load_mappings(ROOT / "mappings"))


@pytest.mark.parametrize("transaction", ["med_mij_kraam_beschikbaarstellen",
                                         "med_mij_echo_beschikbaarstellen"])
def test_the_kraamzorg_and_ultrasound_transactions_convert(
        tmp_path: Path, engine: Engine, transaction: str) -> None:
    path = tmp_path / f"{transaction}.xml"
    path.write_text(f"<adaxml><data><{transaction} id='doc-1'>{BODY}</{transaction}></data>"
                    "</adaxml>", encoding="utf-8")
    record = next(iter(read_xml(path)))

    conversion = engine.convert(record)

    assert record.kind == f"ada:{transaction}"
    produced = {(d.resource_type, d.alias.split("#")[0]) for d in conversion.drafts}
    assert {("Patient", "woman"), ("Condition", "pregnancy"), ("Encounter", "encounter"),
            ("Observation", "gravidity")} <= produced
