"""Explain one record: for every FHIR element written, its source location and mapping rule.

Lineage comes from the engine's trace (:class:`converters.mapping.engine.Lineage`); the resource
shown is the assembled one, so elements the assembler adds (``id``, ``meta``) are named as such.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from converters.fhir.assembler import Assembled, Assembler, Entry
from converters.fhir.ids import IdMaker
from converters.mapping.engine import Conversion, Draft, Engine, Lineage
from converters.mapping.tables import MappingSet
from converters.readers.registry import reader_for
from converters.records import SourceRecord

# Ids in a workbench run only need to be stable within the run; no real key is involved.
WORKBENCH_KEY = b"babyconnect-workbench"
ASSEMBLER = "assembler"


@dataclass(slots=True)
class Element:
    """One leaf of an output resource and where it came from."""

    resource: str
    alias: str
    path: str
    value: Any
    source: str
    rules: tuple[str, ...]


@dataclass(slots=True)
class Traced:
    """One record converted with lineage, its assembled resources, and which draft became which."""

    record: SourceRecord
    conversion: Conversion
    assembled: Assembled
    owners: list[tuple[Draft, Entry]]


def convert_traced(record: SourceRecord, mappings: MappingSet) -> Traced:
    """Convert and assemble one record with lineage on; raise SourceError when it cannot be."""
    conversion = Engine(mappings, trace=True).convert(record)
    assembled = Assembler(IdMaker(WORKBENCH_KEY), mappings.version).assemble(conversion)
    return Traced(record, conversion, assembled, _owners(conversion.drafts, assembled.entries))


def pick_record(path: Path, record_id: str | None = None,
                position: int | None = None) -> SourceRecord:
    """Return the record of ``path`` with that id or 1-based position (default: the first)."""
    for record in reader_for(path)(path):
        if record_id is not None and record.record_id != record_id:
            continue
        if position is not None and record.position != position:
            continue
        return record
    wanted = f"record id {record_id!r}" if record_id is not None else f"position {position}"
    raise LookupError(f"{path} has no record with {wanted}")


def elements(traced: Traced) -> list[Element]:
    """List every leaf of every output resource (Provenance left out) with its lineage."""
    found: list[Element] = []
    for draft, entry in traced.owners:
        alias = draft.alias.split("#", 1)[0]  # a keyed draft is named alias#key after tracing
        written = [w for w in traced.conversion.lineage
                   if w.alias == alias and w.index == draft.index]
        label = entry.key
        for path, value in leaves(entry.resource):
            if path in ("resourceType", "id") or path.startswith("meta."):
                found.append(Element(label, draft.alias, path, value, ASSEMBLER, (ASSEMBLER,)))
                continue
            source, rules = _explain_leaf(path, written)
            found.append(Element(label, draft.alias, path, value, source, rules))
    return found


def leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Yield (concrete path, value) for every primitive inside a FHIR JSON resource."""
    if isinstance(node, dict):
        for key, child in node.items():
            yield from leaves(child, f"{prefix}.{key}" if prefix else key)
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from leaves(child, f"{prefix}[{index}]")
    else:
        yield prefix, node


def render_text(traced: Traced, found: list[Element]) -> str:
    """Render a three-column table: source | rule | FHIR path = value."""
    record = traced.record
    lines = [f"{record.file}#{record.record_id} (position {record.position}, "
             f"{record.format} {record.kind}) -> map {traced.conversion.message_map}"]
    width_source = max((len(e.source) for e in found), default=10)
    width_rule = max((len(", ".join(e.rules)) for e in found), default=10)
    current = None
    for element in found:
        if element.resource != current:
            current = element.resource
            lines.append("")
            lines.append(f"{element.resource}  (alias {element.alias})")
        rule = ", ".join(element.rules)
        lines.append(f"  {element.source:<{width_source}}  {rule:<{width_rule}}  "
                     f"{_type(element.resource)}.{element.path}"
                     f" = {json.dumps(element.value, ensure_ascii=False)}")
    return "\n".join(lines) + "\n"


def render_json(traced: Traced, found: list[Element]) -> str:
    """Render the elements as JSON, one object per element."""
    record = traced.record
    data = {
        "file": record.file,
        "record_id": record.record_id,
        "position": record.position,
        "message_map": traced.conversion.message_map,
        "elements": [
            {"resource": e.resource, "alias": e.alias, "path": f"{_type(e.resource)}.{e.path}",
             "value": e.value, "source": e.source, "rules": list(e.rules)}
            for e in found
        ],
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _type(key: str) -> str:
    return key.split("/", 1)[0]


def _explain_leaf(path: str, written: list[Lineage]) -> tuple[str, tuple[str, ...]]:
    """Find the most specific lineage entries whose target path holds ``path``."""
    best: list[Lineage] = []
    best_length = -1
    for entry in written:
        target = entry.target
        if path == target or path.startswith((target + ".", target + "[")):
            if len(target) > best_length:
                best, best_length = [entry], len(target)
            elif len(target) == best_length:
                best.append(entry)
    if not best:
        # The key of a [url=...] step: written by the rule whose target goes through that item.
        parent = path.rsplit(".", 1)[0]
        best = [e for e in written if "." in path and e.target.startswith(parent + ".")]
    if not best:
        return ASSEMBLER, (ASSEMBLER,)
    last = best[-1]  # a later write to the same path wins (see targetpath.write)
    rules = tuple(dict.fromkeys(e.rule for e in best if e.source == last.source))
    return last.source, rules


def _owners(drafts: list[Draft], entries: list[Entry]) -> list[tuple[Draft, Entry]]:
    """Pair each draft with the entry that holds its body.

    The assembler copies top-level keys, so a draft's nested values are the very objects in its
    entry. A draft with scalars only (a child with a birth date and a birth order) is matched on
    those values, and every entry is paired at most once, so twins never both point at one.
    """
    pairs = []
    taken: set[int] = set()
    for draft in drafts:
        containers = [v for v in draft.body.values() if isinstance(v, (dict, list))]
        scalars = {k: v for k, v in draft.body.items() if not isinstance(v, (dict, list))}
        candidates = [
            entry for entry in entries
            if entry.resource["resourceType"] == draft.resource_type and (
                any(any(v is c for v in entry.resource.values()) for c in containers)
                if containers
                else all(entry.resource.get(k) == v for k, v in scalars.items()))
        ]
        free = [entry for entry in candidates if id(entry) not in taken]
        if free or candidates:
            entry = (free or candidates)[0]
            taken.add(id(entry))
            pairs.append((draft, entry))
    return pairs
