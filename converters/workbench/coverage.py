"""Coverage of a batch: source fields that carried data no rule read, and codes no table knew.

Per record, the populated places are enumerated (HL7v2 segment-field[.component], XML element
paths with a value, CSV columns) and the places the engine read (``Conversion.read``, recorded in
trace mode) are subtracted. What is left is counted by place, with one example record
(``file#record id``). Only places and codes are kept, never a field's value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from converters.errors import SourceError
from converters.mapping.engine import Conversion, Engine
from converters.mapping.sources import element_path, normalise_header
from converters.mapping.tables import MappingSet
from converters.readers.registry import discover, reader_for
from converters.records import SourceRecord

_HL7_READ = re.compile(
    r"^(?P<seg>[A-Z][A-Z0-9]{2})(?:\[(?P<occ>\d+)\])?-(?P<field>\d+)(?:\((?P<rep>\d+)\))?"
    r"(?:\.(?P<comp>\d+))?(?:\.\d+)?$"
)
_COLUMN_READ = re.compile(r"column '(?P<name>.*)'$")
_HEADER_SEGMENTS = ("MSH", "FHS", "BHS")  # field 1 and 2 are the delimiters (HL7 v2.5 2.14.9)
# The pipeline itself uses these: message type (routing), control id (record id), version and
# charset (the reader); sending application and message time (the assembler's Provenance).
_READ_BY_READER = frozenset({("MSH", 3), ("MSH", 7), ("MSH", 9), ("MSH", 10), ("MSH", 12),
                             ("MSH", 18)})


@dataclass(slots=True)
class Tally:
    """How often a place (or code) was left unread, and one record where it was."""

    count: int = 0
    records: int = 0
    example: str = ""


@dataclass(slots=True)
class CoverageReport:
    records: int = 0
    converted: int = 0
    failed: int = 0
    fields: dict[tuple[str, str], Tally] = field(default_factory=dict)   # (format, place)
    codes: dict[tuple[str, str, str], Tally] = field(default_factory=dict)  # table, system, code

    def ranked_fields(self) -> list[tuple[str, str, Tally]]:
        """Return (format, place, tally), most frequent first."""
        items = sorted(self.fields.items(), key=lambda kv: (-kv[1].count, kv[0]))
        return [(fmt, place, tally) for (fmt, place), tally in items]

    def ranked_codes(self) -> list[tuple[str, str, str, Tally]]:
        """Return (table, system, code, tally), most frequent first."""
        items = sorted(self.codes.items(), key=lambda kv: (-kv[1].count, kv[0]))
        return [(*key, tally) for key, tally in items]


def measure(inputs: Iterable[Path], mappings: MappingSet) -> CoverageReport:
    """Convert every record of ``inputs`` with tracing on and tally what stayed unread."""
    engine = Engine(mappings, trace=True)
    report = CoverageReport()
    for path in discover(inputs):
        for record in reader_for(path)(path):
            report.records += 1
            try:
                conversion = engine.convert(record)
            except SourceError:
                report.failed += 1
                continue
            report.converted += 1
            add(report, record, conversion)
    return report


def add(report: CoverageReport, record: SourceRecord, conversion: Conversion) -> None:
    """Add one converted record's unread places and unknown codes to ``report``."""
    example = f"{record.file}#{record.record_id}"
    unread: dict[str, int] = {}
    for place in unread_places(record, conversion.read):
        unread[place] = unread.get(place, 0) + 1
    fmt = {"xlsx": "csv"}.get(record.format, record.format)
    for place, count in unread.items():
        _count(report.fields.setdefault((fmt, place), Tally()), count, example)
    seen: dict[tuple[str, str, str], int] = {}
    for item in conversion.unmapped:
        key = (item.table, item.system, item.code)
        seen[key] = seen.get(key, 0) + 1
    for key, count in seen.items():
        _count(report.codes.setdefault(key, Tally()), count, example)


def unread_places(record: SourceRecord, read: set[str]) -> Iterator[str]:
    """Yield the place of every populated value of ``record`` that ``read`` does not cover."""
    if record.format == "hl7v2":
        yield from _hl7_unread(record.payload, read)
    elif record.format == "xml":
        yield from _xml_unread(record.payload, read)
    else:
        yield from _row_unread(record.payload, read)


