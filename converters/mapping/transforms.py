"""Named value conversions a rule can ask for with ``transform:``.

Each takes the source text (and the source node, for the few that read sub-components) and
returns the FHIR value, or raises :class:`Reject` when the value must not be written. A Reject
names an issue code that the run report counts; it never carries the value itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


class Reject(Exception):  # noqa: N818 - a signal, not an error
    """The value must not be written; ``issue`` says why (counted in the run report)."""

    def __init__(self, issue: str, detail: str = "") -> None:
        self.issue = issue
        self.detail = detail
        super().__init__(f"{issue}: {detail}" if detail else issue)


_HL7_TS = re.compile(
    r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,4}))?([+-]\d{4})?$"
)
_ISO = re.compile(r"^\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$")
_DUTCH_DATE = re.compile(
    r"^(\d{1,2})[-/](\d{1,2})[-/](\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$"
)


def is_valid_bsn(text: str) -> bool:
    """Check the Dutch BSN 11-test: sum(d_i * (9..2)) - d_9 is divisible by 11."""
    if not (text.isdigit() and len(text) in (8, 9)):
        return False
    digits = [int(c) for c in text.zfill(9)]
    total = sum(d * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True)) - digits[8]
    return total % 11 == 0 and total != 0


@lru_cache(maxsize=4096)
def _offset(local: datetime) -> str:
    return _format_offset(local.replace(tzinfo=AMSTERDAM).utcoffset() or timedelta(0))


def _format_offset(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def to_date(text: str) -> str:
    """Return a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD) from HL7 TS/DT, ISO or d-m-Y text."""
    found = _HL7_TS.match(text)
    if found:
        year, month, day = found.group(1), found.group(2), found.group(3)
        _check_date(year, month, day)
        return "-".join(p for p in (year, month, day) if p)
    if _ISO.match(text):
        return text[:10]
    dutch = _DUTCH_DATE.match(text)
    if dutch:
        day, month, year = dutch.group(1).zfill(2), dutch.group(2).zfill(2), dutch.group(3)
        _check_date(year, month, day)
        return f"{year}-{month}-{day}"
    raise Reject("bad-date", "not a date")


def _check_date(year: str, month: str | None, day: str | None) -> None:
    try:
        date(int(year), int(month or 1), int(day or 1))
    except ValueError:
        raise Reject("bad-date", "not a calendar date") from None


def to_datetime(text: str) -> str:
    """Return a FHIR dateTime; a local time without offset gets the Europe/Amsterdam one."""
    found = _HL7_TS.match(text)
    if found:
        return _hl7_datetime(found)
    if _ISO.match(text):
        if "T" in text and not re.search(r"(Z|[+-]\d{2}:\d{2})$", text):
            local = datetime.fromisoformat(text)
            return f"{local.isoformat(timespec='seconds')}{_offset(local)}"
        return text
    dutch = _DUTCH_DATE.match(text)
    if dutch:
        day, month, year, hour, minute, second = dutch.groups()
        if hour is None:
            return to_date(text)
        local = _local(year, month, day, hour, minute, second)
        return f"{local.isoformat(timespec='seconds')}{_offset(local)}"
    raise Reject("bad-datetime", "not a date and time")


def _hl7_datetime(found: re.Match[str]) -> str:
    year, month, day, hour, minute, second, _fraction, offset = found.groups()
    if hour is None:
        return to_date(found.group(0))
    local = _local(year, month, day, hour, minute, second)
    if offset:
        zone = f"{offset[:3]}:{offset[3:]}"
    else:
        zone = _offset(local)
    return f"{local.isoformat(timespec='seconds')}{zone}"


def _local(*parts: str | None) -> datetime:
    year, month, day, hour, minute, second = (int(p or 0) for p in parts)
    try:
        return datetime(year, month or 1, day or 1, hour, minute, second)
    except ValueError:
        raise Reject("bad-datetime", "not a calendar time") from None


def to_instant(text: str) -> str:
    """Return a FHIR instant (seconds and offset always present)."""
    value = to_datetime(text)
    if "T" not in value:
        raise Reject("bad-instant", "no time of day")
    return value


def to_decimal(text: str) -> float | int:
    """Return a JSON number from '7.5', '7,5' or '+7.50'; a thousands separator is refused."""
    cleaned = text.strip().replace(" ", "")
    if cleaned.count(",") == 1 and "." not in cleaned:
        cleaned = cleaned.replace(",", ".")
    try:
        number = Decimal(cleaned)
    except InvalidOperation:
        raise Reject("bad-number", "not a number") from None
    if not number.is_finite():
        raise Reject("bad-number", "not a finite number")
    return int(number) if number == number.to_integral_value() and "." not in cleaned else float(
        number
    )


def to_integer(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise Reject("bad-integer", "not a whole number") from None


_TRUE = {"y", "yes", "true", "t", "1", "j", "ja", "waar"}
_FALSE = {"n", "no", "false", "f", "0", "nee", "onwaar"}


def to_boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise Reject("bad-boolean", "not a yes/no value")


def check_bsn(text: str) -> str:
    """Pass a BSN that passes the 11-test; refuse any other (it is then not emitted as a BSN)."""
    value = text.strip()
    if not is_valid_bsn(value):
        raise Reject("invalid-bsn", "fails the 11-test")
    return value.zfill(9)


def uri_oid(text: str) -> str:
    return text if text.startswith(("urn:", "http")) else f"urn:oid:{text}"


def authority_uri(text: str) -> str:
    """A system URI for an identifier whose assigning authority no table knows (a hospital's MRN).

    Kept per authority so that two hospitals' record numbers never collide.
    """
    safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in text.strip())
    return f"urn:babyconnect:identifier-authority:{safe or 'unknown'}"


_RANGE = re.compile(r"^\s*([<>]?=?)?\s*(-?\d+(?:[.,]\d+)?)?\s*(?:-\s*(-?\d+(?:[.,]\d+)?))?\s*$")


def _range(text: str) -> tuple[str | None, str | None]:
    found = _RANGE.match(text)
    if not found:
        raise Reject("bad-range", "not a reference range")
    comparator, first, second = found.groups()
    if comparator and comparator.startswith("<"):
        return None, first
    if comparator and comparator.startswith(">"):
        return first, None
    return first, second


def range_low(text: str) -> float | int | None:
    """The low end of an HL7 reference range ('7.5-10.0', '>5')."""
    low, _ = _range(text)
    return to_decimal(low) if low else None


def range_high(text: str) -> float | int | None:
    _, high = _range(text)
    return to_decimal(high) if high else None


def utc_now() -> datetime:
    return datetime.now(UTC)


# -- table exports (kraamzorg CSV/xlsx) ------------------------------------------------------

BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"


def _json_number(number: Decimal) -> float | int:
    if number == number.to_integral_value() and number.as_tuple().exponent >= 0:
        return int(number)
    return float(number)


def _table_decimal(text: str, decimal: str) -> float | int | None:
    from converters.readers.tabular import parse_decimal  # the reader owns the table conventions

    try:
        number = parse_decimal(text, decimal)
    except ValueError as exc:
        # parse_decimal's messages never quote the value: "wrong decimal separator" or
        # "not a decimal number".
        issue = "wrong-decimal-separator" if "separator" in str(exc) else "bad-number"
        raise Reject(issue, str(exc)) from None
    return None if number is None else _json_number(number)


def decimal_comma(text: str) -> float | int | None:
    """Return a JSON number from a decimal-comma layout ('6,5'); '37.2' is refused, not guessed."""
    return _table_decimal(text, ",")


def decimal_point(text: str) -> float | int | None:
    """Return a JSON number from a decimal-point layout ('37.1'); '37,4' is refused."""
    return _table_decimal(text, ".")


def bsn_reference(text: str) -> str:
    """Return a conditional reference to the Patient with this BSN.

    (FHIR STU3 http.html 2.21.0.17.2, conditional references in transactions.)

    The server resolves ``Patient?identifier=...`` when it processes the transaction, so a row that
    carries only a BSN points at the woman's or child's existing record without rewriting it.
    """
    return f"Patient?identifier={BSN_SYSTEM}|{check_bsn(text)}"


# ADA test instances (Nictiz's ART-DECOR tooling) write dates relative to the day a test runs:
# "T-139D", "T+99D", with a time as "T-225D{12:13}" (ADA's relative-date form). They resolve
# against the same fixed day the reference FHIR placeholders ${DATE, T, D, -139} resolve to.
_ADA_RELATIVE = re.compile(
    r"^T(?P<offset>[+-]\d+)(?P<unit>[DMY])(?:\{(?P<hh>\d{2}):(?P<mm>\d{2})(?::(?P<ss>\d{2}))?\})?$"
)


def ada_datetime(text: str) -> str:
    """Return a FHIR date or dateTime from an ADA value (ISO, or relative such as T-139D)."""
    found = _ADA_RELATIVE.match(text.strip())
    if not found:
        return to_datetime(text.strip())
    from converters.validation.placeholders import REFERENCE_DATE, _shift

    day = _shift(REFERENCE_DATE, found.group("unit"), int(found.group("offset")))
    if found.group("hh") is None:
        return day.isoformat()
    return to_datetime(f"{day.isoformat()}T{found.group('hh')}:{found.group('mm')}:"
                       f"{found.group('ss') or '00'}")


def ada_date(text: str) -> str:
    """Return a FHIR date from an ADA value (ISO, or relative such as T-139D)."""
    return ada_datetime(text)[:10]


TextTransform = Callable[[str], Any]

TEXT_TRANSFORMS: dict[str, TextTransform] = {
    "text": str.strip,
    "date": to_date,
    "datetime": to_datetime,
    "instant": to_instant,
    "decimal": to_decimal,
    "integer": to_integer,
    "boolean": to_boolean,
    "boolean-nl": to_boolean,
    "bsn": check_bsn,
    "uri-oid": uri_oid,
    "authority-uri": authority_uri,
    "range-low": range_low,
    "range-high": range_high,
    "upper": str.upper,
    "lower": str.lower,
    "ucum": str.strip,
    "time-ms": str.strip,
    "decimal-comma": decimal_comma,
    "decimal-point": decimal_point,
    "bsn-reference": bsn_reference,
    "ada-date": ada_date,
    "ada-datetime": ada_datetime,
    "ada-ucum-system": lambda text: "http://unitsofmeasure.org" if text.strip() else "",
}
