"""Load, check and compile the mapping tables under ``mappings/``.

Four layers, each a kind of YAML file a mapping author can read top to bottom:
message map (which resources a record produces) -> resource map (one rule per target element)
-> datatype map (reusable rules for CX, XPN, CWE...) -> code table (plain rows).
Every file is checked against ``mappings/schema/mapping.schema.json`` and every cross-reference
(a datatype, a code table, a resource map, an alias, a source path) is resolved when loading, so
a wrong name fails at ``babyconnect lint`` with the file, line and key, not in the middle of a run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from converters.mapping import sources
from converters.mapping.dutch import NODE_TRANSFORM_FUNCTIONS
from converters.mapping.targetpath import Step, compile_path
from converters.mapping.transforms import TEXT_TRANSFORMS
from converters.mapping.yamlfile import KeyPath, YamlDocument, check_schema, load_yaml

DEFAULT_MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"


@dataclass(frozen=True, slots=True)
class Condition:
    op: str
    path: Any = None
    value: Any = None
    children: tuple[Condition, ...] = ()


@dataclass(slots=True)
class Rule:
    target: tuple[Step, ...]
    target_text: str
    origin: str
    source: Any = None
    source_text: str = ""
    constant: Any = None
    has_constant: bool = False
    reference: str | None = None
    repeat: bool = False
    datatype: str | None = None
    transform: str | None = None
    codes: str | None = None
    translate: str | None = None
    when: Condition | None = None
    required: bool = False
    key: Any = None  # with reference (XML): the target's key, read from the source


@dataclass(slots=True)
class CodeRow:
    system: str | None
    code: str | None
    display: str | None
    value: Any
    unit: str | None = None

    def coding(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.system:
            out["system"] = self.system
        if self.code is not None:
            out["code"] = self.code
        if self.display:
            out["display"] = self.display
        return out


@dataclass(slots=True)
class CodeTable:
    name: str
    file: str
    source_system: str | None
    rows: dict[tuple[str | None, str], CodeRow]
    default: CodeRow | None = None
    scalar: bool = False
    target_system: str | None = None
    strict: bool = False  # an unknown code is refused (Reject "unknown-code"), not kept

    def lookup(self, code: str, system: str | None = None) -> CodeRow | None:
        key = code.strip().lower()
        return self.rows.get((system, key)) or self.rows.get((None, key))


@dataclass(slots=True)
class Produce:
    alias: str
    map_name: str
    for_each: Any = None
    for_each_text: str = ""
    context: tuple[str, ...] = ()
    when: Condition | None = None
    optional: bool = False
    always: bool = False  # produced from constants and references alone (an inferred resource)
    origin: str = ""
    key: Any = None  # XML: names each resource of the alias, for keyed references
    write: str | None = None  # "update" or "create-if-absent"; overrides the resource map
    refuse: Condition | None = None  # an occurrence the source gets wrong: not produced, reported
    refuse_issue: str = ""


@dataclass(slots=True)
class ResourceMap:
    name: str
    file: str
    resource_type: str
    profiles: tuple[str, ...]
    rules: list[Rule]
    identifier_systems: tuple[str, ...] = ()
    identity_from: tuple[Any, ...] = ()
    identity_with: tuple[str, ...] = ()
    conditional: bool | None = None
    source: str = "any"


@dataclass(slots=True)
class MessageMap:
    name: str
    file: str
    source: str
    message_types: frozenset[str]
    kinds: frozenset[str]
    template_ids: frozenset[str]
    headers: tuple[str, ...]
    produce: list[Produce]
    namespaces: dict[str, str] = field(default_factory=dict)
    scope: Any = None


@dataclass(slots=True)
class MappingSet:
    """All tables of one mappings folder, compiled and cross-checked."""

    root: Path
    messages: list[MessageMap]
    resources: dict[str, ResourceMap]
    datatypes: dict[str, list[Rule]]
    codes: dict[str, CodeTable]
    version: str
    files: list[str]
    tests: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)


def load_mappings(root: Path | None = None) -> MappingSet:
    """Load every ``*.yaml`` under ``root``; raise MappingTableError on the first problem."""
    root = (root or DEFAULT_MAPPINGS).resolve()
    paths = sorted(p for p in root.rglob("*.yaml") if "schema" not in p.relative_to(root).parts)
    digest = hashlib.sha256()
    docs = []
    for path in paths:
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
        doc = load_yaml(path, _display(path))
        check_schema(doc)
        docs.append(doc)
    builder = _Builder(root)
    for doc in docs:
        builder.add(doc)
    mapping_set = builder.finish(version=digest.hexdigest()[:12])
    mapping_set.files = [d.file for d in docs]
    return mapping_set


def _display(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


class _Builder:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.messages: list[MessageMap] = []
        self.resources: dict[str, ResourceMap] = {}
        self.datatypes: dict[str, list[Rule]] = {}
        self.codes: dict[str, CodeTable] = {}
        self.names: dict[str, str] = {}
        self.pending: list[tuple[YamlDocument, KeyPath, str, str]] = []
        self.docs: list[YamlDocument] = []
        self.tests: list[tuple[str, int, dict[str, Any]]] = []

    def add(self, doc: YamlDocument) -> None:
        self.docs.append(doc)
        data = doc.data
        name = data["name"]
        kind = data["kind"]
        if (kind, name) in self.names:
            raise doc.error(("name",), f"name '{name}' is already used by {self.names[kind, name]}")
        self.names[kind, name] = doc.file
        for index, test in enumerate(data.get("tests", [])):
            self.tests.append((doc.file, doc.line(("tests", index)) or 1, test))
        getattr(self, f"_add_{kind}")(doc)

    # -- the four kinds -----------------------------------------------------------------------

    def _add_codes(self, doc: YamlDocument) -> None:
        data = doc.data
        rows: dict[tuple[str | None, str], CodeRow] = {}
        target_system = data.get("target_system")
        for index, row in enumerate(data["rows"]):
            key = (row.get("source_system"), str(row["source"]).strip().lower())
            if key in rows:
                raise doc.error(("rows", index, "source"), "this source code is listed twice")
            rows[key] = _code_row(row, target_system)
        default = _code_row(data["default"], target_system) if "default" in data else None
        scalar = any(r.value is not None for r in rows.values())
        self.codes[data["name"]] = CodeTable(
            data["name"], doc.file, data.get("source_system"), rows, default, scalar,
            target_system, data.get("strict", False),
        )

    def _add_datatypes(self, doc: YamlDocument) -> None:
        source = doc.data.get("source", "any")
        for name, spec in doc.data["datatypes"].items():
            if name in self.datatypes:
                raise doc.error(("datatypes", name), f"datatype '{name}' is defined twice")
            base = ("datatypes", name, "rules")
            self.datatypes[name] = [
                self._rule(doc, base + (i,), rule, source, {}, relative=True)
                for i, rule in enumerate(spec["rules"])
            ]

    def _add_resource(self, doc: YamlDocument) -> None:
        data = doc.data
        source = data.get("source", "any")
        namespaces = data.get("namespaces", {})
        rules = [
            self._rule(doc, ("rules", i), rule, source, namespaces, relative=False)
            for i, rule in enumerate(data["rules"])
        ]
        identity = data.get("identity", {})
        identity_from = tuple(
            self._source(doc, ("identity", "from", i), text, source, namespaces, relative=False)
            for i, text in enumerate(identity.get("from", []))
        )
        self.resources[data["name"]] = ResourceMap(
            name=data["name"],
            file=doc.file,
            resource_type=data["resource_type"],
            profiles=tuple(data["profiles"]),
            rules=rules,
            identifier_systems=tuple(identity.get("identifier_systems", [])),
            identity_from=identity_from,
            identity_with=tuple(identity.get("with", [])),
            conditional=identity.get("conditional"),
            source=source,
        )

    def _add_message(self, doc: YamlDocument) -> None:
        data = doc.data
        source = data["source"]
        namespaces = data.get("namespaces", {})
        match = data["match"]
        produce = []
        for i, item in enumerate(data["resources"]):
            for_each = None
            if "for_each" in item:
                for_each = self._for_each(doc, ("resources", i, "for_each"), item, source,
                                          namespaces)
            when = self._condition(doc, ("resources", i, "when"), item.get("when"), source,
                                   namespaces)
            key = None
            if "key" in item:
                key = self._source(doc, ("resources", i, "key"), item["key"], source, namespaces,
                                   relative=False)
            refuse_spec = item.get("refuse") or {}
            refuse = self._condition(doc, ("resources", i, "refuse", "when"),
                                     refuse_spec.get("when"), source, namespaces)
            produce.append(
                Produce(
                    alias=item["as"],
                    map_name=item["map"],
                    for_each=for_each,
                    for_each_text=item.get("for_each", ""),
                    context=tuple(item.get("context", [])),
                    when=when,
                    optional=item.get("optional", False),
                    always=item.get("always", False),
                    write=item.get("write"),
                    refuse=refuse,
                    refuse_issue=refuse_spec.get("issue", ""),
                    origin=f"{doc.file}:{doc.line(('resources', i))}",
                    key=key,
                )
            )
            self.pending.append((doc, ("resources", i, "map"), "resource", item["map"]))
        scope = None
        if "scope" in data:
            scope = self._source(doc, ("scope",), data["scope"], source, namespaces, False)
        self.messages.append(
            MessageMap(
                name=data["name"],
                file=doc.file,
                source=source,
                message_types=frozenset(match.get("message_types", [])),
                kinds=frozenset(match.get("kinds", [])),
                template_ids=frozenset(match.get("template_ids", [])),
                headers=tuple(sources.normalise_header(h) for h in match.get("headers", [])),
                produce=produce,
                namespaces=namespaces,
                scope=scope,
            )
        )

    # -- pieces ---------------------------------------------------------------------------------

    def _for_each(self, doc: YamlDocument, path: KeyPath, item: dict[str, Any], source: str,
                  namespaces: dict[str, str]) -> Any:
        text = item["for_each"]
        if source == "hl7v2":
            if not (len(text) == 3 and text.isalnum() and text.isupper()):
                raise doc.error(path, "for_each must name a segment, such as OBX")
            return text
        return self._source(doc, path, text, source, namespaces, relative=False)

    def _rule(self, doc: YamlDocument, path: KeyPath, spec: dict[str, Any], source: str,
              namespaces: dict[str, str], relative: bool) -> Rule:
        try:
            target = compile_path(spec["target"])
        except ValueError as exc:
            raise doc.error(path + ("target",), str(exc)) from None
        givers = [k for k in ("source", "constant", "reference") if k in spec]
        if len(givers) != 1:
            raise doc.error(path, "give exactly one of source, constant or reference")
        rule = Rule(
            target=target,
            target_text=spec["target"],
            origin=f"{doc.file}:{doc.line(path)}",
            repeat=spec.get("repeat", False),
            datatype=spec.get("datatype"),
            transform=spec.get("transform"),
            codes=spec.get("codes"),
            translate=spec.get("translate"),
            required=spec.get("required", False),
            reference=spec.get("reference"),
        )
        if "constant" in spec:
            rule.constant, rule.has_constant = spec["constant"], True
        if "key" in spec:
            if rule.reference is None:
                raise doc.error(path + ("key",), "key goes with reference")
            rule.source_text = spec["key"]
            rule.key = self._source(doc, path + ("key",), spec["key"], source, namespaces,
                                    relative)
        if "source" in spec:
            rule.source_text = spec["source"]
            rule.source = self._source(doc, path + ("source",), spec["source"], source,
                                       namespaces, relative)
        rule.when = self._condition(doc, path + ("when",), spec.get("when"), source, namespaces,
                                    relative)
        for key, kind in (("datatype", "datatype"), ("codes", "codes"), ("translate", "codes")):
            if key in spec:
                self.pending.append((doc, path + (key,), kind, spec[key]))
        return rule

    def _source(self, doc: YamlDocument, path: KeyPath, text: str, source: str,
                namespaces: dict[str, str], relative: bool) -> Any:
        try:
            if source == "hl7v2":
                compiled = sources.compile_hl7_path(text)
                if not relative and compiled.segment is None:
                    raise ValueError(f"'{text}' needs a segment, such as PID-{text}")
                return compiled
            if source == "xml":
                return sources.compile_xml_path(text, namespaces)
            if source == "csv":
                return sources.compile_column_path(text)
        except ValueError as exc:
            raise doc.error(path, str(exc)) from None
        raise doc.error(path, "a table that reads the source must say source: hl7v2, xml or csv")

    def _condition(self, doc: YamlDocument, path: KeyPath, spec: dict[str, Any] | None,
                   source: str, namespaces: dict[str, str], relative: bool = False
                   ) -> Condition | None:
        if spec is None:
            return None
        for combinator in ("any", "all"):
            if combinator in spec:
                children = tuple(
                    self._condition(doc, path + (combinator, i), child, source, namespaces,
                                    relative)
                    for i, child in enumerate(spec[combinator])
                )
                return Condition(combinator, children=children)  # type: ignore[arg-type]
        if "not" in spec:
            child = self._condition(doc, path + ("not",), spec["not"], source, namespaces, relative)
            return Condition("not", children=(child,))  # type: ignore[arg-type]
        if isinstance(spec.get("exists"), str):
            compiled = self._source(doc, path + ("exists",), spec["exists"], source, namespaces,
                                    relative)
            return Condition("exists", compiled)
        if "path" not in spec:
            raise doc.error(path, "a condition needs path (with equals, in or matches), exists, "
                                  "any, all or not")
        compiled = self._source(doc, path + ("path",), spec["path"], source, namespaces, relative)
        for op in ("equals", "in", "matches"):
            if op in spec:
                value = spec[op]
                if op == "in":
                    value = frozenset(str(v).lower() for v in value)
                elif op == "matches":
                    value = re.compile(value)
                else:
                    value = str(value).lower()
                return Condition(op, compiled, value)
        if spec.get("exists") is not None:
            return Condition("exists" if spec["exists"] else "absent", compiled)
        raise doc.error(path, "a condition with path needs equals, in, matches or exists")

    def finish(self, version: str) -> MappingSet:
        known = {
            "resource": self.resources,
            "datatype": self.datatypes,
            "codes": self.codes,
        }
        for doc, path, kind, name in self.pending:
            if name not in known[kind]:
                label = {"resource": "resource map", "datatype": "datatype", "codes": "table"}[kind]
                raise doc.error(path, f"unknown {label} '{name}'")
        self._check_transforms()
        self._check_aliases()
        return MappingSet(
            root=self.root,
            messages=self.messages,
            resources=self.resources,
            datatypes=self.datatypes,
            codes=self.codes,
            version=version,
            files=[],
            tests=self.tests,
        )

    def _check_transforms(self) -> None:
        known = set(TEXT_TRANSFORMS) | set(NODE_TRANSFORM_FUNCTIONS)
        for doc in self.docs:
            for path, value in _walk(doc.data):
                if path and path[-1] == "transform" and value not in known:
                    raise doc.error(path, f"unknown transform '{value}'")

    def _check_aliases(self) -> None:
        docs = {d.file: d for d in self.docs}
        for message in self.messages:
            doc = docs[message.file]
            aliases = {p.alias for p in message.produce}
            for i, item in enumerate(message.produce):
                resource = self.resources[item.map_name]
                for rule in resource.rules:
                    if rule.reference and rule.reference not in aliases:
                        raise doc.error(
                            ("resources", i, "map"),
                            f"resource map '{item.map_name}' refers to '{rule.reference}' "
                            f"({rule.origin}), which this message map does not produce",
                        )


def _code_row(row: dict[str, Any], target_system: str | None) -> CodeRow:
    code = row.get("code")
    return CodeRow(
        system=row.get("system", target_system if code is not None else None),
        code=str(code) if code is not None else None,
        display=row.get("display"),
        value=row.get("value"),
        unit=row.get("unit"),
    )


def _walk(value: Any, path: KeyPath = ()) -> Any:
    if isinstance(value, dict):
        for key, child in value.items():
            yield path + (key,), child
            yield from _walk(child, path + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _walk(child, path + (index,))
