"""Validate FHIR STU3 resources against the vendored Nictiz profiles (Babyconnect ``bc-*``).

Each profile in ``meta.profile`` is compiled once (see :mod:`compiler`) into a tree of checks;
a resource is then walked along that tree only. Structure (known elements, repetition, primitive
formats, base cardinality) is checked by :mod:`structure`; extension URLs anywhere in the resource
are checked in that same pass. Findings name the rule, the element path and the profile; their
messages may quote codes, systems and URLs from the profile, never values from the resource.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from converters.validation import structure
from converters.validation.compiler import (
    CORE_PREFIX,
    CompiledProfile,
    Library,
    Node,
    compile_profile,
)

Resolver = Callable[[str], "dict[str, Any] | None"]

RULES = (
    "structure", "cardinality", "fixed", "pattern", "binding", "slice", "extension", "reference",
    "unknown-profile",
)
# A literal reference [base/]Type/id[/_history/v], or a conditional one Type?query (STU3 §2.3.0.1).
_REFERENCE = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)(?:/[A-Za-z0-9\-.]{1,64}(?:/_history/[^/]+)?$|\?)")


@dataclass(frozen=True, slots=True)
class Finding:
    """One broken rule: where (resource, profile, path), which rule, and how bad."""

    resource: str
    profile: str
    path: str
    rule: str
    message: str
    severity: str = "error"

    def as_dict(self) -> dict[str, str]:
        """Return the finding as a plain dict (for JSON output and ``ValidationFailed``)."""
        return {
            "resource": self.resource,
            "profile": self.profile,
            "path": self.path,
            "rule": self.rule,
            "message": self.message,
            "severity": self.severity,
        }


class _Run:
    """The state of one resource's validation: where findings go and how to resolve targets."""

    __slots__ = ("label", "profile", "findings", "resolve", "in_extension", "unchecked")

    def __init__(self, label: str, resolve: Resolver | None, unchecked: Counter[str]) -> None:
        self.label = label
        self.profile = ""
        self.findings: list[Finding] = []
        self.resolve = resolve
        self.in_extension = False
        self.unchecked = unchecked

    def add(self, path: str, rule: str, message: str, severity: str = "error") -> None:
        if self.in_extension and rule in ("cardinality", "fixed", "pattern", "slice"):
            rule = "extension"
        self.findings.append(Finding(self.label, self.profile, path, rule, message, severity))


