"""Target paths: where a rule writes into a FHIR resource (JSON form).

The grammar follows FHIR Shorthand's soft indexing, which mapping authors in this field know:

    birthDate                       a plain element
    identifier[+]                   append a new item to a list
    identifier[=].system            the item appended last
    name[0].given[+]                an index
    _family.extension[url=http://hl7.org/fhir/StructureDefinition/humanname-own-name].valueString
                                    the list item whose ``url`` is that value, added if missing
    extension[+url=http://...].valueReference
                                    a new list item with that ``url``, even when one exists
                                    (an extension that repeats: one per supporting resource)

Paths are compiled once when the mapping table is loaded; writing is a short loop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_STEP = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[(\+|=|\d+|\+?[A-Za-z_]+=[^\]]+)\])?$")

APPEND, LAST, INDEX, MATCH, KEY, APPEND_MATCH = range(6)


@dataclass(frozen=True, slots=True)
class Step:
    key: str
    op: int
    arg: Any = None


def split_path(path: str) -> list[str]:
    """Split on dots that are not inside brackets (urls in ``[url=...]`` contain dots)."""
    parts, depth, current = [], 0, []
    for char in path:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        if char == "." and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def compile_path(path: str) -> tuple[Step, ...]:
    """Compile a target path; raise ValueError naming the bad step."""
    steps = []
    for part in split_path(path):
        found = _STEP.match(part)
        if not found:
            raise ValueError(f"bad target path step '{part}'")
        key, index = found.groups()
        if index is None:
            steps.append(Step(key, KEY))
        elif index == "+":
            steps.append(Step(key, APPEND))
        elif index == "=":
            steps.append(Step(key, LAST))
        elif index.isdigit():
            steps.append(Step(key, INDEX, int(index)))
        else:
            match_key, match_value = index.split("=", 1)
            op = APPEND_MATCH if match_key.startswith("+") else MATCH
            steps.append(Step(key, op, (match_key.lstrip("+"), match_value)))
    return tuple(steps)


def write(target: dict[str, Any], steps: tuple[Step, ...], value: Any) -> None:
    """Write ``value`` at ``steps`` inside ``target``, creating containers on the way."""
    node: Any = target
    last = len(steps) - 1
    for position, step in enumerate(steps):
        final = position == last
        if step.op == KEY:
            if final:
                existing = node.get(step.key)
                if isinstance(existing, dict) and isinstance(value, dict):
                    existing.update(value)  # a coding's system and code joining a Quantity
                else:
                    node[step.key] = value
                return
            node = node.setdefault(step.key, {})
            continue
        items = node.setdefault(step.key, [])
        node = _list_item(items, step, value if final else None, final)
        if final:
            return


def _list_item(items: list[Any], step: Step, value: Any, final: bool) -> Any:
    if step.op == APPEND:
        items.append(value if final else {})
        return items[-1]
    if step.op == LAST:
        if not items:
            items.append({})
        if final:
            items[-1] = _merged(items[-1], value)
        return items[-1]
    if step.op == INDEX:
        while len(items) <= step.arg:
            items.append({})
        if final:
            items[step.arg] = _merged(items[step.arg], value)
        return items[step.arg]
    match_key, match_value = step.arg
    if step.op == APPEND_MATCH:
        item = {match_key: match_value}
        if final and isinstance(value, dict):
            item.update(value)
        items.append(item)
        return item
    for item in items:
        if isinstance(item, dict) and item.get(match_key) == match_value:
            break
    else:
        item = {match_key: match_value}
        items.append(item)
    if final and isinstance(value, dict):
        item.update(value)
    return item


def _merged(existing: Any, value: Any) -> Any:
    """A dict written onto a dict joins it (a reference onto a performer that already holds its
    role extension), as a dict written onto an element does; anything else replaces."""
    if isinstance(existing, dict) and isinstance(value, dict) and existing:
        existing.update(value)
        return existing
    return value


def write_traced(target: dict[str, Any], steps: tuple[Step, ...], value: Any) -> str:
    """Write like :func:`write` and return the concrete path written (``identifier[1].value``).

    Only the engine's trace mode calls this, so the untraced path keeps its short loop.
    """
    node: Any = target
    concrete: list[str] = []
    last = len(steps) - 1
    for position, step in enumerate(steps):
        final = position == last
        if step.op == KEY:
            concrete.append(step.key)
            if final:
                write(node, (step,), value)
                break
            node = node.setdefault(step.key, {})
            continue
        items = node.setdefault(step.key, [])
        node = _list_item(items, step, value if final else None, final)
        concrete.append(f"{step.key}[{_index_of(items, step, node)}]")
        if final:
            break
    return ".".join(concrete)


def _index_of(items: list[Any], step: Step, item: Any) -> int:
    if step.op == INDEX:
        return int(step.arg)
    if step.op in (MATCH, APPEND_MATCH):
        return next(i for i, candidate in enumerate(items) if candidate is item)
    return len(items) - 1
