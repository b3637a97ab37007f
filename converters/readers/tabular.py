"""Read kraamzorg CSV and Excel exports into source records, one record per data row.

Maternity home care (kraamzorg) systems export tables with no national layout: each vendor names
its columns differently. This reader only turns a file into rows of text keyed by header; the
mapping engine matches the headers to a column table and uses the parsing helpers at the bottom
of this module to type the values.

CSV is read with the standard library's ``csv`` module over a decoded text stream, row by row, so
memory stays flat however large the file is. (pandas' chunked ``read_csv`` was the first plan; it
fills a short row with empty strings under ``keep_default_na=False`` and either aborts the chunk or
only warns on a long one, so a row with the wrong number of fields could not become an error record
at its own line number.) Excel workbooks are streamed with openpyxl's read-only mode.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import hashlib
import io
import itertools
import logging
import re
import unicodedata
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from openpyxl import load_workbook
from openpyxl.utils.exceptions import InvalidFileException

from converters.errors import SourceError, UnsupportedInputError
from converters.records import SourceRecord

log = logging.getLogger(__name__)

#: Separators tried when none is given. "|" is left out on purpose: it would take HL7v2 for a table.
SEPARATORS = (";", ",", "\t")

DEFAULT_DATE_FORMATS = (
    "%d-%m-%Y",
    "%d-%m-%Y %H:%M",
    "%d/%m/%Y",
    "%d-%m-%Y %H:%M:%S",
    "%Y-%m-%d",
    "%Y-%m-%dT%H:%M:%S",
)

_ZIP_MAGIC = b"PK\x03\x04"
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .xls (BIFF in an OLE2 container)
_BLOCK_BYTES = 1 << 20
_SAMPLE_BYTES = 1 << 16

# Bytes the decoder could not map arrive as lone surrogates (errors="surrogateescape").
_UNDECODABLE = re.compile("[\udc80-\udcff]")


# One row as found: the line (or sheet row) it starts on, its cells as text, the source text it
# was parsed from, and what is wrong with it (None when nothing is). A plain tuple: a NamedTuple's
# constructor costs a quarter of the reading time on large files.
_RawRow = tuple[int, list[str], str, str | None]


@dataclass(frozen=True, slots=True)
class _Table:
    """What every record of one file shares."""

    file: str
    format: str
    headers: list[str]
    meta: dict[str, str]
    kind: str


# --------------------------------------------------------------------------------------------
# Public reading API


def read_table(
    path: Path,
    *,
    sheet: str | None = None,
    chunk_rows: int = 50_000,
    separator: str | None = None,
    encoding: str | None = None,
) -> Iterator[SourceRecord]:
    """Yield one source record per data row of a CSV file or an Excel (.xlsx) sheet.

    ``record_id`` is ``row n``: for CSV the physical line on which the row starts (the header is
    line 1, a quoted newline inside a field advances the count, as in a text editor), for xlsx
    the sheet row number. Blank lines are skipped but counted. A row with the wrong number of
    fields, undecodable bytes or broken quoting becomes a record with ``error`` set (code
    ``malformed``) and reading goes on. At most ``chunk_rows`` rows are held in memory at once.

    ``separator`` and ``encoding`` apply to CSV and are detected when None; ``sheet`` applies to
    xlsx (default: the first worksheet). The format is told by content, not by file name.
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")

    container = _container(path)
    if container == "xlsx":
        return _read_xlsx(path, sheet=sheet, chunk_rows=chunk_rows)
    return _read_csv(path, chunk_rows=chunk_rows, separator=separator, encoding=encoding)


def read_headers(
    path: Path,
    *,
    sheet: str | None = None,
    separator: str | None = None,
    encoding: str | None = None,
) -> list[str]:
    """Return the header names of a table export, reading only its start."""
    if _container(path) == "xlsx":
        with _open_workbook(path) as workbook:
            table, _ = _open_sheet(str(path), workbook, sheet)
            return table.headers

    encoding = encoding or detect_encoding(path, sample_bytes=_SAMPLE_BYTES)
    with _open_text(path, encoding) as text:
        table, _ = _open_csv(str(path), text, separator, encoding)
        return table.headers


