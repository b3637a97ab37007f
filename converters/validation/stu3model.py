"""What the FHIR STU3 core says about each element, read from the ``fhir.resources.STU3`` models.

The STU3 core StructureDefinitions are not vendored (only the Nictiz differentials are), so base
cardinalities, which elements repeat, which are primitives and which are choices (``value[x]``)
come from the pydantic models that ``fhir.resources`` generated from those same definitions.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from functools import cache

from fhir.resources.STU3 import get_fhir_model_class

# FHIR primitive type names (STU3 §2.1.28.0.1) keyed by the annotation marker class the models use.
_PRIMITIVE_MARKERS = {
    "Id": "id", "Uri": "uri", "Url": "uri", "Code": "code", "String": "string", "Date": "date",
    "DateTime": "dateTime", "Instant": "instant", "Time": "time", "Decimal": "decimal",
    "Integer": "integer", "UnsignedInt": "unsignedInt", "PositiveInt": "positiveInt",
    "Base64Binary": "base64Binary", "Markdown": "markdown", "Oid": "oid", "Uuid": "uuid",
    "Xhtml": "xhtml",
}
PRIMITIVE_TYPES = frozenset(_PRIMITIVE_MARKERS.values()) | {"boolean"}


@dataclass(frozen=True, slots=True)
class ElementInfo:
    """One element of a STU3 type: its JSON name, whether it repeats, its type and base minimum."""

    name: str
    is_list: bool
    type_name: str  # "string", "Coding", "PatientContact", "Resource", ...
    is_primitive: bool
    min: int
    choice: str  # "value" for valueQuantity (the [x] group), "" otherwise


def _unwrap(annotation: typing.Any) -> tuple[typing.Any, bool]:
    """Strip Optional/Union and List from an annotation; say whether it was a list."""
    is_list = False
    while True:
        origin = typing.get_origin(annotation)
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if origin in (typing.Union, types.UnionType) and args:
            annotation = args[0]
        elif origin in (list, list):
            is_list, annotation = True, args[0]
        else:
            return annotation, is_list


def _type_name(annotation: typing.Any) -> tuple[str, bool]:
    """Name the FHIR type of an unwrapped annotation and say whether it is a primitive."""
    if annotation is bool:
        return "boolean", True
    if typing.get_origin(annotation) is typing.Annotated:
        for marker in typing.get_args(annotation)[1:]:
            name = _PRIMITIVE_MARKERS.get(type(marker).__name__)
            if name:
                return name, True
        return "string", True
    name = getattr(annotation, "__name__", str(annotation))
    return (name[:-4] if name.endswith("Type") else name), False


@cache
def elements(type_name: str) -> dict[str, ElementInfo]:
    """Return the elements of a STU3 resource or data type, keyed by JSON name."""
    model = get_fhir_model_class(type_name)
    result: dict[str, ElementInfo] = {}
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if not extra.get("element_property"):
            continue
        inner, is_list = _unwrap(field.annotation)
        tname, primitive = _type_name(inner)
        required = field.is_required() or bool(
            extra.get("element_required") or extra.get("one_of_many_required"))
        alias = field.alias or name
        result[alias] = ElementInfo(
            alias, is_list, tname, primitive, 1 if required else 0,
            str(extra.get("one_of_many") or ""),
        )
    return result


@cache
def choice_types(type_name: str, choice: str) -> dict[str, str]:
    """Map each JSON name of a choice group (``valueQuantity``) to its type (``Quantity``)."""
    return {
        name: info.type_name for name, info in elements(type_name).items() if info.choice == choice
    }


def is_known_type(type_name: str) -> bool:
    """Say whether ``fhir.resources.STU3`` has a model for this resource or data type."""
    try:
        get_fhir_model_class(type_name)
    except ValueError:
        return False
    return True


def model_class(type_name: str) -> typing.Any:
    """Return the pydantic model of a STU3 resource type."""
    return get_fhir_model_class(type_name)
