"""The unit that travels through the pipeline: one record read from one export file.

A reader yields :class:`SourceRecord` objects. A record that the reader could not parse still
travels, with ``error`` set, so that the pipeline quarantines it with the reason and the ledger
counts it: nothing read from a file is ever silently dropped.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from typing import Any

from converters.errors import SourceError


class Outcome(enum.StrEnum):
    """What finally happened to a source record. Every record ends in exactly one of these."""

    LOADED = "loaded"
    QUARANTINED = "quarantined"
    SKIPPED = "skipped"


@dataclass(slots=True)
class SourceRecord:
    """One record of an export: an HL7v2 message, an XML document, a CSV row.

    ``record_id`` is what a person uses to find the record again in the source (MSH-10, a
    document id, ``row 12``); it is never patient data. ``position`` is the 1-based ordinal of
    the record within its file; (file checksum, position) identifies the record in the ledger.
    """

    file: str
    position: int
    record_id: str
    format: str
    kind: str
    raw: bytes
    payload: Any = None
    error: SourceError | None = None
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """A stable, non-identifying key of the record within its file."""
        return f"{self.file}#{self.position}"

    @property
    def content_hash(self) -> str:
        """SHA-256 of the raw bytes: tells an unchanged re-sent record from a corrected one."""
        return hashlib.sha256(self.raw).hexdigest()
