"""Reading HL7v2 files: splitting, envelopes, framing, separators, character sets, broken input."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from converters.readers.hl7v2 import iter_hl7v2, read_hl7v2
from converters.records import SourceRecord


def msh(control: str, kind: str = "ADT^A04", charset: str = "") -> str:
    return f"MSH|^~\\&|HIS|LINDE|BCONV|BC|20240820091500||{kind}|{control}|P|2.5||||||{charset}"


def pid(name: str = "Jansen&&Jansen^Eva") -> str:
    return f"PID|1||999990317^^^NLMINBIZA^NNNLD||{name}||19920314|F"


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "export.hl7"
    path.write_bytes(data)
    return path


def read(tmp_path: Path, data: bytes) -> list[SourceRecord]:
    return list(read_hl7v2(write(tmp_path, data)))


def text_of(record: SourceRecord, field: int, component: int = 1, sub: int = 1) -> str:
    segment = record.payload.first("PID")
    return segment.get(field, component, sub)


def test_a_file_of_many_messages_yields_one_record_each_in_order(tmp_path: Path) -> None:
    data = "".join(f"{msh(f'C{n}')}\r{pid()}\r" for n in range(1, 4)).encode()

    records = read(tmp_path, data)

    assert [r.position for r in records] == [1, 2, 3]
    assert [r.record_id for r in records] == ["C1", "C2", "C3"]
    assert {(r.format, r.kind) for r in records} == {("hl7v2", "ADT^A04")}
    assert all(r.error is None for r in records)


def test_records_describe_the_message_in_meta(tmp_path: Path) -> None:
    [record] = read(tmp_path, f"{msh('C1', charset='8859/1')}\r{pid()}\r".encode())

    assert record.file == str(tmp_path / "export.hl7")
    assert record.meta == {
        "version": "2.5",
        "charset": "latin-1",
        "sending_application": "HIS",
        "sending_facility": "LINDE",
        "message_datetime": "20240820091500",
        "batch": "",
    }


@pytest.mark.parametrize("separator", ["\r", "\n", "\r\n"])
def test_cr_lf_and_crlf_separators_give_the_same_segments(tmp_path: Path, separator: str) -> None:
    data = separator.join([msh("C1"), pid(), "PV1|1|O", msh("C2"), pid(), ""]).encode()

    records = read(tmp_path, data)

    assert [[s.name for s in r.payload.segments] for r in records] == [
        ["MSH", "PID", "PV1"],
        ["MSH", "PID"],
    ]


def test_raw_holds_the_exact_bytes_of_each_message_even_with_mixed_separators(
    tmp_path: Path,
) -> None:
    first = f"{msh('C1')}\r\n{pid()}\n".encode()
    second = f"{msh('C2')}\r{pid()}\r\n".encode()

    records = read(tmp_path, first + second)

    assert [r.raw for r in records] == [first, second]


def test_mllp_framing_is_removed_and_raw_excludes_the_frame(tmp_path: Path) -> None:
    body = f"{msh('C1')}\r{pid()}\r".encode()
    data = b"\x0b" + body + b"\x1c\r" + b"\x0b" + body.replace(b"C1", b"C2") + b"\x1c\r"

    records = read(tmp_path, data)

    assert [r.record_id for r in records] == ["C1", "C2"]
    assert records[0].raw == body
    assert [s.name for s in records[1].payload.segments] == ["MSH", "PID"]


def test_a_utf8_byte_order_mark_before_the_first_message_is_ignored(tmp_path: Path) -> None:
    records = read(tmp_path, b"\xef\xbb\xbf" + f"{msh('C1')}\r{pid()}\r".encode())

    assert [r.record_id for r in records] == ["C1"]
    assert records[0].error is None


def test_batch_envelopes_are_not_records_and_name_the_batch(tmp_path: Path) -> None:
    lines = [
        "FHS|^~\\&|HIS|LINDE",
        "BHS|^~\\&|HIS|LINDE|||20241105||||BATCH-7",
        msh("C1"),
        pid(),
        msh("C2"),
        pid(),
        "BTS|2",
        "FTS|1",
    ]
    records = read(tmp_path, "\r\n".join(lines).encode())

    assert [r.record_id for r in records] == ["C1", "C2"]
    assert [r.meta["batch"] for r in records] == ["BATCH-7", "BATCH-7"]
    assert all(b"BTS" not in r.raw and b"BHS" not in r.raw for r in records)


def test_a_broken_message_in_a_batch_becomes_an_error_record_and_the_rest_survive(
    tmp_path: Path,
) -> None:
    broken = "MSH|^~\\&|HIS|LINDE|BCONV|BC|20241105|||C2|P|2.5"
    lines = ["BHS|^~\\&|HIS|LINDE|||||||B1", msh("C1"), pid(), broken, pid(), msh("C3"), pid()]

    records = read(tmp_path, "\r".join(lines + ["BTS|3"]).encode())
    bad = records[1]

    assert [r.error is None for r in records] == [True, False, True]
    assert bad.payload is None
    assert bad.record_id == "C2"
    assert bad.error is not None
    assert (bad.error.code, bad.error.field, bad.error.record_id) == ("malformed", "MSH-9", "C2")
    assert bad.raw.startswith(b"MSH") and b"PID" in bad.raw
    assert bad.meta["batch"] == "B1"


def test_a_message_without_control_id_is_numbered_by_its_position(tmp_path: Path) -> None:
    no_id = "MSH|^~\\&|HIS|LINDE|BCONV|BC|20241105||ADT^A04||P|2.5"

    records = read(tmp_path, f"{msh('C1')}\r{no_id}\r{pid()}\r".encode())

    assert records[1].record_id == "message 2"
    assert records[1].kind == "ADT^A04"
    assert records[1].error is not None and records[1].error.field == "MSH-10"


def test_junk_outside_any_message_becomes_its_own_error_record(tmp_path: Path) -> None:
    data = f"export of 2024-11-05\r{msh('C1')}\r{pid()}\r".encode()

    records = read(tmp_path, data)

    assert [r.position for r in records] == [1, 2]
    assert records[0].payload is None and records[0].error is not None
    assert records[0].error.field == "MSH"
    assert records[0].raw == b"export of 2024-11-05\r"
    assert records[1].record_id == "C1" and records[1].error is None


def test_trailing_junk_breaks_only_the_message_it_follows(tmp_path: Path) -> None:
    data = f"{msh('C1')}\r{pid()}\r-- end of part 1 --\r{msh('C2')}\r{pid()}\r".encode()

    records = read(tmp_path, data)

    assert records[0].error is not None and records[0].error.field == "segment 3"
    assert records[1].error is None


def test_msh_inside_a_line_does_not_start_a_message(tmp_path: Path) -> None:
    data = f"{msh('C1')}\rNTE|1||zie MSH|^~\\&| hierboven\r{msh('C2')}\r".encode()

    records = read(tmp_path, data)

    assert [r.record_id for r in records] == ["C1", "C2"]
    assert records[0].payload.first("NTE").get(3) == "zie MSH"


def test_junk_after_the_file_trailer_becomes_an_error_record(tmp_path: Path) -> None:
    data = f"{msh('C1')}\r{pid()}\rBTS|1\rFTS|1\r\x1a-- einde --\r\n".encode()

    records = read(tmp_path, data)

    assert [r.error is None for r in records] == [True, False]
    assert records[1].raw == b"-- einde --\r\n"
    assert records[1].record_id.startswith("bytes at offset")


def test_true_latin1_bytes_declared_8859_1_are_read_as_latin1(tmp_path: Path) -> None:
    data = f"{msh('C1', charset='8859/1')}\r{pid('Jansen&&Jansen^Noëlle')}\r".encode("latin-1")

    [record] = read(tmp_path, data)

    assert text_of(record, 5, 2) == "Noëlle"
    assert record.meta["charset"] == "latin-1"
    assert "charset_note" not in record.meta


def test_utf8_bytes_declared_8859_1_are_read_as_utf8_with_a_note(tmp_path: Path) -> None:
    data = f"{msh('C1', charset='8859/1')}\r{pid('Jansen&&Jansen^Noëlle')}\r".encode()

    [record] = read(tmp_path, data)

    assert text_of(record, 5, 2) == "Noëlle"
    assert record.meta["charset"] == "utf-8"
    assert "8859/1" in record.meta["charset_note"]


def test_8859_15_reads_the_euro_sign(tmp_path: Path) -> None:
    data = f"{msh('C1', charset='8859/15')}\rNTE|1||€ 12\r".encode("iso8859-15")

    [record] = read(tmp_path, data)

    assert record.payload.first("NTE").get(3) == "€ 12"
    assert record.meta["charset"] == "iso8859-15"


def test_unicode_utf8_and_an_absent_charset_read_utf8(tmp_path: Path) -> None:
    declared = f"{msh('C1', charset='UNICODE UTF-8')}\r{pid('Jansen&&Jansen^Chloë')}\r"
    absent = f"{msh('C2')}\r{pid('Jansen&&Jansen^Zoë')}\r"

    records = read(tmp_path, (declared + absent).encode())

    assert [text_of(r, 5, 2) for r in records] == ["Chloë", "Zoë"]
    assert [r.meta["charset"] for r in records] == ["utf-8", "utf-8"]


def test_bytes_that_are_not_the_declared_charset_make_an_error_record(tmp_path: Path) -> None:
    bad = f"{msh('C1', charset='UNICODE UTF-8')}\r{pid('Jansen&&Jansen^Noëlle')}\r"
    good = f"{msh('C2')}\r{pid()}\r"

    records = read(tmp_path, bad.encode("latin-1") + good.encode())

    assert records[0].error is not None and records[0].error.field == "MSH-18"
    assert records[0].record_id == "C1"
    assert records[1].error is None


def test_windows_1252_bytes_declared_8859_1_are_read_as_windows_1252(tmp_path: Path) -> None:
    data = f"{msh('C1', charset='8859/1')}\rNTE|1||€ 12 ‘ja’\r".encode("cp1252")

    [record] = read(tmp_path, data)

    assert record.payload.first("NTE").get(3) == "€ 12 ‘ja’"
    assert "windows-1252" in record.meta["charset_note"]


def test_an_empty_file_yields_no_records(tmp_path: Path) -> None:
    assert read(tmp_path, b"") == []
    assert read(tmp_path, b"\r\n\r\n") == []


def test_bytes_in_memory_read_like_a_file() -> None:
    records = list(iter_hl7v2(f"{msh('C1')}\r{pid()}\r".encode(), "mllp:listener"))

    assert [(r.file, r.record_id) for r in records] == [("mllp:listener", "C1")]


def test_errors_and_logs_name_places_never_values(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = "MSH|^~\\&|HIS|LINDE|BCONV|BC|20241105|||C2|P|2.5"
    data = f"{broken}\r{pid('Geheim&&Geheim^Naam')}\rjunk Geheim\r".encode()

    with caplog.at_level(logging.DEBUG, logger="converters.readers.hl7v2"):
        [record] = read(tmp_path, data)

    assert record.error is not None
    texts = [record.error.describe(), caplog.text]
    assert caplog.text
    assert not any(v in t for t in texts for v in ("Geheim", "999990317", "19920314"))
