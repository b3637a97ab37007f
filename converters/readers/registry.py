"""Choose the reader for an export file, by its first bytes rather than its name alone."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from converters.errors import UnsupportedInputError
from converters.records import SourceRecord

Reader = Callable[[Path], Iterator[SourceRecord]]

_HL7_STARTS = (b"MSH", b"FHS", b"BHS", b"\x0bMSH", b"\x0bFHS", b"\x0bBHS")
_TABLE_SUFFIXES = {".csv", ".tsv", ".xlsx", ".txt"}
SKIPPED_NAMES = {"README.md", ".DS_Store"}


def detect_format(path: Path) -> str | None:
    """Return 'hl7v2', 'xml', 'csv' or None for a file no reader takes."""
    with path.open("rb") as handle:
        head = handle.read(512)
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(_HL7_STARTS):
        return "hl7v2"
    if stripped.startswith(b"<"):
        return "xml"
    if path.suffix.lower() in _TABLE_SUFFIXES or path.suffix.lower() == ".xlsx":
        return "csv"
    return None


def reader_for(path: Path) -> Reader:
    """Return the reader function for ``path``; raise UnsupportedInputError naming the file."""
    kind = detect_format(path)
    if kind == "hl7v2":
        from converters.readers.hl7v2 import read_hl7v2

        return read_hl7v2
    if kind == "xml":
        from converters.readers.xml import read_xml

        return read_xml
    if kind == "csv":
        from converters.readers.tabular import read_table

        return read_table
    raise UnsupportedInputError("no reader recognises this file", file=str(path))


def discover(inputs: Iterable[Path], pattern: str = "*") -> list[Path]:
    """Expand folders into their export files (sorted, hidden files and READMEs left out)."""
    found: list[Path] = []
    for item in inputs:
        if item.is_dir():
            for path in sorted(item.rglob(pattern)):
                if path.is_file() and not _ignored(path):
                    found.append(path)
        else:
            found.append(item)
    return found


def _ignored(path: Path) -> bool:
    return (
        path.name in SKIPPED_NAMES
        or any(part.startswith(".") for part in path.parts[-3:])
        or path.suffix.lower() in {".md", ".py", ".json", ".ndjson", ".yaml", ".yml"}
    )