def detect_table(path: Path) -> bool:
    """Tell whether a file looks like a CSV or xlsx table export (not HL7v2, XML or JSON)."""
    try:
        with path.open("rb") as stream:
            head = stream.read(_SAMPLE_BYTES)
    except OSError:
        return False

    if head.startswith(_ZIP_MAGIC):
        return _is_xlsx_package(path)
    if not head.strip() or b"\x00" in head:
        return False

    lines = _decode_sample(head).lstrip("\ufeff \t\r\n").splitlines()
    first_line = lines[0] if lines else ""
    if first_line.startswith(("<", "{", "[", "MSH", "FHS", "BHS")):
        return False
    return len(_split_line(first_line, _sniff_separator(first_line))) >= 2


def header_signature(headers: Iterable[str]) -> str:
    """Return a short stable hash of the normalised header names, the record ``kind``.

    Names are compared in Unicode NFC, case-folded, with runs of white space collapsed, and
    sorted: an export whose vendor reorders or re-cases its columns keeps its kind.
    """
    names = sorted(_normalise_header(name) for name in headers)
    digest = hashlib.sha256("\t".join(names).encode("utf-8")).hexdigest()
    return f"table-{digest[:12]}"


def detect_encoding(path: Path, *, sample_bytes: int | None = None) -> str:
    """Name the encoding of a CSV export: ``utf-8-sig``, ``utf-8`` or ``cp1252``.

    A byte order mark means UTF-8 with BOM; otherwise the file (or its first ``sample_bytes``) is
    checked to be valid UTF-8; anything else is taken as Windows-1252, what Dutch Excel writes.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    seen = 0
    with path.open("rb") as stream:
        if stream.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8:
            return "utf-8-sig"
        stream.seek(0)

        try:
            while block := stream.read(_BLOCK_BYTES):
                decoder.decode(block)
                seen += len(block)
                if sample_bytes is not None and seen >= sample_bytes:
                    return "utf-8"
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "cp1252"
    return "utf-8"


# --------------------------------------------------------------------------------------------
# Shared row -> record step


def _records(table: _Table, rows: Iterator[_RawRow], chunk_rows: int) -> Iterator[SourceRecord]:
    """Turn raw rows into source records, holding at most ``chunk_rows`` rows at a time."""
    position = 0
    malformed = 0
    for chunk in iter(lambda: list(itertools.islice(rows, chunk_rows)), []):
        for row in chunk:
            position += 1
            record = _record(table, position, row)
            malformed += record.error is not None
            yield record
    log.info("read %s: %d rows, %d malformed", table.file, position, malformed)


def _record(table: _Table, position: int, row: _RawRow) -> SourceRecord:
    """Build the record of one row; a row that does not fit the header becomes an error record."""
    line, cells, text, problem = row
    record_id = f"row {line}"
    record = SourceRecord(
        file=table.file,
        position=position,
        record_id=record_id,
        format=table.format,
        kind=table.kind,
        raw=text.encode("utf-8", "surrogateescape"),
        meta=dict(table.meta),
    )

    if problem is None and len(cells) != len(table.headers):
        problem = f"expected {len(table.headers)} fields, found {len(cells)}"
    if problem is None:
        record.payload = dict(zip(table.headers, cells, strict=True))
    else:
        record.error = SourceError(
            problem, file=table.file, record_id=record_id, field=record_id, code="malformed"
        )
    return record


def _header_names(cells: Sequence[str]) -> list[str]:
    """Clean header cells: strip, name empty ones ``column n``, suffix duplicates ``.1``, ``.2``."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for index, cell in enumerate(cells, start=1):
        name = cell.replace("\ufeff", "").strip() or f"column {index}"
        key = _normalise_header(name)
        if key in seen:
            seen[key] += 1
            name = f"{name}.{seen[key]}"
        else:
            seen[key] = 0
        names.append(name)
    return names


