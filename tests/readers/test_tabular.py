"""Reading CSV and xlsx exports into source records: separators, encodings, rows, errors."""

from __future__ import annotations

import logging
import zipfile
from datetime import date, datetime
from pathlib import Path

import pytest
from openpyxl import Workbook

from converters.errors import SourceError, UnsupportedInputError
from converters.readers.tabular import (
    detect_encoding,
    detect_table,
    header_signature,
    read_headers,
    read_table,
)


def write(tmp_path: Path, text: str, encoding: str = "utf-8", name: str = "export.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def write_xlsx(tmp_path: Path, rows: list[list[object]], name: str = "export.xlsx") -> Path:
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Bezoeken"
    for row in rows:
        sheet.append(row)
    path = tmp_path / name
    workbook.save(path)
    return path


# --- separators and encodings ---------------------------------------------------------------


def test_semicolon_separated_cp1252_file_is_sniffed_and_decoded(tmp_path: Path) -> None:
    path = write(tmp_path, "Naam;Uren geïndiceerd\r\nRenée;49\r\n", encoding="cp1252")

    [record] = read_table(path)

    assert record.payload == {"Naam": "Renée", "Uren geïndiceerd": "49"}
    assert record.meta["encoding"] == "cp1252"
    assert record.meta["separator"] == ";"


def test_comma_separated_utf8_with_bom_keeps_the_bom_out_of_the_first_header(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "\ufeffBSN,Medewerker\n999990019,Zoë\n")

    [record] = read_table(path)

    assert record.payload == {"BSN": "999990019", "Medewerker": "Zoë"}
    assert record.meta["encoding"] == "utf-8-sig"
    assert record.meta["separator"] == ","


def test_valid_utf8_without_bom_is_read_as_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, "Naam;Waarde\nNoëlle;1\n")

    assert detect_encoding(path) == "utf-8"
    assert next(read_table(path)).payload["Naam"] == "Noëlle"


def test_a_non_utf8_byte_far_into_the_file_still_makes_it_cp1252(tmp_path: Path) -> None:
    path = write(tmp_path, "a;b\n" + "1;2\n" * 400_000 + "é;3\n", encoding="cp1252")

    assert detect_encoding(path) == "cp1252"


def test_tab_separated_file_is_sniffed(tmp_path: Path) -> None:
    path = write(tmp_path, "a\tb\n1,5\t2;3\n")

    [record] = read_table(path)

    assert record.payload == {"a": "1,5", "b": "2;3"}


def test_explicit_separator_and_encoding_override_detection(tmp_path: Path) -> None:
    path = write(tmp_path, "a,b;c\n1,2;3\n", encoding="latin-1")

    [record] = read_table(path, separator=",", encoding="latin-1")

    assert record.payload == {"a": "1", "b;c": "2;3"}
    assert record.meta["encoding"] == "latin-1"


def test_undecodable_bytes_spoil_only_their_own_row(tmp_path: Path) -> None:
    # 0x81 has no character in Windows-1252.
    path = tmp_path / "export.csv"
    path.write_bytes(b"a;b\r\n1;\x81\r\n2;3\r\n")

    first, second = read_table(path, encoding="cp1252")

    assert first.error is not None and first.error.code == "malformed"
    assert second.payload == {"a": "2", "b": "3"}


# --- quoting, line numbers, blank lines -----------------------------------------------------


def test_quoted_field_keeps_its_separator_and_line_break(tmp_path: Path) -> None:
    path = write(tmp_path, 'a;b\r\n1;"overleg; bijvoeding\r\ngestart"\r\n')

    [record] = read_table(path)

    assert record.payload == {"a": "1", "b": "overleg; bijvoeding\r\ngestart"}


def test_row_after_a_multiline_row_is_numbered_by_its_physical_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'a;b\n1;"x\ny\nz"\n2;w\n')

    ids = [record.record_id for record in read_table(path)]

    assert ids == ["row 2", "row 5"]


def test_blank_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "\na;b\n1;2\n\n   \n3;4\n\n")

    records = list(read_table(path))

    assert [(r.position, r.record_id) for r in records] == [(1, "row 3"), (2, "row 6")]


def test_raw_is_the_source_text_of_the_row_in_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, 'a;b\r\n"Renée";"x\r\ny"\r\n', encoding="cp1252")

    [record] = read_table(path)

    assert record.raw == '"Renée";"x\r\ny"'.encode()


def test_values_are_passed_as_text_untouched(tmp_path: Path) -> None:
    path = write(tmp_path, "BSN;Temp;Leeg\n012345678; 37,2 ;\n")

    [record] = read_table(path)

    assert record.payload == {"BSN": "012345678", "Temp": " 37,2 ", "Leeg": ""}


