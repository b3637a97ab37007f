"""HL7v2 structure knowledge (segments, fields, datatypes) read from hl7apy's reference tables.

The project writes no field tables of its own: hl7apy ships the HL7 v2.1 to v2.8.2 definitions as
Python modules (``hl7apy.v2_5.segments`` and friends), reachable through
:func:`hl7apy.load_reference`. The mapping linter asks here whether ``PID-99`` is a real field, the
coverage report asks for the name of a field nobody mapped. Every lookup is cached: the tables do
not change while the process runs.

A version that hl7apy does not ship (``2.5.2``, ``2.9``) is answered from the nearest lower version
it does ship, and an unreadable one from v2.5: field positions are stable across v2 releases
(later HL7 v2 versions append fields and components, they do not renumber them).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import hl7apy
from hl7apy.exceptions import ChildNotFound

_FALLBACK_VERSION = "2.5"


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """What HL7 defines for one field of one segment in one version.

    ``max_repetitions`` is None when the field may repeat without limit; ``table`` is the HL7 table
    (``HL70200``) bound to the field, when there is one.
    """

    version: str
    segment: str
    field: int
    name: str
    long_name: str
    datatype: str
    table: str | None
    min_repetitions: int
    max_repetitions: int | None

    @property
    def repeats(self) -> bool:
        """Tell whether the field may occur more than once."""
        return self.max_repetitions is None or self.max_repetitions > 1


def library_version(version: str) -> str:
    """Return the hl7apy library version that answers questions about ``version``."""
    return _library_version(version.strip())


@lru_cache(maxsize=64)
def _library_version(version: str) -> str:
    supported = hl7apy.SUPPORTED_LIBRARIES
    if version in supported:
        return version
    wanted = _version_key(version)
    if wanted is None:
        return _FALLBACK_VERSION
    lower = [v for v in supported if _version_key(v) <= wanted]  # type: ignore[operator]
    if not lower:
        return min(supported, key=_version_key)  # type: ignore[arg-type]
    return max(lower, key=_version_key)  # type: ignore[arg-type]


def _version_key(version: str) -> tuple[int, ...] | None:
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return None


@lru_cache(maxsize=1024)
def _segment_children(version: str, segment: str) -> tuple[Any, ...] | None:
    try:
        kind, children = hl7apy.load_reference(segment, "Segment", library_version(version))
    except ChildNotFound:
        return None
    return tuple(children) if kind == "sequence" else None


def segment_known(version: str, segment: str) -> bool:
    """Tell whether HL7 defines ``segment`` in ``version``; Z-segments are never known."""
    return _segment_children(version, segment) is not None


def is_z_segment(segment: str) -> bool:
    """Tell whether ``segment`` is a locally defined Z-segment (HL7 reserves names Z..)."""
    return len(segment) == 3 and segment.startswith("Z")


def field_count(version: str, segment: str) -> int:
    """Return how many fields HL7 defines for ``segment`` in ``version`` (0 when unknown)."""
    children = _segment_children(version, segment)
    return len(children) if children else 0


@lru_cache(maxsize=4096)
def field_info(version: str, segment: str, field: int) -> FieldInfo | None:
    """Describe field ``field`` of ``segment`` in ``version``; None when HL7 has no such field."""
    children = _segment_children(version, segment)
    if not children or not 1 <= field <= len(children):
        return None
    name, reference, (min_rep, max_rep), _ = children[field - 1]
    # A field reference reads (kind, structure, datatype, LONG_NAME, table, max length).
    datatype, long_name, table = reference[2], reference[3], reference[4]
    return FieldInfo(
        version=library_version(version),
        segment=segment,
        field=field,
        name=name,
        long_name=_readable(long_name),
        datatype=datatype,
        table=table,
        min_repetitions=min_rep,
        max_repetitions=None if max_rep == -1 else max_rep,
    )


@lru_cache(maxsize=1024)
def _component_names(version: str, datatype: str) -> tuple[str, ...]:
    try:
        children = hl7apy.load_reference(datatype, "Datatypes_Structs", library_version(version))
    except ChildNotFound:
        return ()
    # A component reference reads (kind, structure, datatype, LONG_NAME, table, max length).
    return tuple(_readable(reference[3]) for _, reference, _, _ in children)


def component_names(version: str, datatype: str) -> list[str]:
    """Return the names of the components of ``datatype`` in order; [] for a primitive type."""
    return list(_component_names(version, datatype))


def _readable(long_name: str) -> str:
    return long_name.replace("_", " ").title()


def full_parse(raw: str) -> Any:
    """Parse a whole message with hl7apy's ``parse_message``: the slow reference reader.

    Only the benchmark uses it, to show what the project's own tokeniser saves. Segment
    separators are normalised to CR and MLLP framing removed first, as hl7apy expects.
    """
    from hl7apy.parser import parse_message

    text = raw.strip("\x0b\x1c\r\n").replace("\r\n", "\r").replace("\n", "\r")
    return parse_message(text)
