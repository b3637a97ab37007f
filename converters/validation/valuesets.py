"""Decide membership of codes in the vendored ValueSets, where the ValueSet enumerates them.

A ValueSet can be checked here when every part of its ``compose.include`` names concepts
(``include.concept``), a whole code system (``include.system`` alone) or another checkable
ValueSet (``include.valueSet``), or when it carries an ``expansion`` (STU3 ValueSet §4.9.5).
Parts defined by a ``filter`` (SNOMED CT ``descendent-of``, ``is-a``) need a terminology server: a
code outside the enumerated parts of such a ValueSet is *undecided*, never accepted silently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class CodeSet:
    """The enumerable content of a ValueSet: codes per system, whole systems, open parts."""

    url: str
    codes: dict[str, frozenset[str]] = field(default_factory=dict)
    whole_systems: frozenset[str] = frozenset()
    excluded: dict[str, frozenset[str]] = field(default_factory=dict)
    open_parts: tuple[str, ...] = ()  # why a code outside the enumeration is undecided

    def contains(self, system: str | None, code: str) -> bool | None:
        """Say whether (system, code) is in the set; ``None`` when it cannot be decided.

        ``system`` is ``None`` for a bare ``code`` element, whose system the binding implies.
        """
        systems = self.codes if system is None else {system: self.codes.get(system, frozenset())}
        for sys_url, codes in systems.items():
            if code in codes and code not in self.excluded.get(sys_url, frozenset()):
                return True
        if system is not None and system in self.whole_systems:
            return code not in self.excluded.get(system, frozenset())
        if system is None and self.whole_systems:
            return True
        return None if self.open_parts else False


def build(url: str, load: Callable[[str], dict[str, Any] | None]) -> CodeSet | None:
    """Build the CodeSet of the ValueSet at ``url``; ``None`` when the ValueSet is not vendored."""
    return _build(url, load, frozenset())


def _build(url: str, load: Callable[[str], dict[str, Any] | None], seen: frozenset[str]
           ) -> CodeSet | None:
    resource = load(url.split("|")[0])
    if resource is None or url in seen:
        return None
    codes: dict[str, set[str]] = {}
    whole: set[str] = set()
    open_parts: list[str] = []
    for contained in resource.get("expansion", {}).get("contains", []):
        _collect_expansion(contained, codes)
    for include in resource.get("compose", {}).get("include", []):
        _include(include, codes, whole, open_parts, load, seen | {url})
    excluded: dict[str, set[str]] = {}
    for exclude in resource.get("compose", {}).get("exclude", []):
        for concept in exclude.get("concept", []):
            excluded.setdefault(exclude.get("system", ""), set()).add(concept["code"])
    return CodeSet(
        url,
        {s: frozenset(c) for s, c in codes.items()},
        frozenset(whole),
        {s: frozenset(c) for s, c in excluded.items()},
        tuple(open_parts),
    )


def _include(include: dict[str, Any], codes: dict[str, set[str]], whole: set[str],
             open_parts: list[str], load: Callable[[str], dict[str, Any] | None],
             seen: frozenset[str]) -> None:
    system = include.get("system")
    if include.get("filter"):
        ops = ", ".join(f"{f.get('op')} {f.get('value')}" for f in include["filter"])
        open_parts.append(f"filter on {system} ({ops})")
    elif include.get("concept"):
        codes.setdefault(system or "", set()).update(c["code"] for c in include["concept"])
    elif system:
        whole.add(system)
    for imported in include.get("valueSet", []) or []:
        part = _build(imported, load, seen)
        if part is None:
            open_parts.append(f"imports ValueSet {imported}, which is not vendored")
            continue
        for sys_url, part_codes in part.codes.items():
            codes.setdefault(sys_url, set()).update(part_codes)
        whole.update(part.whole_systems)
        open_parts.extend(part.open_parts)


def _collect_expansion(contained: dict[str, Any], codes: dict[str, set[str]]) -> None:
    if "code" in contained:
        codes.setdefault(contained.get("system", ""), set()).add(contained["code"])
    for child in contained.get("contains", []):
        _collect_expansion(child, codes)
