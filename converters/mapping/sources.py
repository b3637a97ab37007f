"""How rules read a source record: one adapter per source format, one small node interface.

A *scope* is where a rule reads from: a whole HL7v2 message with some segments bound (the OBX a
resource is built from, its OBR), an XML element, a CSV row. ``select`` returns *nodes*; a node
has ``text()``, can be narrowed further (datatype maps read components of a field), and says
where it is (``location()``, for lineage and error messages). Paths are compiled once, when the
mapping tables load.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from lxml import etree


class Node(Protocol):
    def text(self) -> str: ...
    def select(self, path: Any, repeat: bool = False) -> list[Node]: ...
    def location(self) -> str: ...
    def parts(self) -> list[str]: ...


# ---------------------------------------------------------------------------------------------
# HL7v2
# ---------------------------------------------------------------------------------------------

_HL7_PATH = re.compile(
    r"^(?:(?P<seg>[A-Z][A-Z0-9]{2})-)?(?P<field>\d+)(?:\((?P<rep>\d+)\))?"
    r"(?:\.(?P<comp>\d+))?(?:\.(?P<sub>\d+))?$"
)
_HL7_RELATIVE = re.compile(r"^(?P<comp>\d+)(?:\.(?P<sub>\d+))?$")


@dataclass(frozen=True, slots=True)
class Hl7Path:
    """``PID-5(2).1.3``: segment, field, repetition (1-based in text, 0-based here), component,
    sub-component. A relative path (inside a datatype map) has only component[.sub]."""

    segment: str | None
    field: int | None
    repetition: int | None
    component: int | None
    subcomponent: int | None
    text: str


def compile_hl7_path(text: str) -> Hl7Path:
    relative = _HL7_RELATIVE.match(text)
    if relative:
        comp, sub = relative.group("comp"), relative.group("sub")
        return Hl7Path(None, None, None, int(comp), int(sub) if sub else None, text)
    found = _HL7_PATH.match(text)
    if not found or not found.group("seg"):
        raise ValueError(f"not an HL7v2 path like PID-5.1 or, inside a datatype, 1.2: '{text}'")
    rep = found.group("rep")
    return Hl7Path(
        found.group("seg"),
        int(found.group("field")),
        int(rep) - 1 if rep else None,
        int(found.group("comp")) if found.group("comp") else None,
        int(found.group("sub")) if found.group("sub") else None,
        text,
    )


class Hl7Node:
    """A field repetition, a component or a sub-component of one segment."""

    __slots__ = ("segment", "field", "rep", "comp", "sub")

    def __init__(self, segment: Any, field: int, rep: int, comp: int | None, sub: int | None):
        self.segment = segment
        self.field = field
        self.rep = rep
        self.comp = comp
        self.sub = sub

    def text(self) -> str:
        return self.segment.get(self.field, self.comp or 1, self.sub or 1, self.rep)

    def is_empty(self) -> bool:
        if self.comp is None:
            return not self.segment.has(self.field, None, self.rep)
        if self.sub is None:
            return not any(self.parts())
        return self.text() == ""

    def parts(self) -> list[str]:
        """Sub-components of a component node, components of a field node."""
        seg, field, rep = self.segment, self.field, self.rep
        if self.comp is None:
            count = seg.component_count(field, rep)
            return [seg.get(field, c, 1, rep) for c in range(1, count + 1)]
        count = seg.subcomponent_count(field, self.comp, rep)
        return [seg.get(field, self.comp, s, rep) for s in range(1, count + 1)]

    def select(self, path: Hl7Path, repeat: bool = False) -> list[Hl7Node]:
        if self.comp is None:
            node = Hl7Node(self.segment, self.field, self.rep, path.component, path.subcomponent)
        else:
            node = Hl7Node(self.segment, self.field, self.rep, self.comp, path.component)
        return [] if node.is_empty() else [node]

    def location(self) -> str:
        text = f"{self.segment.name}-{self.field}"
        if self.rep:
            text += f"({self.rep + 1})"
        if self.comp is not None:
            text += f".{self.comp}"
        if self.sub is not None:
            text += f".{self.sub}"
        return text


class Hl7Scope:
    """A message with the segments a resource is built from bound by name."""

    __slots__ = ("message", "bound")

    def __init__(self, message: Any, bound: dict[str, Any] | None = None) -> None:
        self.message = message
        self.bound = bound or {}

    def segment(self, name: str) -> Any:
        seg = self.bound.get(name)
        return seg if seg is not None else self.message.first(name)

    def text(self) -> str:
        return ""

    def parts(self) -> list[str]:
        return []

    def location(self) -> str:
        return ",".join(f"{n}@{s.index}" for n, s in self.bound.items()) or "message"

    def select(self, path: Hl7Path, repeat: bool = False) -> list[Hl7Node]:
        if path.segment is None:
            return []
        seg = self.segment(path.segment)
        if seg is None:
            return []
        if path.repetition is not None:
            reps = [path.repetition]
        elif repeat:
            reps = list(range(seg.repetitions(path.field)))
        else:
            reps = [0]
        nodes = []
        for rep in reps:
            node = Hl7Node(seg, path.field, rep, path.component, path.subcomponent)
            if not node.is_empty():
                nodes.append(node)
        return nodes

    def each(self, segment_name: str, context: list[str]) -> list[Hl7Scope]:
        scopes = []
        for seg in self.message.all(segment_name):
            bound = dict(self.bound)
            bound[segment_name] = seg
            for name in context:
                before = self.message.preceding(seg, name)
                if before is not None:
                    bound[name] = before
            scopes.append(Hl7Scope(self.message, bound))
        return scopes


# ---------------------------------------------------------------------------------------------
# XML
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class XmlPath:
    """A compiled XPath; ``traced`` returns smart strings, so tracing can name an attribute's
    element (the untraced ``xpath`` skips that cost)."""

    xpath: etree.XPath
    text: str
    traced: etree.XPath | None = None


def compile_xml_path(text: str, namespaces: dict[str, str]) -> XmlPath:
    try:
        return XmlPath(etree.XPath(text, namespaces=namespaces, smart_strings=False), text,
                       etree.XPath(text, namespaces=namespaces, smart_strings=True))
    except etree.XPathSyntaxError as exc:
        raise ValueError(f"bad XPath '{text}': {exc}") from None


def element_path(element: Any) -> str:
    """Return a readable absolute path by local names: ``/dossier/vrouw/bsn``, ``item[2]`` when
    siblings share a name (used for lineage and coverage, not for error messages)."""
    steps = []
    while element is not None:
        tag = element.tag
        name = etree.QName(tag).localname if isinstance(tag, str) else "node()"
        parent = element.getparent()
        if parent is not None:
            same = [c for c in parent if c.tag == tag]
            if len(same) > 1:
                name += f"[{same.index(element) + 1}]"
        steps.append(name)
        element = parent
    return "/" + "/".join(reversed(steps))


def _string_location(found: Any, fallback: str) -> str:
    parent = getattr(found, "getparent", lambda: None)()
    if parent is None or not isinstance(parent.tag, str):
        return fallback
    if getattr(found, "is_attribute", False):
        return f"{element_path(parent)}/@{etree.QName(found.attrname).localname}"
    return f"{element_path(parent)}/text()"


class XmlNode:
    """An element, or a string an XPath returned (an attribute value)."""

    __slots__ = ("element", "value", "path")

    def __init__(self, element: Any, value: str | None = None, path: str = "") -> None:
        self.element = element
        self.value = value
        self.path = path

    def text(self) -> str:
        if self.value is not None:
            return self.value.strip()
        el = self.element
        for attr in ("value", "code", "extension"):
            found = el.get(attr)
            if found is not None:
                return found.strip()
        return (el.text or "").strip()

    def parts(self) -> list[str]:
        return [self.text()]

    def select(self, path: XmlPath, repeat: bool = False) -> list[XmlNode]:
        if self.element is None:
            return []
        # $here is the element the path starts from, so a path can join on it (XPath 1.0 has
        # no current()): //lichaamsgewicht[@id = $here/@value]
        result = path.xpath(self.element, here=self.element)
        return _xpath_nodes(result, repeat, lambda found: path.text)

    def location(self) -> str:
        if self.element is not None:
            return self.element.getroottree().getpath(self.element)
        return self.path

    def select_traced(self, path: XmlPath, repeat: bool = False) -> list[XmlNode]:
        """Select like :meth:`select`; a string result is located at its element's path."""
        if self.element is None or path.traced is None:
            return self.select(path, repeat)
        result = path.traced(self.element, here=self.element)
        return _xpath_nodes(result, repeat, lambda found: _string_location(found, path.text))