def _normalise_header(name: str) -> str:
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


def _container(path: Path) -> str:
    """Tell xlsx from CSV by the first bytes; refuse the legacy binary .xls format."""
    with path.open("rb") as stream:
        head = stream.read(len(_OLE2_MAGIC))
    if head.startswith(_OLE2_MAGIC):
        raise UnsupportedInputError(
            "legacy binary .xls workbooks are not supported: save the export as .xlsx or CSV",
            file=str(path),
        )
    return "xlsx" if head.startswith(_ZIP_MAGIC) else "csv"


# --------------------------------------------------------------------------------------------
# CSV


def _read_csv(
    path: Path, *, chunk_rows: int, separator: str | None, encoding: str | None
) -> Iterator[SourceRecord]:
    encoding = encoding or detect_encoding(path)
    with _open_text(path, encoding) as text:
        table, rows = _open_csv(str(path), text, separator, encoding)
        yield from _records(table, rows, chunk_rows)


def _open_text(path: Path, encoding: str) -> TextIO:
    # newline="" is what the csv module asks for: quoted \r\n stays in the field. Undecodable
    # bytes become lone surrogates so that one bad byte spoils one row, not the whole file.
    return path.open("r", encoding=encoding, errors="surrogateescape", newline="")


def _open_csv(
    file: str, text: TextIO, separator: str | None, encoding: str
) -> tuple[_Table, Iterator[_RawRow]]:
    """Read the header of a CSV text stream; return the table and an iterator of its rows."""
    skipped, first_line = _skip_blank_lines(text)
    if first_line is None:
        raise SourceError("the file has no header row", file=file, code="malformed")
    separator = separator or _sniff_separator(first_line)

    taken: list[str] = []
    rows = csv.reader(_tap(itertools.chain([first_line], text), taken), delimiter=separator)
    try:
        header = next(rows)
    except csv.Error as exc:
        raise SourceError("the header row cannot be split", file=file, code="malformed") from exc
    if _UNDECODABLE.search("".join(taken)):
        raise SourceError(
            f"the header row holds bytes that are not {encoding}", file=file, code="malformed"
        )

    headers = _header_names(header)
    meta = {
        "headers": "\t".join(headers),
        "sheet": "",
        "encoding": encoding,
        "separator": separator,
    }
    lines_read = skipped + len(taken)
    taken.clear()
    table = _Table(file, "csv", headers, meta, header_signature(headers))
    return table, _csv_rows(rows, taken, lines_read)


def _csv_rows(rows: Iterator[list[str]], taken: list[str], lines_read: int) -> Iterator[_RawRow]:
    """Yield each parsed row with the line it starts on and the exact text it was parsed from."""
    while True:
        problem = None
        try:
            cells = next(rows)
        except StopIteration:
            return
        except csv.Error:
            # The csv module resets after an error (an over-long, runaway quoted field), so the
            # next line starts a fresh row.
            cells, problem = [], "the row cannot be split into fields"

        text = "".join(taken)
        line = lines_read + 1
        lines_read += len(taken)
        taken.clear()

        if problem is None and _is_blank(cells):
            continue
        if problem is None and _UNDECODABLE.search(text):
            problem = "the row holds bytes that are not valid in the file's encoding"
        yield line, cells, text.rstrip("\r\n"), problem


def _tap(lines: Iterable[str], taken: list[str]) -> Iterator[str]:
    """Pass lines to the csv reader while keeping them, to know each row's lines and text."""
    for line in lines:
        taken.append(line)
        yield line


def _skip_blank_lines(text: TextIO) -> tuple[int, str | None]:
    skipped = 0
    for line in text:
        if line.strip(" \t\r\n\ufeff"):
            return skipped, line
        skipped += 1
    return skipped, None


def _is_blank(cells: list[str]) -> bool:
    return not cells or (len(cells) == 1 and not cells[0].strip())


