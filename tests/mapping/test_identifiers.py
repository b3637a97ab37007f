"""An identifier whose value the tables refuse is left out whole, not kept as a bare system."""

from __future__ import annotations

from pathlib import Path

from converters.mapping.engine import Engine
from converters.mapping.tables import load_mappings
from converters.readers.xml import read_xml
from tests.conftest import ROOT

BSN = "http://fhir.nl/fhir/NamingSystem/bsn"

KERNSET = """<REPC_IN004014NL xmlns="urn:hl7-org:v3">
  <id root="2.16.840.1.113883.2.4.6.99.1" extension="TEST-1"/>
  <ControlActProcess classCode="CACT" moodCode="EVN"><subject typeCode="SUBJ">
    <registrationProcess classCode="REG" moodCode="EVN"><subject2 typeCode="SUBJ">
      <CareProvisionEvent classCode="PCPR" moodCode="EVN">
        <templateId root="2.16.840.1.113883.2.4.6.10.90.76"/>
        <id root="2.16.840.1.113883.2.4.6.99.2" extension="DOSSIER-1"/>
        <subject typeCode="SBJ"><patient classCode="PAT">
          <id root="2.16.840.1.113883.2.4.6.3" extension="{bsn}"/>
          <patientPerson><birthTime value="19900101"/></patientPerson>
        </patient></subject>
      </CareProvisionEvent>
    </subject2></registrationProcess>
  </subject></ControlActProcess>
</REPC_IN004014NL>
"""


def _woman(tmp_path: Path, bsn: str) -> dict:
    path = tmp_path / "kernset.xml"
    path.write_text(KERNSET.format(bsn=bsn), encoding="utf-8")
    conversion = Engine(load_mappings(ROOT / "mappings")).convert(next(iter(read_xml(path))))
    return next(d.body for d in conversion.drafts if d.resource_type == "Patient")


def test_a_bsn_failing_the_11_test_leaves_no_bsn_identifier(tmp_path: Path) -> None:
    woman = _woman(tmp_path, "123456789")
    assert not [i for i in woman.get("identifier", []) if i.get("system") == BSN]
    assert woman["birthDate"] == "1990-01-01"


def test_a_valid_bsn_is_kept_with_its_system(tmp_path: Path) -> None:
    woman = _woman(tmp_path, "999910048")
    assert {"system": BSN, "value": "999910048"} in woman["identifier"]
