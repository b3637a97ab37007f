"""Parsing helpers for table values: decimals, dates, FHIR date-times, yes/no."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from converters.readers.tabular import parse_bool, parse_date, parse_decimal, to_fhir_datetime

# --- parse_decimal --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("37,2", Decimal("37.2")),
        ("37,20", Decimal("37.20")),
        ("1.234,5", Decimal("1234.5")),
        ("3.250", Decimal("3250")),
        ("12.345.678,9", Decimal("12345678.9")),
        ("118", Decimal("118")),
        ("-0,5", Decimal("-0.5")),
        (",5", Decimal("0.5")),
        (" 6,5 ", Decimal("6.5")),
    ],
)
def test_decimal_comma_values_are_parsed(text: str, expected: Decimal) -> None:
    assert parse_decimal(text) == expected


def test_decimal_comma_keeps_trailing_zeros_as_precision() -> None:
    assert str(parse_decimal("37,20")) == "37.20"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("37.2", Decimal("37.2")), ("1,234.5", Decimal("1234.5")), ("3,250", Decimal("3250"))],
)
def test_decimal_point_values_are_parsed_when_the_layout_says_so(
    text: str, expected: Decimal
) -> None:
    assert parse_decimal(text, decimal=".") == expected


@pytest.mark.parametrize(
    ("text", "decimal"), [("37.2", ","), ("1,234.5", ","), ("37,2", "."), ("1.234,5", ".")]
)
def test_value_written_with_the_other_decimal_separator_is_refused(text: str, decimal: str) -> None:
    with pytest.raises(ValueError, match="^wrong decimal separator$"):
        parse_decimal(text, decimal=decimal)


@pytest.mark.parametrize("text", ["hoog", "37,2,1", "1.23,4", "1e3", "3 250", "-", "37,2 C"])
def test_text_that_is_no_number_is_refused_without_quoting_it(text: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_decimal(text)
    assert text not in str(raised.value)


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_decimal_is_none(text: str) -> None:
    assert parse_decimal(text) is None


def test_decimal_separator_other_than_comma_or_point_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_decimal("1", decimal=";")


# --- parse_date -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("28-03-2024", date(2024, 3, 28)),
        ("28-03-2024 09:30", datetime(2024, 3, 28, 9, 30)),
        ("28/03/2024", date(2024, 3, 28)),
        ("28-03-2024 09:30:15", datetime(2024, 3, 28, 9, 30, 15)),
        ("2024-03-28", date(2024, 3, 28)),
        ("2024-03-28T09:30:00", datetime(2024, 3, 28, 9, 30)),
    ],
)
def test_default_formats_parse_dutch_and_iso_dates(text: str, expected: date) -> None:
    parsed = parse_date(text)

    assert parsed == expected
    assert type(parsed) is type(expected)


def test_layout_formats_replace_the_defaults() -> None:
    assert parse_date("15/07/2024 14:00", ("%d/%m/%Y %H:%M",)) == datetime(2024, 7, 15, 14, 0)
    with pytest.raises(ValueError):
        parse_date("2024-07-15", ("%d/%m/%Y %H:%M",))


@pytest.mark.parametrize("text", ["31-02-2024 10:00", "32/07/2024", "gisteren", "2024-13-01"])
def test_impossible_or_unknown_date_is_refused_without_quoting_it(text: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_date(text)
    assert text not in str(raised.value)


def test_empty_date_is_none() -> None:
    assert parse_date("  ") is None


# --- to_fhir_datetime -----------------------------------------------------------------------


def test_local_winter_time_gets_the_amsterdam_winter_offset() -> None:
    assert to_fhir_datetime(datetime(2024, 3, 30, 9, 45)) == "2024-03-30T09:45:00+01:00"


def test_local_summer_time_gets_the_amsterdam_summer_offset() -> None:
    # Summer time started on 31 March 2024 at 02:00 local time.
    assert to_fhir_datetime(datetime(2024, 3, 31, 10, 15)) == "2024-03-31T10:15:00+02:00"


def test_a_date_stays_a_date() -> None:
    assert to_fhir_datetime(date(2024, 3, 28)) == "2024-03-28"


def test_an_aware_datetime_keeps_its_own_offset() -> None:
    value = datetime(2024, 7, 15, 14, 0, tzinfo=timezone(timedelta(hours=-3)))

    assert to_fhir_datetime(value) == "2024-07-15T14:00:00-03:00"


def test_another_zone_can_be_named() -> None:
    assert to_fhir_datetime(datetime(2024, 1, 5, 8, 0), tz="UTC") == "2024-01-05T08:00:00+00:00"


# --- parse_bool -----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["ja", "J", "yes", "Y", "1", "waar", "TRUE", " Ja "])
def test_yes_words_are_true(text: str) -> None:
    assert parse_bool(text) is True


@pytest.mark.parametrize("text", ["nee", "N", "no", "0", "Onwaar", "false"])
def test_no_words_are_false(text: str) -> None:
    assert parse_bool(text) is False


def test_empty_yes_no_is_none() -> None:
    assert parse_bool("") is None


def test_unknown_yes_no_word_is_refused_without_quoting_it() -> None:
    with pytest.raises(ValueError) as raised:
        parse_bool("misschien")
    assert "misschien" not in str(raised.value)
