"""Compile a profile's differential chain into a tree of per-element checks, once.

A Nictiz profile (``bc-Woman``) constrains another (``nl-core-patient``), which constrains the
STU3 core resource. The differentials are applied in that order onto one tree keyed by element
name and slice name, later (more specific) profiles overriding cardinality, fixed/pattern values,
bindings, types and slicing of the earlier ones (STU3 ElementDefinition §2.27.0.2). Elements that
constrain nothing a validator can check are pruned, so validation walks only what matters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from converters.validation import stu3model, valuesets

PROFILES_DIR = Path(__file__).resolve().parent.parent / "profiles"
CORE_PREFIX = "http://hl7.org/fhir/StructureDefinition/"


@dataclass(slots=True)
class Discriminator:
    """How an instance item is recognised as belonging to one slice."""

    kind: str  # "value", "pattern", "type", "exists", "url"
    path: tuple[str, ...]
    expected: Any = None
    codes: valuesets.CodeSet | None = None  # a value discriminator resolved through a binding


@dataclass(slots=True)
class Node:
    """The merged constraints on one element (or one slice of it) of a profile."""

    name: str  # JSON name; for choices the group name ("value" of value[x])
    path: str  # element path for findings, e.g. "Observation.code.coding"
    type_name: str  # FHIR type of the element; "" when a choice has several
    is_list: bool
    choices: dict[str, str] = field(default_factory=dict)  # JSON name -> type, for value[x]
    min: int = 0
    max: int | None = None
    base_min: int = 0
    base_max: int | None = None
    allowed_types: frozenset[str] | None = None
    fixed: Any = None
    pattern: Any = None
    binding: tuple[str, str] | None = None  # (strength, ValueSet URL)
    codes: valuesets.CodeSet | None = None
    target_profiles: tuple[str, ...] = ()
    type_profiles: tuple[str, ...] = ()  # data type profiles (nl-core-humanname, ...)
    extension_url: str = ""
    slicing: dict[str, Any] | None = None
    slices: dict[str, Node] = field(default_factory=dict)
    type_slices: dict[str, Node] = field(default_factory=dict)
    children: dict[str, Node] = field(default_factory=dict)
    discriminators: list[Discriminator] | None = None  # of a slice; None when undecidable
    is_type_slice: bool = False
    must_check_absent: bool = False  # an absent element still breaks a rule (min > 0 somewhere)

    def is_active(self) -> bool:
        """Say whether this node checks anything, itself or below."""
        return bool(
            self.min > self.base_min
            or (self.max is not None and self.max != self.base_max)
            or self.allowed_types is not None
            or self.fixed is not None
            or self.pattern is not None
            or self.binding
            or self.target_profiles
            or self.type_profiles
            or self.slices
            or self.type_slices
            or self.children
            or (self.slicing and self.slicing.get("rules") == "closed")
        )


@dataclass(slots=True)
class CompiledProfile:
    """A profile ready to validate against: its root node and what it cannot check."""

    url: str
    type_name: str
    root: Node
    chain: tuple[str, ...]  # this profile and the vendored profiles it derives from
    unchecked: list[str] = field(default_factory=list)
    restricted: dict[int, tuple[Node, set[str]]] = field(default_factory=dict)


class Library:
    """The vendored StructureDefinitions and ValueSets, loaded lazily by canonical URL."""

    def __init__(self, folder: Path = PROFILES_DIR) -> None:
        self.folder = folder
        self.index: dict[str, dict[str, str]] = json.loads((folder / "index.json").read_text())
        self.referenced_extensions: frozenset[str] = frozenset(
            json.loads((folder / "referenced-extensions.json").read_text())
        )
        self._resources: dict[str, dict[str, Any]] = {}
        self._codesets: dict[str, valuesets.CodeSet | None] = {}

    def resource(self, url: str) -> dict[str, Any] | None:
        """Return the vendored resource with this canonical URL, or None."""
        entry = self.index.get(url)
        if entry is None:
            return None
        if url not in self._resources:
            self._resources[url] = json.loads((self.folder / entry["file"]).read_text())
        return self._resources[url]

    def add(self, resource: dict[str, Any]) -> None:
        """Register an in-memory StructureDefinition or ValueSet (local or test profiles)."""
        url = resource["url"]
        self.index[url] = {
            "file": "", "resourceType": resource["resourceType"],
            "type": resource.get("type", ""), "kind": resource.get("kind", ""),
            "base": resource.get("baseDefinition", ""),
        }
        self._resources[url] = resource
        self._codesets.pop(url, None)

    def codeset(self, url: str) -> valuesets.CodeSet | None:
        """Return the enumerable content of a vendored ValueSet, or None when not vendored."""
        if url not in self._codesets:
            self._codesets[url] = valuesets.build(url, self.resource)
        return self._codesets[url]

    def profile_type(self, url: str) -> str:
        """Name the resource type a profile URL constrains ("" when unknown)."""
        if url.startswith(CORE_PREFIX) and url not in self.index:
            name = url[len(CORE_PREFIX):]
            return name if stu3model.is_known_type(name) else ""
        return self.index.get(url, {}).get("type", "")

    def is_extension(self, url: str) -> bool:
        """Say whether an extension URL is defined by a vendored or referenced definition."""
        entry = self.index.get(url)
        if entry is not None:
            return entry.get("type") == "Extension"
        # STU3 core extensions live under the core namespace; their definitions are not vendored.
        return url in self.referenced_extensions or url.startswith(CORE_PREFIX)


def compile_profile(library: Library, url: str) -> CompiledProfile | None:
    """Compile the profile at ``url``; ``None`` when it is not vendored."""
    chain = _chain(library, url)
    if not chain:
        return None
    type_name = chain[-1].get("type", "")
    compiled = CompiledProfile(url, type_name, _root(type_name), tuple(sd["url"] for sd in chain))
    base = chain[0].get("baseDefinition", "")
    if base and not base.startswith(CORE_PREFIX):
        compiled.unchecked.append(f"{url}: base profile {base} is not vendored")
    for sd in reversed(chain):
        for element in sd.get("differential", {}).get("element", []):
            _apply_element(library, compiled, element)
    for choice, types in compiled.restricted.values():
        if choice.allowed_types is None:
            choice.allowed_types = frozenset(types)
    compiled.restricted.clear()
    _finish(library, compiled, compiled.root)
    _prune(compiled.root)
    return compiled


def _chain(library: Library, url: str) -> list[dict[str, Any]]:
    """Return the StructureDefinitions from ``url`` down to the first non-vendored base."""
    chain: list[dict[str, Any]] = []
    seen: set[str] = set()
    while url and url not in seen:
        seen.add(url)
        sd = library.resource(url)
        if sd is None or sd.get("resourceType") != "StructureDefinition":
            break
        chain.append(sd)
        url = sd.get("baseDefinition", "")
    return chain


def _root(type_name: str) -> Node:
    return Node(type_name, type_name, type_name, False, min=1, base_min=1, max=1, base_max=1)


@cache
def _elements_of(type_name: str) -> dict[str, stu3model.ElementInfo]:
    """Elements of a type; primitives have only ``id`` and ``extension`` (STU3 §2.1.28.0)."""
    if type_name in stu3model.PRIMITIVE_TYPES:
        return {
            "id": stu3model.ElementInfo("id", False, "string", True, 0, ""),
            "extension": stu3model.ElementInfo("extension", True, "Extension", False, 0, ""),
        }
    if not type_name or not stu3model.is_known_type(type_name):
        return {}
    return stu3model.elements(type_name)


def _segments(element: dict[str, Any]) -> list[tuple[str, str | None]]:
    """Split an element id (``Patient.identifier:BSN.system``) into (name, slice) pairs."""
    names = element["path"].split(".")
    tokens = element.get("id", element["path"]).split(".")
    segments: list[tuple[str, str | None]] = []
    for token in tokens:
        name, _, slice_name = token.partition(":")
        if len(segments) < len(names) and _same_element(name, names[len(segments)]):
            segments.append((name, slice_name or None))
        else:  # a slice name with a dot in it
            last_name, last_slice = segments[-1]
            segments[-1] = (last_name, f"{last_slice}.{token}")
    return segments


def _same_element(id_name: str, path_name: str) -> bool:
    """Match an id segment to a path segment; either may spell a choice as ``value[x]``."""
    if id_name == path_name:
        return True
    for short, full in ((id_name, path_name), (path_name, id_name)):
        if short.endswith("[x]") and full.startswith(short[:-3]):
            return True
    return False


def _locate(root: Node, segments: list[tuple[str, str | None]]
            ) -> tuple[Node | None, Node | None]:
    """Find or create the node for an element id; None when the path is not in the model.

    Also return the choice element when the id ends on one of its types (``value[x]:valueX``
    or a renamed ``valueX``): STU3 profiles restrict a choice to its types that way.
    """
    node: Node | None = root
    choice: Node | None = None
    for name, slice_name in segments[1:]:
        parent = node
        node = _child(parent, name)  # type: ignore[arg-type]
        if node is None:
            return None, None
        group = node
        if slice_name:
            node = _slice(node, slice_name)
        choice = parent.children.get(group.name) if node.is_type_slice else None  # type: ignore
    return node, choice


def _child(parent: Node, name: str) -> Node | None:
    """Return the child node for ``name``, creating it from the STU3 model when needed."""
    known = _elements_of(parent.type_name)
    group, type_suffix = name, ""
    if name.endswith("[x]"):
        group = name[:-3]
    elif name in known and known[name].choice:
        group, type_suffix = known[name].choice, known[name].type_name
    node = parent.children.get(group)
    if node is None:
        node = _new_child(parent, group, known)
        if node is None:
            return None
        parent.children[group] = node
    return _type_slice(node, type_suffix) if type_suffix else node


def _new_child(parent: Node, group: str, known: dict[str, stu3model.ElementInfo]) -> Node | None:
    info = known.get(group)
    if info is not None and not info.choice:
        return Node(
            group, f"{parent.path}.{group}", info.type_name, info.is_list,
            min=info.min, base_min=info.min,
            max=None if info.is_list else 1, base_max=None if info.is_list else 1,
        )
    choices = {n: i.type_name for n, i in known.items() if i.choice == group}
    if not choices:
        return None
    only = next(iter(choices.values())) if len(choices) == 1 else ""
    return Node(group, f"{parent.path}.{group}[x]", only, False, choices, max=1, base_max=1)


def _type_slice(node: Node, type_name: str) -> Node:
    """Return the node holding constraints on one type of a choice (``value[x]:valueQuantity``)."""
    if type_name not in node.type_slices:
        node.type_slices[type_name] = Node(
            node.name, node.path, type_name, False, max=1, base_max=1, is_type_slice=True
        )
    return node.type_slices[type_name]


def _slice(node: Node, slice_name: str) -> Node:
    if node.is_type_slice:  # valueReference:valueReference names the same type twice
        return node
    if node.choices:
        for json_name, type_name in node.choices.items():
            if json_name == slice_name:
                return _type_slice(node, type_name)
    if slice_name not in node.slices:
        node.slices[slice_name] = Node(
            node.name, f"{node.path}:{slice_name}", node.type_name, node.is_list,
            max=node.base_max, base_max=node.base_max,
        )
    return node.slices[slice_name]


def _apply_element(library: Library, compiled: CompiledProfile, element: dict[str, Any]) -> None:
    """Merge one differential element onto its node (later profiles override earlier ones)."""
    node, choice = _locate(compiled.root, _segments(element))
    if choice is not None and not element["path"].endswith("[x]"):  # renamed: valueReference
        compiled.restricted.setdefault(id(choice), (choice, set()))[1].add(node.type_name)
    if node is None:
        compiled.unchecked.append(f"{compiled.url}: element {element.get('id')} is not in STU3")
        return
    if "min" in element:
        node.min = int(element["min"])
    if "max" in element:
        node.max = None if element["max"] == "*" else int(element["max"])
    for key, value in element.items():
        if key.startswith("fixed"):
            node.fixed = value
        elif key.startswith("pattern"):
            node.pattern = value
    if "binding" in element:
        _apply_binding(node, element["binding"])
    if "type" in element:
        _apply_types(node, element["type"])
    if "slicing" in element:
        node.slicing = element["slicing"]
    for constraint in element.get("constraint", []):
        compiled.unchecked.append(
            f"{compiled.url}: invariant {constraint.get('key')} on {element['id']} "
            "(FHIRPath/XPath invariants are not evaluated)"
        )
    if "contentReference" in element:
        compiled.unchecked.append(f"{compiled.url}: contentReference on {element['id']}")


def _apply_binding(node: Node, binding: dict[str, Any]) -> None:
    reference = binding.get("valueSetReference", {}).get("reference") or binding.get("valueSetUri")
    strength = binding.get("strength", "")
    node.binding = (strength, reference) if reference and strength in (
        "required", "extensible") else None


def _apply_types(node: Node, types: list[dict[str, Any]]) -> None:
    codes = frozenset(t["code"] for t in types if "code" in t)
    if node.choices:
        node.allowed_types = codes
        if len(codes) == 1:
            node.type_name = next(iter(codes))
    elif len(codes) == 1 and not node.type_name:
        node.type_name = next(iter(codes))
    references = [t for t in types if t.get("code") == "Reference"]
    if references:
        # One Reference type without targetProfile allows any target (STU3 ElementDefinition.type).
        open_target = any(not t.get("targetProfile") for t in references)
        node.target_profiles = () if open_target else tuple(t["targetProfile"] for t in references)
    profiles = tuple(t["profile"] for t in types if t.get("profile"))
    if "Extension" in codes and profiles:
        node.extension_url = profiles[0]
    elif profiles:
        node.type_profiles = profiles


def _finish(library: Library, compiled: CompiledProfile, node: Node) -> None:
    """Resolve value sets and slice discriminators once every differential is merged."""
    if node.binding:
        node.codes = library.codeset(node.binding[1])
        if node.codes is None:
            compiled.unchecked.append(
                f"{compiled.url}: {node.binding[0]} binding on {node.path} to ValueSet "
                f"{node.binding[1]}, which is not vendored"
            )
        elif node.codes.open_parts:
            compiled.unchecked.append(
                f"{compiled.url}: {node.binding[0]} binding on {node.path} to ValueSet "
                f"{node.binding[1]}: codes outside its enumeration are undecided "
                f"({'; '.join(node.codes.open_parts)})"
            )
    for slice_node in node.slices.values():
        slice_node.discriminators = _discriminators(library, node, slice_node)
        if slice_node.discriminators is None:
            compiled.unchecked.append(
                f"{compiled.url}: slice {slice_node.path}: its discriminator cannot be evaluated "
                "here; its cardinality is not checked"
            )
    node.must_check_absent = node.min > 0 or any(
        s.min > 0 for s in (*node.slices.values(), *node.type_slices.values())
    )
    for child in (*node.children.values(), *node.slices.values(), *node.type_slices.values()):
        _finish(library, compiled, child)


def _discriminators(library: Library, sliced: Node, slice_node: Node) -> list[Discriminator] | None:
    """Turn the slicing discriminators into matchers for one slice; None when undecidable."""
    result = []
    # Without a discriminator (an extension slice declared bare), the extension URL decides.
    declared = (sliced.slicing or {}).get("discriminator", [])
    for disc in declared or [{"type": "value", "path": "url"}]:
        kind, path = disc.get("type", "value"), disc.get("path", "$this")
        if kind == "value" and path == "url" and slice_node.extension_url:
            result.append(Discriminator("url", ("url",), slice_node.extension_url))
            continue
        if kind in ("profile",) or "resolve()" in path:
            return None
        parts = () if path == "$this" else tuple(path.split("."))
        target = _descend(slice_node, parts)
        if target is None:
            return None
        if kind == "type":
            if not target.type_name:
                return None
            result.append(Discriminator("type", parts, target.type_name))
        elif kind == "exists":
            result.append(Discriminator("exists", parts, target.min > 0))
        elif target.fixed is not None or target.pattern is not None:
            exact = target.fixed if target.fixed is not None else target.pattern
            result.append(Discriminator(kind if target.fixed is None else "value", parts, exact))
        elif target.binding and target.binding[0] == "required":
            codes = library.codeset(target.binding[1])
            if codes is None or codes.open_parts:
                return None
            result.append(Discriminator("value", parts, None, codes))
        else:
            return None
    return result


def _descend(node: Node, parts: tuple[str, ...]) -> Node | None:
    for part in parts:
        node = node.children.get(part)  # type: ignore[assignment]
        if node is None:
            return None
    return node


def _prune(node: Node) -> None:
    """Drop children and slices that check nothing: the walk then skips them entirely."""
    for table in (node.children, node.type_slices):
        for key in list(table):
            _prune(table[key])
            if not table[key].is_active():
                del table[key]
    for slice_node in node.slices.values():
        _prune(slice_node)