class ProfileValidator:
    """Validates resources against every profile they claim in ``meta.profile``."""

    _default: ProfileValidator | None = None
    _default_lock = threading.Lock()

    def __init__(self, library: Library | None = None, *, structure_mode: str = "fast") -> None:
        if structure_mode not in ("fast", "pydantic"):
            raise ValueError("structure_mode must be 'fast' or 'pydantic'")
        self.library = library or Library()
        self.structure_mode = structure_mode
        self._compiled: dict[str, CompiledProfile | None] = {}
        self._lock = threading.Lock()
        self.unchecked_hits: Counter[str] = Counter()

    @classmethod
    def default(cls) -> ProfileValidator:
        """Return the shared validator over the vendored profiles (loaded once per process)."""
        with cls._default_lock:
            if cls._default is None:
                cls._default = cls()
            return cls._default

    def profile(self, url: str) -> CompiledProfile | None:
        """Return the compiled profile for a canonical URL (None when not vendored)."""
        if url not in self._compiled:
            with self._lock:
                if url not in self._compiled:
                    self._compiled[url] = compile_profile(self.library, url)
        return self._compiled[url]

    def validate(self, resource: dict[str, Any], resolve: Resolver | None = None) -> list[Finding]:
        """Validate one resource: structure, then each profile in ``meta.profile``."""
        return self._validate(resource, resolve, _label(resource, None))

    def validate_bundle(self, bundle: dict[str, Any]) -> list[Finding]:
        """Validate a Bundle and each entry's resource, resolving references inside the Bundle."""
        resolve = _bundle_resolver(bundle)
        findings = self._validate(bundle, None, _label(bundle, None))
        for index, entry in enumerate(bundle.get("entry") or []):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(resource, dict):
                findings.extend(self._validate(resource, resolve, _label(resource, index)))
        return findings

    def unchecked(self) -> list[str]:
        """List every rule of the vendored profiles that this validator cannot check."""
        rules: list[str] = []
        for url, entry in sorted(self.library.index.items()):
            if entry.get("resourceType") == "StructureDefinition":
                compiled = self.profile(url)
                if compiled is not None:
                    rules.extend(compiled.unchecked)
        return sorted(set(rules))

    def _validate(self, resource: dict[str, Any], resolve: Resolver | None, label: str
                  ) -> list[Finding]:
        run = _Run(label, resolve, self.unchecked_hits)
        type_name = resource.get("resourceType", "")
        problems, extensions = structure.scan(resource, self.structure_mode)
        for path, message in problems:
            run.add(path, "structure", message)
        self._check_extensions(run, extensions)
        for url, compiled in self._profiles_of(resource):
            run.profile = url
            if compiled is None:
                if not self._is_core_profile(url, type_name):
                    run.add(type_name, "unknown-profile",
                            "profile is not vendored: its rules were not checked", "warning")
                    run.unchecked[f"unknown profile {url}"] += 1
            elif compiled.type_name != type_name:
                run.add(type_name, "unknown-profile",
                        f"profile constrains {compiled.type_name}, not {type_name}")
            else:
                _walk(self, run, compiled.root, resource, type_name)
        return _distinct(run.findings)

    def _profiles_of(self, resource: dict[str, Any]) -> list[tuple[str, CompiledProfile | None]]:
        """Compile the claimed profiles, dropping those another claimed profile derives from.

        ``bc-Woman`` merges the differential of ``nl-core-patient``, so validating against both
        would check (and report) the same rules twice.
        """
        urls = [u for u in (resource.get("meta") or {}).get("profile") or [] if isinstance(u, str)]
        compiled = [(url, self.profile(url)) for url in urls]
        if len(compiled) < 2:
            return compiled
        inherited = {a for _u, c in compiled if c is not None for a in c.chain[1:]}
        return [(url, c) for url, c in compiled if url not in inherited]

    def _is_core_profile(self, url: Any, type_name: str) -> bool:
        return isinstance(url, str) and url == CORE_PREFIX + type_name

    def _check_extensions(self, run: _Run, extensions: list[tuple[str, dict[str, Any]]]) -> None:
        """Check every extension in the resource: URL known, value as its definition says."""
        for path, extension in extensions:
            url = extension.get("url")
            if not isinstance(url, str) or not _is_absolute(url):
                continue  # relative URLs name parts of a complex extension, checked with it
            if not self.library.is_extension(url):
                run.profile = ""
                run.add(path, "extension", f"unknown extension {url}")
                continue
            compiled = self.profile(url)
            if compiled is None:
                run.unchecked[f"extension {url}: definition not vendored, value not checked"] += 1
                continue
            run.profile, run.in_extension = url, True
            _walk(self, run, compiled.root, extension, path)
            run.in_extension = False
        run.profile = ""


def _distinct(findings: list[Finding]) -> list[Finding]:
    """Keep the first of findings that report the same rule at the same place.

    A declared extension is checked against its own definition and against the slice of the
    profile that declares it; both would report a wrong value type.
    """
    seen: set[tuple[str, str, str]] = set()
    result = []
    for finding in findings:
        key = (finding.path, finding.rule, finding.message)
        if key not in seen:
            seen.add(key)
            result.append(finding)
    return result


def _walk(validator: ProfileValidator, run: _Run, node: Node, obj: dict[str, Any], path: str
          ) -> None:
    """Check the children of ``node`` against the matching parts of ``obj``."""
    for child in node.children.values():
        if child.choices:
            present = not child.choices.keys().isdisjoint(obj)
        else:
            present = child.name in obj or "_" + child.name in obj
        if present or child.must_check_absent:
            _element(validator, run, child, _items(obj, child) if present else [], path)


