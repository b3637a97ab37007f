"""Every XML file of the public corpus reads, and each document type is recognised."""

from __future__ import annotations

from pathlib import Path

import pytest

from converters.readers.xml import read_xml

CORPUS = (Path(__file__).resolve().parents[2] / "../shared/corpus").resolve()

FOLDERS = [
    "nictiz-peri-hl7v3-cda",
    "peri20-xml-examples",
    "nictiz-acute-overdracht-hl7v3",
    "peri22x",
    "astraia-export",
    "nictiz-gebz-babyconnect-fhir",
    "nictiz-peri326-fhir",
    "geboortezorg-stu3-examples",
]

KINDS = {
    "nictiz-peri-hl7v3-cda/2.3.6/kernset_geboortezorg/hl7_instance/scenario1-23.xml":
        ["hl7v3:REPC_IN004014NL"],
    "nictiz-peri-hl7v3-cda/2.3.6/kernset_geboortezorg/ada_instance/scenario1-23.xml":
        ["ada:kernset_geboortezorg"],
    "nictiz-peri-hl7v3-cda/3.0/kernset_neonatologie/cda_instance/ksneo-test1.xml":
        ["cda:2.16.840.1.113883.2.4.6.10.90.901181"],
    "peri20-xml-examples/Kernset-Neo-Full.xml":
        ["cda:2.16.840.1.113883.2.4.3.11.60.20.77.10.9222"],
    "peri20-xml-examples/PRPA_EX101301NL_Geboortebericht_v22_1.xml": ["hl7v3:PRPA_IN101301NL"],
    "nictiz-acute-overdracht-hl7v3/Scenario S05-AW.XML": ["hl7v3:REPC_IN002120NL"],
    "nictiz-acute-overdracht-hl7v3/Scenario S05-AW-ada.xml": ["ada:ada"],
    "peri22x/realm-peri22x-resources/voorbeeld-1a.xml": ["peri22x:hub/dossier"],
    "peri22x/peri22x2hl7/peri22x/mintest.xml": ["peri22x:hub/dossier"],  # starts with a BOM
    "peri22x/peri22x2hl7/ada/mintest.xml": ["ada:kernset_aanleverbericht"],
    "astraia-export/astraiaMessage.xml": ["astraia:export", "astraia:export"],
    "nictiz-gebz-babyconnect-fhir/2.3/partus/ada-instance/bevallingsgegevens.xml":
        ["ada:bevallingsgegevens_23"],
    "nictiz-peri326-fhir/med_mij_01_beschikbaarstellen_integrale_zwangerschapskaart/"
    "ada_instance/gz-izb-kwa-1-V1_actieve_zwschap.xml":
        ["ada:med_mij_01_beschikbaarstellen_integrale_zwangerschapskaart"],
}


def _corpus(relative: str) -> Path:
    path = CORPUS / relative
    if not path.exists():
        pytest.skip(f"public corpus not found at {path}")
    return path


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_xml_file_of_the_corpus_folder_reads_without_errors(folder):
    files = [p for p in _corpus(folder).rglob("*") if p.suffix.lower() == ".xml"]

    records = [record for path in files for record in read_xml(path)]

    assert files and len(records) >= len(files)
    assert [r.key for r in records if r.error is not None] == []
    assert all(r.format == "xml" and r.payload is not None for r in records)


@pytest.mark.parametrize("relative", sorted(KINDS))
def test_document_kind_is_recognised(relative):
    assert [r.kind for r in read_xml(_corpus(relative))] == KINDS[relative]


def test_astraia_export_with_two_concatenated_documents_yields_two_records():
    first, second = read_xml(_corpus("astraia-export/astraiaMessage.xml"))

    assert (first.position, second.position) == (1, 2)
    assert first.payload.tag == second.payload.tag == "export"
    assert int(second.meta["byte_offset"]) == len(first.raw)  # "</export><?xml" in the file
    assert second.raw.startswith(b"<?xml")


def test_kernset_message_carries_its_id_and_the_template_of_its_care_provision():
    path = _corpus("peri20-xml-examples/REPC_EX004014_Aanmelding_1.xml")

    [record] = read_xml(path)

    assert record.record_id == "86572343@2.16.840.1.113883.2.4.3.11.999.60.1"
    assert record.meta["templateIds"] == "2.16.840.1.113883.2.4.6.10.90.900927"
    assert record.meta["namespace"] == "urn:hl7-org:v3"


def test_ada_record_id_is_the_transaction_id_and_the_payload_is_the_adaxml_root():
    folder = "nictiz-peri-hl7v3-cda/2_2/kernset_aanleverbericht/ada_instance"
    path = _corpus(f"{folder}/999.1 Test_NL.xml")

    [record] = read_xml(path)

    assert record.record_id == "49a4bb56-3795-4abd-bf22-7ad2a4288c50"
    assert record.payload.tag == "adaxml"


def test_document_with_large_attachments_is_read_whole():
    path = _corpus("nictiz-acute-overdracht-hl7v3/Scenario S05-AW.XML")

    [record] = read_xml(path, chunk_size=4096)

    assert record.raw == path.read_bytes().rstrip()
    assert record.record_id.startswith("fa3a1400-1327-11e4-9191-0800200c9a66@")