def _sniff_separator(line: str) -> str:
    """Pick the separator that splits the header line into the most fields (";" wins ties)."""
    return max(SEPARATORS, key=lambda candidate: len(_split_line(line, candidate)))


def _split_line(line: str, separator: str) -> list[str]:
    try:
        return next(csv.reader([line.rstrip("\r\n")], delimiter=separator), [])
    except csv.Error:
        return []


def _decode_sample(head: bytes) -> str:
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3:  # a character cut in two by the sample's end
            return head[: exc.start].decode("utf-8")
        return head.decode("cp1252", errors="replace")


# --------------------------------------------------------------------------------------------
# Excel (.xlsx)


def _read_xlsx(path: Path, *, sheet: str | None, chunk_rows: int) -> Iterator[SourceRecord]:
    with _open_workbook(path) as workbook:
        table, rows = _open_sheet(str(path), workbook, sheet)
        yield from _records(table, rows, chunk_rows)


@contextlib.contextmanager
def _open_workbook(path: Path) -> Iterator[Any]:
    """Open a workbook read-only (streaming) and close it again: openpyxl keeps the zip open."""
    # A stream, not the path: openpyxl refuses a path whose suffix is not an Excel one, and the
    # format is told by content here.
    with path.open("rb") as stream:
        try:
            workbook = load_workbook(stream, read_only=True, data_only=True)
        except (InvalidFileException, zipfile.BadZipFile, KeyError) as exc:
            raise UnsupportedInputError(
                "the file is a zip archive but not an Excel workbook", file=str(path)
            ) from exc
        try:
            yield workbook
        finally:
            workbook.close()


def _open_sheet(file: str, workbook: Any, sheet: str | None) -> tuple[_Table, Iterator[_RawRow]]:
    """Find the header row of a sheet; return the table and an iterator of its rows."""
    if sheet is None:
        worksheet = workbook.worksheets[0]
    elif sheet in workbook.sheetnames:
        worksheet = workbook[sheet]
    else:
        raise UnsupportedInputError(
            "the workbook has no sheet of that name", file=file, field=f"sheet {sheet}"
        )

    # Exporters often write a wrong or missing <dimension>; trusting it would cut columns off.
    worksheet.reset_dimensions()
    rows = enumerate(worksheet.iter_rows(), start=1)
    header = next(_sheet_texts(rows), None)
    if header is None:
        raise SourceError("the sheet has no header row", file=file, code="malformed")

    headers = _header_names(header[1])
    meta = {
        "headers": "\t".join(headers),
        "sheet": worksheet.title,
        "encoding": "",
        "separator": "",
        # Numeric cells are rendered with a decimal point whatever the layout's CSV convention.
        "decimal": ".",
    }
    log.debug("sheet header of %s found on row %d", file, header[0])
    table = _Table(file, "xlsx", headers, meta, header_signature(headers))
    return table, _sheet_rows(_sheet_texts(rows), len(headers))


def _sheet_texts(rows: Iterator[tuple[int, Any]]) -> Iterator[tuple[int, list[str]]]:
    """Yield (sheet row number, cell texts) for rows with at least one non-empty cell."""
    for number, cells in rows:
        texts = _trim_trailing_empty([_cell_text(cell) for cell in cells])
        if texts:
            yield number, texts


def _sheet_rows(rows: Iterator[tuple[int, list[str]]], width: int) -> Iterator[_RawRow]:
    """Yield sheet rows padded to the header width; values beyond it make the row malformed."""
    for number, texts in rows:
        problem = None
        if len(texts) > width:
            problem = f"expected {width} columns, found values in column {len(texts)}"
        texts.extend([""] * (width - len(texts)))
        yield number, texts, _csv_line(texts), problem


def _trim_trailing_empty(texts: list[str]) -> list[str]:
    while texts and not texts[-1]:
        texts.pop()
    return texts


