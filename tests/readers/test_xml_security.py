"""XML entity attacks are refused before any expansion (OWASP XML External Entity Prevention)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from lxml import etree

from converters.readers.xml import read_xml, safe_parser

CANARY = "CANARY-7f3e-content-of-a-file-outside-the-export"

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz>&lol9;</lolz>
"""


def _secret(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text(CANARY)
    return secret


def _everything_said(record) -> str:
    """Everything a record exposes, as one text to search for leaked content."""
    parts = [repr(record), record.raw.decode("utf-8", "replace"), str(record.meta)]
    if record.error is not None:
        parts += [str(record.error), str(record.error.as_dict())]
    if record.payload is not None:
        parts.append(etree.tostring(record.payload).decode())
    return "\n".join(parts)


def _xxe_document(secret: Path) -> bytes:
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "{secret.as_uri()}">]>\n'
        "<r><id>&x;</id></r>\n"
    ).encode()


def test_external_entity_is_refused_as_unsafe_and_the_file_it_names_is_never_read(tmp_path):
    source = tmp_path / "xxe.xml"
    source.write_bytes(_xxe_document(_secret(tmp_path)))

    [record] = read_xml(source)

    assert record.error is not None and record.error.code == "unsafe-xml"
    assert record.payload is None
    assert CANARY not in _everything_said(record)


def test_parameter_entity_and_external_dtd_are_refused_as_unsafe(tmp_path):
    secret = _secret(tmp_path)
    source = tmp_path / "xxe-variants.xml"
    source.write_bytes(
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "{secret.as_uri()}"> %p;]>'
        f"<r/>\n"
        f'<?xml version="1.0"?><!DOCTYPE r SYSTEM "{secret.as_uri()}"><r/>\n'.encode()
    )

    records = list(read_xml(source))

    assert [r.error.code for r in records] == ["unsafe-xml", "unsafe-xml"]
    assert all(CANARY not in _everything_said(r) for r in records)


def test_unsafe_document_in_a_batch_does_not_stop_its_neighbours(tmp_path):
    good = b'<?xml version="1.0"?><export><Patient/></export>\n'
    source = tmp_path / "batch.xml"
    source.write_bytes(good + _xxe_document(_secret(tmp_path)) + good)

    records = list(read_xml(source))

    assert [r.error.code if r.error else r.kind for r in records] == [
        "astraia:export",
        "unsafe-xml",
        "astraia:export",
    ]


def test_billion_laughs_is_refused_without_expanding_a_single_entity(tmp_path):
    source = tmp_path / "lolz.xml"
    source.write_bytes(BILLION_LAUGHS)

    tracemalloc.start()
    try:
        [record] = read_xml(source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert record.error is not None and record.error.code == "unsafe-xml"
    assert peak < 2_000_000  # the expansion would be 3 GB; the file is under 1 KB
    assert b"lollollol" not in record.raw


def test_doctype_without_entities_or_external_dtd_is_read_normally(tmp_path):
    source = tmp_path / "plain-doctype.xml"
    source.write_bytes(b'<?xml version="1.0"?>\n<!DOCTYPE export>\n<export><Patient/></export>\n')

    [record] = read_xml(source)

    assert record.error is None
    assert record.kind == "astraia:export"


def test_the_parser_itself_never_resolves_an_external_entity(tmp_path):
    # Defence in depth: even a document that slipped past the splitter reads nothing outside.
    document = _xxe_document(_secret(tmp_path))

    try:
        root = etree.fromstring(document, safe_parser())
    except etree.XMLSyntaxError:
        return
    assert CANARY not in etree.tostring(root).decode()
