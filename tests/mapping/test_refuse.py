"""A produced resource's `refuse:` leaves out the occurrence the source gets wrong, and says so."""

from __future__ import annotations

from pathlib import Path

from converters.mapping.engine import Engine
from converters.mapping.tables import load_mappings
from converters.readers.xml import read_xml

ROOT = Path(__file__).resolve().parents[2]

DOCUMENT = """<adaxml><data><med_mij_uitbreiding_verloskunde_beschikbaarstellen>
  <administratief>
    <patient id="W"><identificatienummer value="999999990" root="2.16.840.1.113883.2.4.6.3"/>
      <geboortedatum value="1990-01-01"/></patient>
    <patient id="K"><geboortedatum value="2024-06-01"/></patient>
  </administratief>
  <vrouw><demografische_gegevens><patient value="W"/></demografische_gegevens></vrouw>
  <bevalling>
    <uitdrijvingsfase><patient value="K"/></uitdrijvingsfase>
    <uitdrijvingsfase><patient value="W"/></uitdrijvingsfase>
  </bevalling>
</med_mij_uitbreiding_verloskunde_beschikbaarstellen></data></adaxml>
"""


def _convert(tmp_path: Path):
    path = tmp_path / "births.xml"
    path.write_text(DOCUMENT, encoding="utf-8")
    record = next(iter(read_xml(path)))
    return Engine(load_mappings(ROOT / "mappings")).convert(record)


def test_a_birth_naming_the_mother_is_left_out_and_the_child_birth_kept(tmp_path: Path) -> None:
    conversion = _convert(tmp_path)
    births = [d for d in conversion.drafts if d.alias.startswith("birth")]
    assert [d.alias for d in births] == ["birth#K"]


def test_the_refused_birth_is_reported_with_its_place(tmp_path: Path) -> None:
    conversion = _convert(tmp_path)
    refused = [i for i in conversion.issues if i.code == "birth-names-mother"]
    assert len(refused) == 1
    assert "uitdrijvingsfase" in refused[0].field
    assert refused[0].rule.startswith("mappings/ada32/message.yaml:")