def _items(obj: dict[str, Any], node: Node) -> list[tuple[str, Any, Any, str]]:
    """Collect (json name, value, shadow, type) of an element, one per repetition."""
    if node.choices:
        choices = node.choices
        return [  # iterate the (few) keys of the object, not the (many) types of the choice
            (key, value, obj.get("_" + key), choices[key])
            for key, value in obj.items() if key in choices
        ]
    value, shadow = obj.get(node.name), obj.get("_" + node.name)
    if value is None and shadow is None:
        return []
    if not node.is_list:
        return [(node.name, value, shadow, node.type_name)]
    values = value if isinstance(value, list) else [value]
    shadows = shadow if isinstance(shadow, list) else []
    if not values and shadows:
        values = [None] * len(shadows)
    return [
        (node.name, v, shadows[i] if i < len(shadows) else None, node.type_name)
        for i, v in enumerate(values)
    ]


def _element(validator: ProfileValidator, run: _Run, node: Node,
             items: list[tuple[str, Any, Any, str]], path: str) -> None:
    """Check one element: cardinality, each repetition, then its slices."""
    where = f"{path}.{node.name}" + ("[x]" if node.choices else "")
    _cardinality(run, node, len(items), where)
    paths = [
        f"{path}.{name}[{i}]" if node.is_list else f"{path}.{name}"
        for i, (name, _v, _s, _t) in enumerate(items)
    ]
    for item, item_path in zip(items, paths, strict=True):
        _item(validator, run, node, item, item_path)
        if node.type_slices:
            type_slice = node.type_slices.get(item[3])
            if type_slice is not None:
                _item(validator, run, type_slice, item, item_path)
    for type_name, type_slice in node.type_slices.items():
        if type_slice.min and not any(item[3] == type_name for item in items):
            run.add(where, "cardinality", f"{node.name}{type_name[0].upper()}{type_name[1:]} "
                    f"required (min {type_slice.min}), absent")
    if node.slices:
        _slices(validator, run, node, items, paths, where)


def _cardinality(run: _Run, node: Node, count: int, where: str) -> None:
    if count < node.min:
        run.add(where, "cardinality", f"at least {node.min} required, {count} present")
    elif node.max is not None and count > node.max:
        run.add(where, "cardinality", f"at most {node.max} allowed, {count} present")


def _item(validator: ProfileValidator, run: _Run, node: Node, item: tuple[str, Any, Any, str],
          path: str) -> None:
    """Check one repetition of an element against the node's own constraints and children."""
    _name, value, shadow, type_name = item
    if node.allowed_types is not None and type_name not in node.allowed_types:
        in_extension = run.in_extension or ".extension" in node.path
        rule = "extension" if in_extension else "cardinality"
        run.add(path, rule, f"type {type_name} is not allowed here "
                f"(allowed: {', '.join(sorted(node.allowed_types))})")
        return
    if node.fixed is not None and value is not None and not _matches(value, node.fixed, True):
        run.add(path, "fixed", f"must be the fixed value {_show(node.fixed)}")
    if node.pattern is not None and value is not None and not _matches(value, node.pattern, False):
        run.add(path, "pattern", f"must match the pattern {_show(node.pattern)}")
    if node.binding and value is not None:
        _binding(run, node, value, type_name, path)
    if node.target_profiles and isinstance(value, dict):
        _reference(validator, run, node, value, path)
    if node.type_profiles and isinstance(value, dict):
        _type_profiles(validator, run, node, value, path)
    if node.children:
        target = value if isinstance(value, dict) else shadow if isinstance(shadow, dict) else {}
        _walk(validator, run, node, target, path)


def _slices(validator: ProfileValidator, run: _Run, node: Node,
            items: list[tuple[str, Any, Any, str]], paths: list[str], where: str) -> None:
    """Assign each repetition to its slice, then check slice cardinality, content and closure."""
    decidable = all(s.discriminators is not None for s in node.slices.values())
    members: dict[str, list[int]] = {name: [] for name in node.slices}
    unmatched: list[int] = []
    for index, item in enumerate(items):
        name = _slice_of(node, item[1]) if decidable else None
        if name is None:
            unmatched.append(index)
        else:
            members[name].append(index)
    if not decidable:
        run.unchecked[f"slices of {node.path}: discriminator not evaluable"] += 1
        return
    for name, slice_node in node.slices.items():
        count = len(members[name])
        if count < slice_node.min or (slice_node.max is not None and count > slice_node.max):
            bounds = f"{slice_node.min}..{'*' if slice_node.max is None else slice_node.max}"
            run.add(f"{where}:{name}", "slice",
                    f"{count} repetitions match slice {name} ({_describe(slice_node)}), "
                    f"allowed {bounds}")
        for index in members[name]:
            _item(validator, run, slice_node, items[index], paths[index])
    if (node.slicing or {}).get("rules") == "closed":
        rule = "extension" if node.name in ("extension", "modifierExtension") else "slice"
        for index in unmatched:
            run.add(paths[index], rule, "matches no slice and the slicing is closed")