def _xpath_nodes(result: Any, repeat: bool, locate: Any) -> list[XmlNode]:
    """Nodes from an XPath result: elements, strings (attribute values) or one scalar.

    ``locate`` names where a string came from (for lineage); elements carry their own place.
    """
    if not isinstance(result, list):  # string(), concat(), count(), a comparison
        result = [result]
    nodes = []
    for found in result:
        if isinstance(found, str):
            if found.strip():
                nodes.append(XmlNode(None, str(found), locate(found)))
        elif isinstance(found, (bool, float)):
            nodes.append(XmlNode(None, str(found).lower(), locate(found)))
        else:
            nodes.append(XmlNode(found, None, locate(found)))
        if not repeat and nodes:
            break
    return nodes


class XmlScope(XmlNode):
    def each(self, path: XmlPath) -> list[XmlScope]:
        nodes = self.select(path, repeat=True)
        return [XmlScope(n.element) for n in nodes if n.element is not None]


# ---------------------------------------------------------------------------------------------
# Rows (CSV, Excel)
# ---------------------------------------------------------------------------------------------


def normalise_header(text: str) -> str:
    return re.sub(r"[\s_]+", " ", text.strip().lower())


@dataclass(frozen=True, slots=True)
class ColumnPath:
    alternatives: tuple[str, ...]
    text: str


def compile_column_path(text: str) -> ColumnPath:
    return ColumnPath(tuple(normalise_header(p) for p in text.split("|")), text)


class TextNode:
    __slots__ = ("value", "where")

    def __init__(self, value: str, where: str) -> None:
        self.value = value
        self.where = where

    def text(self) -> str:
        return self.value.strip()

    def parts(self) -> list[str]:
        return [self.value]

    def select(self, path: Any, repeat: bool = False) -> list[Node]:
        return []

    def location(self) -> str:
        return self.where


class RowScope:
    """One row; columns are found by normalised header, with alternatives."""

    __slots__ = ("row", "row_label")

    def __init__(self, row: dict[str, str], row_label: str) -> None:
        self.row = {normalise_header(k): v for k, v in row.items()}
        self.row_label = row_label

    def text(self) -> str:
        return ""

    def parts(self) -> list[str]:
        return []

    def location(self) -> str:
        return self.row_label

    def select(self, path: ColumnPath, repeat: bool = False) -> list[TextNode]:
        for name in path.alternatives:
            value = self.row.get(name)
            if value is not None and value.strip():
                return [TextNode(value, f"{self.row_label}, column '{name}'")]
        return []

    def has_column(self, path: ColumnPath) -> bool:
        return any(name in self.row for name in path.alternatives)