# --- malformed rows -------------------------------------------------------------------------


@pytest.mark.parametrize("line", ["1;2;3", "1"], ids=["too many fields", "too few fields"])
def test_row_with_the_wrong_number_of_fields_is_an_error_record_and_reading_goes_on(
    tmp_path: Path, line: str
) -> None:
    path = write(tmp_path, f"a;b\n0;0\n{line}\n4;5\n")

    good, bad, after = read_table(path)

    assert bad.error is not None
    assert (bad.error.code, bad.error.field, bad.record_id) == ("malformed", "row 3", "row 3")
    assert bad.payload is None
    assert bad.position == 2
    assert (good.payload, after.payload) == ({"a": "0", "b": "0"}, {"a": "4", "b": "5"})


def test_error_message_names_the_row_but_never_its_values(tmp_path: Path) -> None:
    path = write(tmp_path, "BSN;Naam\n999990019;Renée;extra\n")

    [record] = read_table(path)

    assert record.error is not None
    message = str(record.error)
    assert "row 2" in message
    assert "999990019" not in message and "Renée" not in message


def test_runaway_quote_becomes_one_error_record_and_later_rows_are_read(tmp_path: Path) -> None:
    # The csv module stops a field at 128 KiB: an unclosed quote cannot swallow the whole file.
    runaway = '1;"' + "x" * 200_000
    path = write(tmp_path, f"a;b\n{runaway}\n5;6\n")

    records = list(read_table(path))

    assert records[0].error is not None
    assert records[-1].payload == {"a": "5", "b": "6"}
    assert records[-1].record_id == "row 3"


def test_reading_logs_counts_and_the_file_but_no_values(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, "BSN;Naam\n999990019;Renée\n999990020\n")

    with caplog.at_level(logging.DEBUG, logger="converters.readers.tabular"):
        list(read_table(path))

    assert "2 rows, 1 malformed" in caplog.text
    assert "999990019" not in caplog.text and "Renée" not in caplog.text


# --- headers, kind and meta -----------------------------------------------------------------


def test_kind_ignores_column_order_case_and_spacing() -> None:
    assert header_signature(["BSN moeder", "Temp"]) == header_signature(["temp", " BSN  Moeder"])


def test_kind_differs_for_different_headers() -> None:
    assert header_signature(["BSN moeder", "Temp"]) != header_signature(["BSN moeder", "Gewicht"])


def test_meta_carries_headers_sheet_encoding_and_separator(tmp_path: Path) -> None:
    path = write(tmp_path, "BSN moeder;Temp moeder\n1;2\n")

    [record] = read_table(path)

    assert record.meta == {
        "headers": "BSN moeder\tTemp moeder",
        "sheet": "",
        "encoding": "utf-8",
        "separator": ";",
    }
    assert record.kind == header_signature(["BSN moeder", "Temp moeder"])
    assert record.format == "csv"
    assert record.file == str(path)


def test_empty_and_duplicate_headers_get_unique_names(tmp_path: Path) -> None:
    path = write(tmp_path, " Temp ;;temp;Temp\n1;2;3;4\n")

    assert read_headers(path) == ["Temp", "column 2", "temp.1", "Temp.2"]
    assert next(read_table(path)).payload == {
        "Temp": "1",
        "column 2": "2",
        "temp.1": "3",
        "Temp.2": "4",
    }


def test_read_headers_reads_the_first_row_only(tmp_path: Path) -> None:
    path = write(tmp_path, "BSN moeder;Bezoekdatum\n1;2\n3;4;5\n")

    assert read_headers(path) == ["BSN moeder", "Bezoekdatum"]


def test_file_without_a_header_row_raises_a_source_error(tmp_path: Path) -> None:
    path = write(tmp_path, "\r\n\r\n")

    with pytest.raises(SourceError) as raised:
        list(read_table(path))
    assert raised.value.code == "malformed"


# --- chunking -------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 7])
def test_small_chunks_give_the_same_records_as_one_chunk(tmp_path: Path, chunk_rows: int) -> None:
    lines = ["a;b"] + [f'{n};"v\n{n}"' if n % 3 == 0 else f"{n};v" for n in range(1, 20)]
    lines.insert(8, "bad")
    lines.insert(12, "")
    path = write(tmp_path, "\n".join(lines) + "\n")

    def rows(records: list) -> list[tuple]:
        return [
            (r.position, r.record_id, r.raw, r.payload, r.error and r.error.code) for r in records
        ]

    assert rows(list(read_table(path, chunk_rows=chunk_rows))) == rows(list(read_table(path)))