def _describe(slice_node: Node) -> str:
    """Say what a slice's discriminators require, from the profile's own values."""
    parts = [
        f"{'.'.join(d.path) or '$this'}={_show(d.expected) if d.codes is None else d.codes.url}"
        for d in slice_node.discriminators or ()
    ]
    return ", ".join(parts)


def _slice_of(node: Node, value: Any) -> str | None:
    """Name the first slice whose discriminators all match ``value``."""
    for name, slice_node in node.slices.items():
        if all(_discriminates(d, value) for d in slice_node.discriminators or ()):
            return name
    return None


def _discriminates(disc: Any, value: Any) -> bool:
    found = _values_at(value, disc.path)
    if disc.kind == "exists":
        return bool(found) == disc.expected
    if disc.kind == "type":
        return True  # type slices of choices are handled as type_slices
    if disc.codes is not None:
        return any(_coded_in(v, disc.codes) for v in found)
    exact = disc.kind in ("value", "url")
    return any(_matches(v, disc.expected, exact) for v in found)


def _values_at(value: Any, path: tuple[str, ...]) -> list[Any]:
    current = [value]
    for part in path:
        nxt: list[Any] = []
        for v in current:
            if isinstance(v, dict) and part in v:
                got = v[part]
                nxt.extend(got if isinstance(got, list) else [got])
        current = nxt
    return current


def _matches(value: Any, expected: Any, exact: bool) -> bool:
    """Compare a value with a fixed (``exact``) or pattern value (STU3 ElementDefinition.fixed[x]).

    A complex fixed value is compared on the properties it states, like a pattern: Nictiz uses
    ``fixedCoding``-style constraints only with system and code.
    """
    if isinstance(expected, dict):
        if not isinstance(value, dict):
            return False
        return all(k in value and _matches(value[k], v, exact) for k, v in expected.items())
    if isinstance(expected, list):
        if not isinstance(value, list):
            return False
        return all(any(_matches(v, e, exact) for v in value) for e in expected)
    return value == expected


def _show(expected: Any) -> str:
    """Render a fixed/pattern value of a profile for a message (profile text, no patient data)."""
    if isinstance(expected, dict):
        codings = expected.get("coding") or ([expected] if "code" in expected else [])
        if codings:
            return ", ".join(f"{c.get('system', '')}|{c.get('code', '')}" for c in codings)
        return ", ".join(f"{k}={_show(v)}" for k, v in expected.items())
    return str(expected)


def _codings(value: Any, type_name: str) -> list[tuple[str | None, str]]:
    if type_name == "code" and isinstance(value, str):
        return [(None, value)]
    if not isinstance(value, dict):
        return []
    if type_name == "CodeableConcept":
        return [
            (c.get("system"), c["code"]) for c in value.get("coding") or []
            if isinstance(c, dict) and isinstance(c.get("code"), str)
        ]
    if isinstance(value.get("code"), str):
        return [(value.get("system"), value["code"])]
    return []


def _coded_in(value: Any, codes: Any) -> bool:
    if isinstance(value, str):
        return codes.contains(None, value) is True
    pairs = _codings(value, "CodeableConcept" if "coding" in value else "Coding")
    return any(codes.contains(s, c) is True for s, c in pairs)


def _binding(run: _Run, node: Node, value: Any, type_name: str, path: str) -> None:
    """Check a required or extensible binding (STU3 §4.1.0.1 / ElementDefinition.binding)."""
    strength, url = node.binding  # type: ignore[misc]
    if type_name not in ("code", "Coding", "CodeableConcept", "Quantity"):
        return
    if node.codes is None:
        run.unchecked[f"binding to ValueSet {url}: not vendored"] += 1
        return
    pairs = _codings(value, type_name)
    if strength == "extensible" and (not pairs or _dictated(node, value)):
        return  # extensible allows text only, and a profile may pin a code outside the set
    verdicts = [node.codes.contains(system, code) for system, code in pairs]
    if any(v is True for v in verdicts):
        return
    if any(v is None for v in verdicts):
        run.unchecked[f"binding to ValueSet {url}: code outside its enumerated part"] += 1
        return
    listed = ", ".join(f"{s}|{c}" if s else c for s, c in pairs) or "no code"
    if strength == "required":
        run.add(path, "binding", f"{listed} not in required ValueSet {url}")
    else:
        run.add(path, "binding", f"{listed} not in extensible ValueSet {url}", "warning")


