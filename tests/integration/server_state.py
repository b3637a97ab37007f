"""What a FHIR server holds, read back so that two servers or two moments can be compared.

sekmet-fhir assigns its own ids to resources written by conditional update
(``PUT Patient?identifier=...``), so two servers loaded with the same exports hold the same
content under different ids. :func:`canonical` therefore names each resource by its business
identifiers (or by its id when we chose it, e.g. ``Observation/<hash>``) and rewrites every
reference to that name; ``meta`` (versionId, lastUpdated) is left out.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

PAGE = 500


@dataclass(frozen=True)
class ServerState:
    """The current resources and the number of stored versions of one server."""

    resources: dict[tuple[str, str], dict]  # (type, id) -> newest version
    versions: int

    def counts(self) -> Counter[str]:
        """Return the number of current resources per resource type."""
        return Counter(rtype for rtype, _ in self.resources)

    def content(self) -> Counter[str]:
        """Return every resource as canonical JSON, duplicates counted (see module docstring)."""
        labels = {key: _label(key, resource) for key, resource in self.resources.items()}
        return Counter(canonical(resource, labels) for resource in self.resources.values())

    def without(self, baseline: ServerState) -> ServerState:
        """Return this state less the resources and versions already in ``baseline``."""
        kept = {k: v for k, v in self.resources.items() if k not in baseline.resources}
        return ServerState(kept, self.versions - baseline.versions)


def read_state(base_url: str) -> ServerState:
    """Read the whole system history of the server at ``base_url``."""
    newest: dict[tuple[str, str], dict] = {}
    versions = 0
    for resource in _history(base_url):
        versions += 1
        key = (resource["resourceType"], resource["id"])
        held = newest.get(key)
        if held is None or _version(resource) > _version(held):
            newest[key] = resource
    return ServerState(newest, versions)


def canonical(resource: dict, labels: dict[tuple[str, str], str]) -> str:
    """Return the resource as sorted JSON without id and meta, references named by label."""
    body = {k: v for k, v in resource.items() if k not in ("id", "meta")}
    return json.dumps(_relabel(body, labels), sort_keys=True, ensure_ascii=False)


def _history(base_url: str) -> Iterator[dict]:
    url: str | None = f"{base_url}/_history?_count={PAGE}"
    with httpx.Client(timeout=30) as client:
        while url:
            response = client.get(url)
            response.raise_for_status()
            bundle = response.json()
            for entry in bundle.get("entry") or []:
                if "resource" in entry:
                    yield entry["resource"]
            url = next((link["url"] for link in bundle.get("link") or []
                        if link.get("relation") == "next"), None)


def _version(resource: dict) -> int:
    return int((resource.get("meta") or {}).get("versionId") or 0)


def _label(key: tuple[str, str], resource: dict) -> str:
    identifiers = sorted(f"{i.get('system')}|{i.get('value')}"
                         for i in resource.get("identifier") or [] if i.get("value"))
    return f"{key[0]}[{','.join(identifiers)}]" if identifiers else f"{key[0]}/{key[1]}"


def _relabel(value: Any, labels: dict[tuple[str, str], str]) -> Any:
    if isinstance(value, dict):
        out = {k: _relabel(v, labels) for k, v in value.items()}
        reference = value.get("reference")
        if isinstance(reference, str) and reference.count("/") >= 1:
            rtype, rid = reference.rstrip("/").split("/")[-2:]
            out["reference"] = labels.get((rtype, rid), reference)
        return out
    if isinstance(value, list):
        return [_relabel(item, labels) for item in value]
    return value