def test_chunk_rows_below_one_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "a;b\n1;2\n")

    with pytest.raises(ValueError):
        read_table(path, chunk_rows=0)


# --- xlsx -----------------------------------------------------------------------------------


def test_xlsx_rows_carry_sheet_row_numbers_across_empty_rows(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path, [["BSN", "Lochia"], ["999990019", "normaal"], [], ["999990032", "ruim"]]
    )

    records = list(read_table(path))

    assert [(r.position, r.record_id) for r in records] == [(1, "row 2"), (2, "row 4")]
    assert records[1].payload == {"BSN": "999990032", "Lochia": "ruim"}
    assert records[0].format == "xlsx"


def test_xlsx_cells_are_rendered_as_text(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path,
        [
            ["Datum", "Tijdstip", "Temp", "Gewicht", "Borstvoeding", "Leeg"],
            [date(2024, 3, 28), datetime(2024, 3, 28, 9, 30), 37.2, 3480, True, None],
        ],
    )

    [record] = read_table(path)

    assert record.payload == {
        "Datum": "2024-03-28",
        "Tijdstip": "2024-03-28T09:30:00",
        "Temp": "37.2",
        "Gewicht": "3480",
        "Borstvoeding": "true",
        "Leeg": "",
    }
    assert record.meta["decimal"] == "."


def test_xlsx_raw_is_a_csv_rendering_of_the_cells(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path, [["a", "b"], ["x, y", 1]])

    assert next(read_table(path)).raw == b'"x, y",1'


def test_xlsx_value_beyond_the_last_header_column_is_an_error_record(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path, [["a", "b"], [1, 2, 3], [4, 5]])

    bad, good = read_table(path)

    assert bad.error is not None and bad.error.code == "malformed"
    assert bad.error.field == "row 2"
    assert good.payload == {"a": "4", "b": "5"}


def test_xlsx_short_row_is_padded_with_empty_values(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path, [["a", "b", "c"], [1]])

    assert next(read_table(path)).payload == {"a": "1", "b": "", "c": ""}


def test_xlsx_sheet_is_chosen_by_name(tmp_path: Path) -> None:
    workbook = Workbook()
    workbook.active.append(["other"])
    workbook.create_sheet("Metingen").append(["Meetcode"])
    workbook["Metingen"].append(["TEMP"])
    path = tmp_path / "two_sheets.xlsx"
    workbook.save(path)

    [record] = read_table(path, sheet="Metingen")

    assert record.payload == {"Meetcode": "TEMP"}
    assert record.meta["sheet"] == "Metingen"
    assert read_headers(path) == ["other"]


def test_xlsx_unknown_sheet_is_unsupported(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path, [["a"], [1]])

    with pytest.raises(UnsupportedInputError):
        list(read_table(path, sheet="Bestaat niet"))


def test_xlsx_chunked_reading_gives_the_same_records(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path, [["n", "v"]] + [[n, f"v{n}"] for n in range(10)] + [[1, 2, 3]])

    def rows(chunk_rows: int) -> list[tuple]:
        return [(r.record_id, r.payload, r.raw) for r in read_table(path, chunk_rows=chunk_rows)]

    assert rows(3) == rows(50_000)


def test_xlsx_is_recognised_by_content_not_by_name(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path, [["a"], [1]], name="export.csv")

    assert next(read_table(path)).format == "xlsx"


def test_legacy_xls_workbook_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "old.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512)

    with pytest.raises(UnsupportedInputError):
        read_table(path)


# --- detect_table ---------------------------------------------------------------------------


def test_csv_and_xlsx_are_detected_as_tables(tmp_path: Path) -> None:
    assert detect_table(write(tmp_path, "a;b\n1;2\n"))
    assert detect_table(write_xlsx(tmp_path, [["a"], [1]]))


@pytest.mark.parametrize(
    "text",
    [
        "MSH|^~\\&|KRAAM|ORG|||20240328||ADT^A04|1|P|2.5\r",
        '<?xml version="1.0"?><ClinicalDocument/>',
        '{"resourceType": "Bundle"}',
        "just one column\n",
        "\ufeff \r\n",
        "",
    ],
    ids=["hl7v2", "xml", "json", "single column", "bom only", "empty"],
)
def test_other_inputs_are_not_detected_as_tables(tmp_path: Path, text: str) -> None:
    assert not detect_table(write(tmp_path, text, name="input.txt"))


def test_zip_that_is_not_a_workbook_is_not_a_table(tmp_path: Path) -> None:
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "a;b")

    assert not detect_table(path)
    with pytest.raises(UnsupportedInputError):
        list(read_table(path))