def _count(tally: Tally, count: int, example: str) -> None:
    tally.count += count
    tally.records += 1
    tally.example = tally.example or example


# -- HL7v2 -------------------------------------------------------------------------------------


def _hl7_unread(message: Any, read: set[str]) -> Iterator[str]:
    covered = _hl7_covered(read)
    occurrences: dict[str, int] = {}
    for segment in message.segments:
        name = segment.name
        occurrences[name] = occurrence = occurrences.get(name, 0) + 1
        first = 3 if name in _HEADER_SEGMENTS else 1
        for number in range(first, segment.field_count() + 1):
            if (name, number) in _READ_BY_READER:
                continue
            for rep in range(segment.repetitions(number)):
                if (name, occurrence, number, rep, None) in covered:
                    continue
                count = segment.component_count(number, rep)
                for comp in range(1, count + 1):
                    if not segment.has(number, comp, rep):
                        continue
                    if (name, occurrence, number, rep, comp) in covered:
                        continue
                    yield f"{name}-{number}" if count == 1 else f"{name}-{number}.{comp}"


def _hl7_covered(read: set[str]) -> set[tuple[str, int, int, int, int | None]]:
    covered: set[tuple[str, int, int, int, int | None]] = set()
    for location in read:
        found = _HL7_READ.match(location)
        if not found:
            continue
        comp = int(found["comp"]) if found["comp"] else None
        key = (found["seg"], int(found["occ"] or 1), int(found["field"]),
               int(found["rep"] or 1) - 1)
        covered.add((*key, comp))
    return covered


# -- XML ---------------------------------------------------------------------------------------


def _xml_unread(payload: Any, read: set[str]) -> Iterator[str]:
    """Yield element paths (text) and attribute paths (``/@code``) no rule read; reading an
    element covers its text and attributes (``XmlNode.text`` takes value, code or the text)."""
    root = payload.getroot() if hasattr(payload, "getroot") else payload
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue  # comments and processing instructions carry no data
        path = element_path(element)
        if path in read:
            continue
        generic = _generic_path(element)
        if (element.text or "").strip() and f"{path}/text()" not in read:
            yield generic
        for name, value in element.attrib.items():
            local = etree.QName(name).localname
            if value.strip() and f"{path}/@{local}" not in read:
                yield f"{generic}/@{local}"


def _generic_path(element: Any) -> str:
    """Return the element's path by local names, without positions: /ClinicalDocument/code."""
    names = []
    while element is not None:
        tag = element.tag
        names.append(etree.QName(tag).localname if isinstance(tag, str) else "node()")
        element = element.getparent()
    return "/" + "/".join(reversed(names))


# -- rows --------------------------------------------------------------------------------------


def _row_unread(row: dict[str, str], read: set[str]) -> Iterator[str]:
    columns = set()
    for location in read:
        found = _COLUMN_READ.search(location)
        if found:
            columns.add(found["name"])
    for header, value in row.items():
        if value is not None and str(value).strip() and normalise_header(header) not in columns:
            yield normalise_header(header)


# -- terminal ----------------------------------------------------------------------------------


def render_table(report: CoverageReport, limit: int = 40) -> str:
    """Render the report as two plain-text tables (fields, codes)."""
    lines = [f"{report.records} records, {report.converted} converted, "
             f"{report.failed} not converted (see quarantine when run for real)", ""]
    ranked = report.ranked_fields()
    lines.append(f"Source places that carried data no rule read ({len(ranked)}):")
    width = max((len(place) for _, place, _ in ranked[:limit]), default=5)
    lines.append(f"  {'format':<7} {'place':<{width}} {'times':>6} {'records':>7}  example")
    for fmt, place, tally in ranked[:limit]:
        lines.append(f"  {fmt:<7} {place:<{width}} {tally.count:>6} {tally.records:>7}  "
                     f"{tally.example}")
    codes = report.ranked_codes()
    lines.append("")
    lines.append(f"Codes no table knew ({len(codes)}):")
    for table, system, code, tally in codes[:limit]:
        lines.append(f"  {table:<22} {system or '-':<40} {code:<14} {tally.count:>6}  "
                     f"{tally.example}")
    return "\n".join(lines) + "\n"