def _cell_text(cell: Any) -> str:
    """Render a cell as the text a CSV export would carry; dates in ISO 8601, numbers with '.'."""
    value = cell.value
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        date_only = value.time() == time(0) and "h" not in str(cell.number_format).lower()
        return value.date().isoformat() if date_only else value.isoformat(timespec="seconds")
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else format(Decimal(repr(value)), "f")
    if isinstance(value, timedelta):
        return str(value)
    return str(value)


def _csv_line(texts: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(texts)
    return buffer.getvalue()


def _is_xlsx_package(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as package:
            return "xl/workbook.xml" in package.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


# --------------------------------------------------------------------------------------------
# Parsing helpers for the mapping engine. They raise ValueError with a message that never
# quotes the value, so the message can go to a log line or an error record as it is.

_NUMBER = {
    ",": re.compile(r"[+-]?(?:(?:\d{1,3}(?:\.\d{3})+|\d+)(?:,\d+)?|,\d+)"),
    ".": re.compile(r"[+-]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)"),
}
_TIME_DIRECTIVES = ("%H", "%I", "%M", "%S", "%f", "%p", "%z", "%X", "%c", "%T", "%R")
_TRUE = frozenset({"ja", "j", "yes", "y", "1", "waar", "true"})
_FALSE = frozenset({"nee", "n", "no", "0", "onwaar", "false"})


def parse_decimal(text: str, decimal: str = ",") -> Decimal | None:
    """Parse a number written with ``decimal`` as decimal separator; empty text gives None.

    The other separator is accepted only as a thousands separator in groups of three
    (``1.234,5`` and ``3.250`` with ``decimal=","``). A value that only makes sense with the
    other decimal separator (``37.2`` in a decimal-comma layout) raises
    ``ValueError("wrong decimal separator")``: the layout and the export disagree, and guessing
    could shift a measurement by a factor of ten or a thousand. Known limit: a dot-decimal value
    with exactly three decimals (``36.850``) reads as a thousands group; plausibility ranges in
    the column table catch it. Precision is kept (``37,20`` gives ``Decimal("37.20")``).
    """
    if decimal not in _NUMBER:
        raise ValueError("the decimal separator must be ',' or '.'")
    value = text.strip()
    if not value:
        return None

    other = "." if decimal == "," else ","
    if not _NUMBER[decimal].fullmatch(value):
        if other in value and _NUMBER[other].fullmatch(value):
            raise ValueError("wrong decimal separator")
        raise ValueError("not a decimal number")
    return Decimal(value.replace(other, "").replace(decimal, "."))


def parse_date(text: str, formats: Sequence[str] = DEFAULT_DATE_FORMATS) -> date | datetime | None:
    """Parse a date or date-time with the first format that fits; empty text gives None.

    A format without time directives gives a ``date``, one with them a naive ``datetime``
    (aware when the format has ``%z``).
    """
    value = text.strip()
    if not value:
        return None

    for pattern in formats:
        try:
            parsed = datetime.strptime(value, pattern)
        except ValueError:
            continue
        has_time = any(directive in pattern for directive in _TIME_DIRECTIVES)
        return parsed if has_time else parsed.date()
    raise ValueError("no accepted date format matches")


def to_fhir_datetime(value: date | datetime, tz: str = "Europe/Amsterdam") -> str:
    """Render a date as FHIR ``date`` or a date-time as FHIR ``dateTime`` with a UTC offset.

    FHIR STU3 dateTime requires a zone when a time is given (datatypes, section 2.24.0.4). A naive
    local time gets the offset ``tz`` had on that date (+01:00 in winter, +02:00 in summer for
    Amsterdam); an aware one keeps its own. In the hour skipped when summer time starts, the
    winter offset is used (``fold=0``).
    """
    if not isinstance(value, datetime):
        return value.isoformat()
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(tz))
    return value.isoformat()


def parse_bool(text: str) -> bool | None:
    """Parse ja/nee, j/n, yes/no, y/n, 1/0, waar/onwaar, true/false; empty text gives None."""
    value = text.strip().casefold()
    if not value:
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("not a recognised yes/no value")
