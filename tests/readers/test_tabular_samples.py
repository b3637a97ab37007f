"""The synthetic kraamzorg samples read as samples/kraamzorg/README.md says they do."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from converters.readers.tabular import (
    detect_table,
    parse_date,
    parse_decimal,
    read_table,
    to_fhir_datetime,
)
from converters.records import SourceRecord

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "kraamzorg"
VENDOR_A = SAMPLES / "vendor_a_visits.csv"
VENDOR_B_CSV = SAMPLES / "vendor_b_measurements.csv"
VENDOR_B_XLSX = SAMPLES / "vendor_b_measurements.xlsx"
VENDOR_B_FORMATS = ("%d/%m/%Y %H:%M", "%Y-%m-%dT%H:%M:%S")
LOCHIA_CODES = {"normaal", "ruim", "weinig"}


def passes_11_test(bsn: str) -> bool:
    digits = [int(d) for d in bsn]
    weighted = sum(d * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True))
    return len(bsn) == 9 and (weighted - digits[8]) % 11 == 0


def by_row(records: list[SourceRecord]) -> dict[int, SourceRecord]:
    return {int(r.record_id.removeprefix("row ")): r for r in records}


@pytest.fixture(scope="module")
def vendor_a() -> dict[int, SourceRecord]:
    return by_row(list(read_table(VENDOR_A)))


def test_all_samples_are_detected_as_tables() -> None:
    assert all(detect_table(path) for path in (VENDOR_A, VENDOR_B_CSV, VENDOR_B_XLSX))


def test_vendor_a_rows_are_numbered_as_documented(vendor_a: dict[int, SourceRecord]) -> None:
    assert sorted(vendor_a) == [2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 14]
    assert vendor_a[2].meta["encoding"] == "cp1252"
    assert vendor_a[2].meta["separator"] == ";"


def test_vendor_a_only_row_12_is_malformed(vendor_a: dict[int, SourceRecord]) -> None:
    errors = {row for row, record in vendor_a.items() if record.error is not None}

    assert errors == {12}


def test_vendor_a_row_6_keeps_its_two_line_remark(vendor_a: dict[int, SourceRecord]) -> None:
    assert "\r\n" in vendor_a[6].payload["Opmerking"]


def test_vendor_a_bsns_pass_the_11_test_where_present(vendor_a: dict[int, SourceRecord]) -> None:
    bsns = [
        r.payload[column]
        for r in vendor_a.values()
        if r.payload
        for column in ("BSN moeder", "BSN kind")
        if r.payload[column]
    ]

    assert len(bsns) == 19
    assert all(passes_11_test(bsn) for bsn in bsns)


def test_vendor_a_bad_rows_fail_as_documented(vendor_a: dict[int, SourceRecord]) -> None:
    with pytest.raises(ValueError):
        parse_date(vendor_a[8].payload["Bezoekdatum"])
    assert vendor_a[9].payload["Lochia"] not in LOCHIA_CODES
    assert vendor_a[10].payload["BSN moeder"] == ""
    with pytest.raises(ValueError, match="wrong decimal separator"):
        parse_decimal(vendor_a[11].payload["Temp moeder"])


def test_vendor_a_visits_cross_into_summer_time(vendor_a: dict[int, SourceRecord]) -> None:
    def visit(row: int) -> str:
        value = parse_date(vendor_a[row].payload["Bezoekdatum"])
        assert value is not None
        return to_fhir_datetime(value)

    assert visit(4) == "2024-03-30T09:45:00+01:00"
    assert visit(5) == "2024-03-31T10:15:00+02:00"


def test_vendor_a_decimal_comma_values_parse(vendor_a: dict[int, SourceRecord]) -> None:
    assert str(parse_decimal(vendor_a[2].payload["Temp moeder"])) == "37.2"
    assert str(parse_decimal(vendor_a[2].payload["Uren geleverd"])) == "6.5"


def test_vendor_b_csv_and_xlsx_hold_the_same_rows() -> None:
    csv_rows = by_row(list(read_table(VENDOR_B_CSV)))
    xlsx_rows = by_row(list(read_table(VENDOR_B_XLSX)))

    assert sorted(csv_rows) == sorted(xlsx_rows) == list(range(2, 16))
    assert {r for r, rec in csv_rows.items() if rec.error} == {11}
    assert {r for r, rec in xlsx_rows.items() if rec.error} == {11}
    assert csv_rows[2].kind == xlsx_rows[2].kind
    for row, record in csv_rows.items():
        if record.payload is None:
            continue
        other = xlsx_rows[row].payload
        assert {k: v for k, v in record.payload.items() if k != "Meetmoment"} == {
            k: v for k, v in other.items() if k != "Meetmoment"
        }


def test_vendor_b_measurement_times_agree_between_csv_and_xlsx() -> None:
    csv_rows = by_row(list(read_table(VENDOR_B_CSV)))
    xlsx_rows = by_row(list(read_table(VENDOR_B_XLSX)))

    for row in (2, 6, 15):
        times = {
            parse_date(rows[row].payload["Meetmoment"], VENDOR_B_FORMATS)
            for rows in (csv_rows, xlsx_rows)
        }
        assert len(times) == 1


def test_vendor_b_bad_values_fail_as_documented() -> None:
    rows = by_row(list(read_table(VENDOR_B_CSV)))

    assert rows[2].meta["encoding"] == "utf-8-sig"
    assert rows[2].payload["Medewerker"] == "Zoë Visser"
    with pytest.raises(ValueError, match="wrong decimal separator"):
        parse_decimal(rows[10].payload["Waarde"], decimal=".")
    assert rows[12].payload["Rol"] not in {"moeder", "kind"}
    with pytest.raises(ValueError, match="not a decimal number"):
        parse_decimal(rows[13].payload["Waarde"], decimal=".")
    with pytest.raises(ValueError):
        parse_date(rows[14].payload["Meetmoment"], VENDOR_B_FORMATS)


def test_reading_the_samples_logs_no_identifying_value(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        records = [r for path in (VENDOR_A, VENDOR_B_CSV, VENDOR_B_XLSX) for r in read_table(path)]
    messages = caplog.text + "".join(str(r.error) for r in records if r.error)

    values = {v for r in records if r.payload for v in r.payload.values() if len(v) > 3}
    assert values
    assert not [value for value in values if value in messages]