def _dictated(node: Node, value: Any) -> bool:
    """Say whether the profile itself pins the code (a pattern, or a matched coding slice)."""
    if node.pattern is not None or node.fixed is not None:
        return True
    coding = node.children.get("coding")
    if coding is None or not isinstance(value, dict):
        return False
    if coding.pattern is not None or coding.fixed is not None:
        return True
    return bool(coding.slices) and any(
        _slice_of(coding, c) is not None for c in value.get("coding") or []
    ) and all(s.discriminators is not None for s in coding.slices.values())


def _reference(validator: ProfileValidator, run: _Run, node: Node, value: dict[str, Any],
               path: str) -> None:
    """Check a reference's target type and, when it can be resolved, its declared profile."""
    reference = value.get("reference")
    if not isinstance(reference, str) or reference.startswith("#"):
        return
    library = validator.library
    allowed = {library.profile_type(url) for url in node.target_profiles}
    if "" in allowed or "Resource" in allowed:
        return
    target = run.resolve(reference) if run.resolve else None
    if target is not None:
        target_type = target.get("resourceType", "")
    else:
        match = _REFERENCE.search(reference)
        if match is None:
            run.unchecked["reference target type not evaluable (urn or unresolved)"] += 1
            return
        target_type = match.group(1)
    if target_type not in allowed:
        run.add(path, "reference",
                f"refers to a {target_type}; allowed: {', '.join(sorted(allowed))}")
        return
    if target is not None:
        _target_profile(validator, run, node, target, target_type, path)


def _target_profile(validator: ProfileValidator, run: _Run, node: Node, target: dict[str, Any],
                    target_type: str, path: str) -> None:
    # Only the profiles on the target's own type constrain it: Reference(EpisodeOfCare |
    # zib-Encounter) accepts any EpisodeOfCare (STU3 ElementDefinition.type.targetProfile).
    same_type = [u for u in node.target_profiles
                 if validator.library.profile_type(u) == target_type]
    if any(u.startswith(CORE_PREFIX) for u in same_type):
        return
    wanted = same_type
    if not wanted:
        return
    declared: set[str] = set()
    for url in (target.get("meta") or {}).get("profile") or []:
        compiled = validator.profile(url) if isinstance(url, str) else None
        declared.update(compiled.chain if compiled else (url,))
    if not declared.intersection(wanted):
        run.add(path, "reference", f"target does not declare profile {' or '.join(wanted)}")


def _type_profiles(validator: ProfileValidator, run: _Run, node: Node, value: dict[str, Any],
                   path: str) -> None:
    """Check a data type value against the data type profile its element requires."""
    for url in node.type_profiles:
        compiled = validator.profile(url)
        if compiled is None:
            run.unchecked[f"data type profile {url}: not vendored"] += 1
            continue
        _walk(validator, run, compiled.root, value, path)


def _is_absolute(url: str) -> bool:
    return url.startswith(("http://", "https://", "urn:"))


def _label(resource: dict[str, Any], index: int | None) -> str:
    """Name a resource by type and id (technical ids only), or by its position in a Bundle."""
    type_name = resource.get("resourceType", "Resource")
    if resource.get("id"):
        return f"{type_name}/{resource['id']}"
    return f"{type_name}#{index if index is not None else 0}"


def _bundle_resolver(bundle: dict[str, Any]) -> Resolver:
    """Resolve references to Bundle entries by fullUrl (``urn:uuid:``) or ``Type/id``."""
    by_reference: dict[str, dict[str, Any]] = {}
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue
        if entry.get("fullUrl"):
            by_reference[entry["fullUrl"]] = resource
        if resource.get("id"):
            by_reference[f"{resource.get('resourceType')}/{resource['id']}"] = resource
    return by_reference.get
