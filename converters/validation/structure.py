"""Structural validation of FHIR STU3 JSON against the ``fhir.resources.STU3`` models.

Two modes, which give the same verdicts on the corpus (``tests/validation/test_structure.py``):

* ``pydantic``: ``Model.model_validate(resource)``, the reference; about 140 µs per Observation.
* ``fast``: one walk over the resource using the models' element tables (:mod:`stu3model`):
  unknown elements, repetition, JSON types, the STU3 primitive formats (§2.1.28.0) and base
  cardinality (min 1 in the core); some tens of µs.

Both modes return every extension of the resource too, found in the same walk, for the
extension checks of the validator.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from pydantic import ValidationError

from converters.validation import stu3model

Problem = tuple[str, str]  # (element path, message without values)
Found = list[tuple[str, dict[str, Any]]]  # (path, extension)

# Regular expressions of the STU3 primitive types (FHIR STU3 §2.1.28.0, "Primitive Types").
_DATE = r"-?[0-9]{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01]))?)?"
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
_ZONE = r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
_FORMATS = {
    "date": re.compile(_DATE),
    "dateTime": re.compile(
        r"-?[0-9]{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01])"
        rf"(T{_TIME}{_ZONE})?)?)?"
    ),
    "instant": re.compile(rf"[0-9]{{4}}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T{_TIME}{_ZONE}"),
    "time": re.compile(_TIME),
    "code": re.compile(r"[^\s]+( [^\s]+)*"),
    "id": re.compile(r"[A-Za-z0-9\-.]{1,64}"),
    "oid": re.compile(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+"),
    "uuid": re.compile(
        r"urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    ),
    "uri": re.compile(r"\S*"),
}
_STRINGS = frozenset({"string", "markdown", "base64Binary", "xhtml", *_FORMATS})
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")

# Kinds of member in a type's table.
_PRIMITIVE, _SHADOW, _RESOURCE, _EXTENSION, _COMPLEX = range(5)


class _Spec:
    """What the walk needs to know about one JSON key of a type, precomputed."""

    __slots__ = ("kind", "is_list", "type_name", "choice")

    def __init__(self, kind: int, is_list: bool, type_name: str, choice: str) -> None:
        self.kind, self.is_list, self.type_name, self.choice = kind, is_list, type_name, choice


@cache
def _table(type_name: str) -> tuple[dict[str, _Spec], tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """Return the key table, the required elements and the required choice groups of a type."""
    table: dict[str, _Spec] = {}
    required: list[str] = []
    groups: dict[str, list[str]] = {}
    for name, info in stu3model.elements(type_name).items():
        if info.is_primitive:
            table[name] = _Spec(_PRIMITIVE, info.is_list, info.type_name, info.choice)
            table["_" + name] = _Spec(_SHADOW, info.is_list, "Element", "")
        elif info.type_name == "Resource":
            table[name] = _Spec(_RESOURCE, info.is_list, "Resource", "")
        elif name in ("extension", "modifierExtension"):
            table[name] = _Spec(_EXTENSION, True, "Extension", "")
        else:
            table[name] = _Spec(_COMPLEX, info.is_list, info.type_name, info.choice)
        if info.min and info.choice:
            groups.setdefault(info.choice, []).extend((name, "_" + name))
        elif info.min:
            required.append(name)
    return table, tuple(required), tuple(tuple(g) for g in groups.values())


def scan(resource: dict[str, Any], mode: str = "fast") -> tuple[list[Problem], Found]:
    """Return the structural problems of one resource and every extension in it."""
    problems: list[Problem] = []
    found: Found = []
    _resource(resource, problems, found, "")
    if mode == "pydantic":
        problems = _pydantic(resource)
    return problems, found


def check(resource: dict[str, Any], mode: str = "fast") -> list[Problem]:
    """Return the structural problems of one resource."""
    return scan(resource, mode)[0]


def _pydantic(resource: dict[str, Any]) -> list[Problem]:
    type_name = resource.get("resourceType", "")
    if not isinstance(type_name, str) or not stu3model.is_known_type(type_name):
        return [("resourceType", "not a FHIR STU3 resource type")]
    try:
        stu3model.model_class(type_name).model_validate(resource)
    except ValidationError as exc:
        return [
            (".".join([type_name, *(str(p) for p in error["loc"])]),
             _QUOTED.sub("…", error["msg"]))  # pydantic may quote the input: never log values
            for error in exc.errors()
        ]
    return []


def _resource(resource: Any, problems: list[Problem], found: Found, path: str) -> None:
    type_name = resource.get("resourceType") if isinstance(resource, dict) else None
    if not isinstance(type_name, str) or not stu3model.is_known_type(type_name):
        problems.append((path or "resourceType", "not a FHIR STU3 resource"))
        return
    _object(resource, type_name, path or type_name, problems, found)


def _object(obj: dict[str, Any], type_name: str, path: str, problems: list[Problem],
            found: Found) -> None:
    """Walk one JSON object of FHIR type ``type_name``."""
    table, required, groups = _table(type_name)
    choices: set[str] | None = None
    for key, value in obj.items():
        spec = table.get(key)
        if spec is None:
            if key not in ("resourceType", "fhir_comments"):
                problems.append((f"{path}.{key}", "unknown element"))
            continue
        if spec.choice:
            if choices is None:
                choices = set()
            elif spec.choice in choices:
                problems.append((f"{path}.{key}", f"more than one type for {spec.choice}[x]"))
            choices.add(spec.choice)
        if spec.is_list:
            if type(value) is not list:
                problems.append((f"{path}.{key}", "must be an array"))
            elif not value:
                problems.append((f"{path}.{key}", "array must not be empty"))
            else:
                for index, item in enumerate(value):
                    _member(spec, item, key, index, path, problems, found)
        elif type(value) is list:
            problems.append((f"{path}.{key}", "must not repeat"))
        else:
            _member(spec, value, key, -1, path, problems, found)
    for name in required:
        if name not in obj and "_" + name not in obj:
            problems.append((f"{path}.{name}", "required element missing"))
    for group in groups:
        if not any(name in obj for name in group):
            problems.append((f"{path}.{group[0]}", "required element missing"))


def _member(spec: _Spec, item: Any, key: str, index: int, path: str, problems: list[Problem],
            found: Found) -> None:
    kind = spec.kind
    if kind == _PRIMITIVE:
        if item is None and index >= 0:
            return  # a repeating primitive with only an extension at this position
        if not _valid_primitive(item, spec.type_name):
            where = f"{path}.{key}" if index < 0 else f"{path}.{key}[{index}]"
            problems.append((where, f"not a valid FHIR {spec.type_name}"))
        return
    where = f"{path}.{key}" if index < 0 else f"{path}.{key}[{index}]"
    if kind == _RESOURCE:
        _resource(item, problems, found, where)
        return
    if type(item) is not dict:
        if not (kind == _SHADOW and item is None):
            problems.append((where, "must be an object"))
        return
    if not item:
        problems.append((where, "must not be empty"))
    if kind == _EXTENSION:
        found.append((where, item))
    _object(item, spec.type_name, where, problems, found)


def _valid_primitive(value: Any, type_name: str) -> bool:
    """Check a primitive's JSON type and lexical form (STU3 §2.6.2: JSON representation)."""
    kind = type(value)
    if kind is str:
        if type_name not in _STRINGS or not value:
            return False
        pattern = _FORMATS.get(type_name)
        return pattern is None or pattern.fullmatch(value) is not None
    if type_name == "boolean":
        return kind is bool
    if type_name == "decimal":
        return kind is int or kind is float
    if type_name in ("integer", "unsignedInt", "positiveInt"):
        return kind is int and (
            type_name == "integer" or value >= (1 if type_name == "positiveInt" else 0))
    return False
