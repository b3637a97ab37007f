"""Record fields, document types and format sniffing, on small synthetic documents."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from converters.readers.xml import detect_xml, identify, read_xml


def _write(tmp_path: Path, content: bytes | str, name: str = "doc.xml") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def test_single_document_record_carries_bytes_position_and_root(tmp_path):
    content = '<?xml version="1.0"?>\n<export><Patient/></export>\n'

    [record] = read_xml(_write(tmp_path, content))

    assert (record.position, record.format, record.record_id) == (1, "xml", "document 1")
    assert record.raw == content.encode().rstrip()
    assert record.payload.tag == "export"
    assert record.meta == {
        "byte_offset": "0", "line": "1", "root": "export", "namespace": "", "templateIds": "",
    }


@pytest.mark.parametrize(
    ("document", "kind", "record_id"),
    [
        # HL7v3 interaction: the message id, extension and root.
        ('<MCCI_IN000002 xmlns="urn:hl7-org:v3"><id root="1.2" extension="9"/></MCCI_IN000002>',
         "hl7v3:MCCI_IN000002", "9@1.2"),
        # CDA: the first header templateId names the document type.
        ('<ClinicalDocument xmlns="urn:hl7-org:v3"><templateId root="1.2.3"/><templateId '
         'root="4.5"/><id root="1.9" extension="cda-1"/></ClinicalDocument>',
         "cda:1.2.3", "cda-1@1.9"),
        ('<ClinicalDocument xmlns="urn:hl7-org:v3"/>', "cda:ClinicalDocument", ""),
        # ADA: the transaction under data, its id; never its title (free text, may hold a name).
        ('<adaxml><meta/><data><prio1 id="t-1" title="x"/></data></adaxml>', "ada:prio1", "t-1"),
        ('<adaxml><data><prio1 title="Vrouw Jansen"/></data></adaxml>', "ada:prio1", ""),
        # ADA transaction written without the adaxml wrapper.
        ('<kernset><vrouw conceptId="2.16.840.1.113883.2.4.3.11.60.90.77.2.5.2"/></kernset>',
         "ada:kernset", ""),
        ('<resource type="hub/dossier" uuid="u-7"><sections/></resource>', "peri22x:hub/dossier",
         "u-7"),
        ("<export><Patient/></export>", "astraia:export", ""),
        # FHIR itself (a reference output): named as such, with its logical id.
        ('<Bundle xmlns="http://hl7.org/fhir"><id value="b"/></Bundle>', "fhir:Bundle", "b"),
        ('<Observation xmlns="http://hl7.org/fhir"/>', "fhir:Observation", ""),
        ('<note xmlns="urn:example:other"/>', "xml:note", ""),
    ],
)
def test_document_type_and_id_come_from_the_root(document, kind, record_id):
    assert identify(etree.fromstring(document)) == (kind, record_id)


def test_cda_meta_lists_all_header_template_ids(tmp_path):
    content = ('<ClinicalDocument xmlns="urn:hl7-org:v3"><templateId root="1.2.3"/>'
               '<templateId root="4.5"/></ClinicalDocument>')

    [record] = read_xml(_write(tmp_path, content))

    assert record.meta["templateIds"] == "1.2.3,4.5"


def test_utf16_document_is_read_as_one_document(tmp_path):
    content = '<?xml version="1.0" encoding="UTF-16"?><export><n v="\u00e9"/></export>'

    [record] = read_xml(_write(tmp_path, content.encode("utf-16")))

    assert record.error is None
    assert record.payload.find("n").get("v") == "\u00e9"


def test_empty_file_yields_no_records(tmp_path):
    assert list(read_xml(_write(tmp_path, b""))) == []


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'<?xml version="1.0"?><export/>', True),
        (b"\xef\xbb\xbf\n  <resource type='hub/dossier'/>", True),
        ('<?xml version="1.0" encoding="UTF-16"?><a/>'.encode("utf-16"), True),
        (b"<!-- export --><export/>", True),
        (b"MSH|^~\\&|LAB|NL|||20240101||ORU^R01|1|P|2.5\r", False),
        (b"bsn;geboortedatum\n", False),
        (b"", False),
    ],
)
def test_detect_xml_sniffs_the_first_bytes(tmp_path, content, expected):
    assert detect_xml(_write(tmp_path, content)) is expected
