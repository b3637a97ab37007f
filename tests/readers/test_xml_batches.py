"""Batch files: concatenated and wrapped documents, broken ones in between, bounded memory.

Every sample here is synthetic; the comment above each says what it exercises.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from converters.readers.xml import read_xml

HL7 = "urn:hl7-org:v3"
UNREADABLE = ("xml:unreadable", "malformed-xml")


def _message(extension: str, body: str = "") -> str:
    """A minimal Kernset-like HL7v3 message (no patient data)."""
    return (
        f'<REPC_IN004014NL><id root="2.16.840.1.113883.2.4.3.11.999.60.1" '
        f'extension="{extension}"/>{body}</REPC_IN004014NL>'
    )


def _write(tmp_path: Path, name: str, content: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def _summary(records) -> list[tuple[str, str]]:
    return [(r.kind, r.error.code if r.error else r.record_id) for r in records]


# Three documents, each with its own XML declaration, as Astraia writes them: not well-formed
# as a whole. The second one has a misnested end tag.
CONCATENATED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<export>\n  <Patient/>\n</export>'
    '<?xml version="1.0" encoding="UTF-8"?>\n<export>\n  <Episode>\n</export>\n'
    '<?xml version="1.0" encoding="UTF-8"?>\n<export>\n  <Exam/>\n</export>\n'
)


def test_concatenated_documents_are_read_one_record_each(tmp_path):
    records = list(read_xml(_write(tmp_path, "astraia.xml", CONCATENATED)))

    assert [r.position for r in records] == [1, 2, 3]
    assert [r.kind for r in records] == ["astraia:export", "xml:unreadable", "astraia:export"]
    assert records[2].payload.find("Exam") is not None


def test_malformed_document_is_an_error_record_with_its_offset_and_line(tmp_path):
    content = CONCATENATED.encode()
    second = content.index(b"<?xml", 1)

    broken = list(read_xml(_write(tmp_path, "astraia.xml", content)))[1]

    assert broken.error.code == "malformed-xml"
    assert broken.payload is None
    assert broken.meta["byte_offset"] == str(second)
    assert broken.meta["line"] == "4"
    assert broken.meta["error_line"] == "7"  # libxml2 notices at the mismatching </export>
    assert broken.raw == content[second : content.index(b"</export>", second) + 9]
    assert "byte" in broken.error.field and "line 7" in broken.error.field
    # The reason names the tags; libxml2's line within the document would only confuse.
    assert "Episode and export" in broken.error.reason and " line " not in broken.error.reason


def test_documents_without_declarations_are_split_at_their_root_ends(tmp_path):
    # Unrecognised roots take the careful path: every tag is tracked.
    content = "<note><to/></note>\n<note><to></to></note>\n\n<note/>"

    records = list(read_xml(_write(tmp_path, "notes.xml", content)))

    assert [r.kind for r in records] == ["xml:note"] * 3
    assert [r.raw for r in records] == [
        b"<note><to/></note>", b"<note><to></to></note>", b"<note/>"
    ]
    assert [r.meta["line"] for r in records] == ["1", "2", "4"]


def test_document_cut_off_by_the_next_declaration_is_an_error_and_the_next_is_read(tmp_path):
    content = (
        '<?xml version="1.0"?><export><Patient><data name="a" value="1"/>'
        '<?xml version="1.0"?><export><Patient/></export>'
    )

    records = list(read_xml(_write(tmp_path, "cut.xml", content)))

    assert _summary(records) == [UNREADABLE, ("astraia:export", "document 2")]


def test_document_truncated_at_the_end_of_the_file_is_an_error_record(tmp_path):
    content = '<?xml version="1.0"?><export><Patient/></export><?xml version="1.0"?><export><Pat'

    records = list(read_xml(_write(tmp_path, "truncated.xml", content)))

    assert _summary(records) == [("astraia:export", "document 1"), UNREADABLE]


def test_wrong_encoding_is_an_error_record_that_does_not_quote_the_bytes(tmp_path):
    # Declared UTF-8, written in Latin-1: the e-acute is byte 0xE9.
    content = '<?xml version="1.0" encoding="UTF-8"?><export><n v="Jos\u00e9"/></export>'
    good = '<?xml version="1.0"?><export/>'
    path = _write(tmp_path, "latin1.xml", content.encode("latin-1") + good.encode())

    records = list(read_xml(path))

    assert _summary(records) == [UNREADABLE, ("astraia:export", "document 2")]
    assert "0xE9" not in str(records[0].error) and "Jos" not in str(records[0].error)


def test_error_messages_and_log_lines_name_places_never_values(tmp_path, caplog):
    content = "<export><naam>Jansen-Testpersoon</nam></export>"

    with caplog.at_level("DEBUG"):
        [record] = read_xml(_write(tmp_path, "broken.xml", content))

    assert record.error.code == "malformed-xml"
    assert "Jansen" not in str(record.error) and "Jansen" not in caplog.text
    assert "broken.xml" in caplog.text


def test_text_between_documents_is_an_error_record_not_silently_dropped(tmp_path):
    content = "<export/>\nstray text\n<export/>"

    records = list(read_xml(_write(tmp_path, "stray.xml", content)))

    assert _summary(records) == [
        ("astraia:export", "document 1"),
        UNREADABLE,
        ("astraia:export", "document 3"),
    ]


# An HL7v3 batch wrapper: the namespace is declared on the container only.
WRAPPED = (
    f'<?xml version="1.0" encoding="UTF-8"?>\n<Batch xmlns="{HL7}">\n'
    f"  <!-- one message per child -->\n  {_message('m1')}\n  {_message('m2')}\n"
    f"  {_message('m3')}\n</Batch>\n"
)


def test_wrapped_batch_yields_each_child_as_a_standalone_document(tmp_path):
    records = list(read_xml(_write(tmp_path, "batch.xml", WRAPPED)))

    assert _summary(records) == [
        ("hl7v3:REPC_IN004014NL", f"m{n}@2.16.840.1.113883.2.4.3.11.999.60.1") for n in (1, 2, 3)
    ]
    for record in records:
        assert record.payload.getparent() is None
        assert record.payload.tag == f"{{{HL7}}}REPC_IN004014NL"
        assert record.meta["namespace"] == HL7
        assert record.raw.startswith(b"<REPC_IN004014NL>")
    starts = [i for i in range(len(WRAPPED)) if WRAPPED.startswith("<REPC", i)]
    assert [r.meta["byte_offset"] for r in records] == [str(i) for i in starts]
    assert [r.meta["line"] for r in records] == ["4", "5", "6"]


def test_broken_child_of_a_wrapped_batch_does_not_stop_the_next_child(tmp_path):
    content = WRAPPED.replace(_message("m2"), _message("m2", "<unclosed><x/>"))

    records = list(read_xml(_write(tmp_path, "batch.xml", content)))

    assert [r.error.code if r.error else r.record_id.split("@")[0] for r in records] == [
        "m1",
        "malformed-xml",
        "m3",
    ]


def test_wrapped_batch_cut_off_before_its_end_tag_is_reported(tmp_path):
    content = WRAPPED[: WRAPPED.index("</Batch>")]

    records = list(read_xml(_write(tmp_path, "batch.xml", content)))

    assert [r.error.code if r.error else "ok" for r in records] == ["ok"] * 3 + ["malformed-xml"]
    assert "not closed" in records[-1].error.reason


def test_document_over_the_size_limit_is_refused_and_reading_resumes(tmp_path):
    small = '<?xml version="1.0"?><export/>'
    big = '<?xml version="1.0"?><export>' + "<Exam/>" * 500 + "</export>"

    records = list(
        read_xml(_write(tmp_path, "big.xml", small + big + small), chunk_size=64,
                 max_document_bytes=1000)
    )

    assert [r.error.code if r.error else r.kind for r in records] == [
        "astraia:export",
        "malformed-xml",
        "astraia:export",
    ]
    assert "larger than 1000 bytes" in records[1].error.reason


MIXED = (
    "\ufeff" + CONCATENATED + WRAPPED + "<note a='x>y'><![CDATA[</note>]]><!-- </note> --></note>"
    + '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e "x">]><r>&e;</r>'
    + "<export><export/></export>"  # a namesake nested inside: the fast path must back off
)


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 64, 1 << 20])
def test_buffer_boundaries_do_not_change_what_is_read(tmp_path, chunk_size):
    path = _write(tmp_path, "mixed.xml", MIXED)

    def fingerprint(records):
        return [(r.kind, r.record_id, r.raw, r.meta["byte_offset"], r.meta["line"],
                 r.error.code if r.error else "") for r in records]

    reference = fingerprint(read_xml(path))

    assert fingerprint(read_xml(path, chunk_size=chunk_size)) == reference
    assert [kind for kind, *_ in reference] == [
        "astraia:export", "xml:unreadable", "astraia:export",
        "hl7v3:REPC_IN004014NL", "hl7v3:REPC_IN004014NL", "hl7v3:REPC_IN004014NL",
        "xml:note", "xml:unreadable", "astraia:export",
    ]


def test_a_long_batch_is_read_with_a_buffer_bounded_by_one_document(tmp_path):
    document = '<?xml version="1.0"?><export>' + '<data name="n" value="1"/>' * 200 + "</export>\n"
    path = tmp_path / "long.xml"
    with path.open("w") as stream:
        for _ in range(2000):  # about 11 MB
            stream.write(document)

    tracemalloc.start()
    try:
        count = sum(1 for record in read_xml(path, chunk_size=64 << 10) if record.error is None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert count == 2000
    assert peak < 2_000_000  # a chunk, a document and a record, never the file
