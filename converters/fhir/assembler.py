"""Assemble Babyconnect resources and one transaction Bundle per source record.

From the engine's drafts: deterministic ids, ``meta.profile``, references resolved from aliases
to ``urn:uuid`` full URLs, the same person or organisation met twice in a record merged into one
entry, a Provenance naming the source record and the mapping version, and a transaction Bundle
shaped like Nictiz's Babyconnect bundles: conditional ``PUT Type?identifier=system|value`` for
persons and organisations, ``PUT Type/id`` for everything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

from converters.fhir.ids import IdMaker
from converters.mapping.engine import AliasRef, Conversion, Draft
from converters.mapping.transforms import Reject, to_instant

CONDITIONAL_TYPES = frozenset({"Patient", "Practitioner", "Organization"})
PROVENANCE_SOURCE = "urn:babyconnect:source-record"


@dataclass(slots=True)
class Entry:
    resource: dict[str, Any]
    full_url: str
    request_url: str
    conditional: bool
    if_absent: str = ""  # a search (identifier=system|value): create only when nothing matches

    @property
    def key(self) -> str:
        return f"{self.resource['resourceType']}/{self.resource['id']}"


@dataclass(slots=True)
class Assembled:
    """The resources of one record (ids set) and its transaction Bundle.

    ``source_time`` is when the source says the record was made (MSH-7 for HL7v2), in UTC:
    targets use it so that the newest statement about a resource wins whatever the order in
    which parallel tasks happen to write.
    """

    bundle: dict[str, Any]
    entries: list[Entry]
    source_time: str = ""

    def resolver(self) -> Any:
        by_url = {e.full_url: e.resource for e in self.entries}
        by_key = {e.key: e.resource for e in self.entries}
        return lambda reference: by_url.get(reference) or by_key.get(reference)


class Assembler:
    def __init__(self, ids: IdMaker, mapping_version: str) -> None:
        self.ids = ids
        self.mapping_version = mapping_version

    def assemble(self, conversion: Conversion) -> Assembled:
        entries: list[Entry] = []
        by_alias: dict[str, list[Entry]] = {}
        seen: dict[str, Entry] = {}
        alias_ids: dict[str, str] = {}
        for draft in conversion.drafts:
            entry = self._entry(draft, conversion, alias_ids)
            alias_ids.setdefault(draft.alias, entry.resource["id"])
            existing = seen.get(entry.key)
            if existing is not None:
                _merge(existing.resource, entry.resource)
                if not entry.if_absent:
                    existing.if_absent = ""  # one authoritative mention makes the entry an update
                entry = existing
            else:
                seen[entry.key] = entry
                entries.append(entry)
            by_alias.setdefault(draft.alias, []).append(entry)
        for entry in entries:
            _resolve(entry.resource, by_alias)
        provenance = self._provenance(conversion, entries)
        entries.append(provenance)
        return Assembled(self._bundle(conversion, entries), entries,
                         _utc(provenance.resource["recorded"]))

    # -- ids ------------------------------------------------------------------------------------

    def _entry(self, draft: Draft, conversion: Conversion, alias_ids: dict[str, str]) -> Entry:
        body = draft.body
        resource_type = draft.resource_type
        identifier = _identifier(body, draft.identifier_systems)
        conditional = False
        if identifier is not None:
            system, value = identifier
            resource_id = self.ids.make(resource_type, system, value)
            conditional = draft.conditional if draft.conditional is not None else (
                resource_type in CONDITIONAL_TYPES
            )
            request_url = f"{resource_type}?identifier={system}|{value}"
        else:
            owners = [alias_ids.get(a, "") for a in draft.identity_with]
            if any(draft.identity_values) or draft.identity_with:
                parts = (resource_type, draft.map_name, *owners, *draft.identity_values)
            else:
                record = conversion.record
                parts = (resource_type, draft.map_name, *owners, record.content_hash,
                         draft.alias, str(draft.index))
            resource_id = self.ids.make(*parts)
            request_url = f"{resource_type}/{resource_id}"
        if not conditional:
            request_url = f"{resource_type}/{resource_id}"
        resource = {"resourceType": resource_type, "id": resource_id,
                    "meta": {"profile": list(draft.profiles)}}
        resource.update((k, v) for k, v in body.items() if k != "resourceType")
        if_absent = ""
        if draft.write == "create-if-absent" and identifier is not None:
            if_absent = f"identifier={identifier[0]}|{identifier[1]}"
            conditional = True
        return Entry(resource, self.ids.full_url(resource_id), request_url, conditional,
                     if_absent)

    # -- provenance and bundle ------------------------------------------------------------------

    def _provenance(self, conversion: Conversion, entries: list[Entry]) -> Entry:
        record = conversion.record
        source_name = PurePath(record.file).name
        resource_id = self.ids.make("Provenance", record.content_hash, record.record_id)
        provenance: dict[str, Any] = {
            "resourceType": "Provenance",
            "id": resource_id,
            "target": [{"reference": e.full_url} for e in entries],
            "recorded": _recorded(record.meta.get("message_datetime", "")),
            "policy": [f"urn:babyconnect:mapping-version:{self.mapping_version}"],
            "agent": [{
                "role": [{"coding": [{
                    "system": "http://hl7.org/fhir/provenance-participant-role",
                    "code": "author",
                }]}],
                "whoUri": _uri("urn:babyconnect:source-system:",
                               record.meta.get("sending_application") or record.format),
            }],
            "entity": [{
                "role": "source",
                "whatIdentifier": {
                    "system": PROVENANCE_SOURCE,
                    "value": f"{source_name}#{record.record_id}",
                },
            }],
        }
        return Entry(provenance, self.ids.full_url(resource_id), f"Provenance/{resource_id}",
                     False)

    def _bundle(self, conversion: Conversion, entries: list[Entry]) -> dict[str, Any]:
        record = conversion.record
        bundle_entries = []
        for entry in entries:
            resource = entry.resource
            if entry.conditional:
                # A conditional update must not carry an id: the server's match decides it, and a
                # resource first created by another system has another id (FHIR STU3 3.1.0.4.3).
                resource = {k: v for k, v in resource.items() if k != "id"}
            if entry.if_absent:
                # FHIR STU3 3.1.0.8 conditional create: never overwrites what the repository holds.
                request = {"method": "POST", "url": resource["resourceType"],
                           "ifNoneExist": entry.if_absent}
            else:
                request = {"method": "PUT", "url": entry.request_url}
            bundle_entries.append({"fullUrl": entry.full_url, "resource": resource,
                                   "request": request})
        return {
            "resourceType": "Bundle",
            "id": self.ids.make("Bundle", record.content_hash, record.record_id),
            "type": "transaction",
            "entry": bundle_entries,
        }


def _identifier(body: dict[str, Any], systems: tuple[str, ...]) -> tuple[str, str] | None:
    identifiers = body.get("identifier") or []
    for system in systems:
        for identifier in identifiers:
            if identifier.get("value") and (system == "*" or identifier.get("system") == system):
                return identifier.get("system", ""), identifier["value"]
    return None


def _resolve(node: Any, by_alias: dict[str, list[Entry]]) -> Any:
    """Replace alias references by full URLs; drop references to resources not produced."""
    if isinstance(node, dict):
        for key in list(node):
            value = node[key]
            if key == "reference" and isinstance(value, AliasRef):
                targets = by_alias.get(str(value))
                if not targets:
                    return None
                node[key] = targets[0].full_url
                continue
            if key.startswith("_") and isinstance(value, list):
                # A primitive list's extensions pair with it by position: a null keeps its place
                # (FHIR STU3 JSON 2.6.2.4); only an all-null list goes.
                value[:] = [(_resolve(item, by_alias) or None) if item else None
                            for item in value]
                if not any(value):
                    del node[key]
                continue
            resolved = _resolve(value, by_alias)
            if resolved is None or resolved == [] or resolved == {}:
                del node[key]
        return node
    if isinstance(node, list):
        kept: list[Any] = []
        for item in node:
            resolved = _resolve(item, by_alias)
            if resolved in (None, {}):
                continue
            # The same identifier from two fields (PID-21 and NK1-33) is written once; a
            # repeated primitive is kept (a call name equal to a given name), as its position
            # pairs it with the `_given` extensions beside it.
            if isinstance(resolved, dict) and resolved in kept:
                continue
            kept.append(resolved)
        node[:] = kept
        return node
    return node


def _merge(kept: dict[str, Any], other: dict[str, Any]) -> None:
    for key, value in other.items():
        if key not in kept:
            kept[key] = value
        elif isinstance(value, list) and isinstance(kept[key], list):
            for item in value:
                if item not in kept[key]:
                    kept[key].append(item)


def _recorded(text: str) -> str:
    try:
        return to_instant(text) if text else "1970-01-01T00:00:00+00:00"
    except Reject:
        return "1970-01-01T00:00:00+00:00"


def _utc(instant: str) -> str:
    try:
        moment = datetime.fromisoformat(instant)
    except ValueError:
        return ""
    if moment.tzinfo is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S")


def _uri(prefix: str, text: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in text)
    return prefix + (safe or "unknown")
