"""The mapping engine: applies the compiled tables to one source record.

Input: a :class:`SourceRecord`. Output: a :class:`Conversion` holding resource *drafts* (FHIR
JSON bodies with their alias, profiles and identity, references still by alias), the codes no
table knew, the issues met (a BSN failing the 11-test, an unparseable date) and, when asked for,
the lineage of every written element. Ids, references and Bundles are the assembler's job.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from converters.errors import SourceError, UnsupportedInputError
from converters.mapping import sources
from converters.mapping.dutch import NODE_TRANSFORM_FUNCTIONS
from converters.mapping.tables import (
    CodeTable,
    Condition,
    MappingSet,
    MessageMap,
    Produce,
    ResourceMap,
    Rule,
)
from converters.mapping.targetpath import write, write_traced
from converters.mapping.transforms import TEXT_TRANSFORMS, Reject
from converters.records import SourceRecord


class AliasRef(str):
    """A reference to another resource of the same record, by alias; the assembler resolves it."""

    __slots__ = ()


@dataclass(slots=True)
class Issue:
    code: str
    field: str
    rule: str


@dataclass(slots=True)
class Unmapped:
    table: str
    system: str
    code: str
    field: str


@dataclass(slots=True)
class Lineage:
    """One written element: ``target`` is the concrete path (``identifier[1].value``), ``source``
    the qualified location (``OBX[3]-5.1``, an XPath, a CSV cell, or ``constant``/``reference``),
    ``rule`` the mapping file and line, ``index`` the draft's index among drafts of its alias."""

    alias: str
    resource_type: str
    target: str
    source: str
    rule: str
    index: int = 0


@dataclass(slots=True)
class Draft:
    alias: str
    index: int
    map_name: str
    resource_type: str
    profiles: tuple[str, ...]
    body: dict[str, Any]
    identity_values: tuple[str, ...]
    identifier_systems: tuple[str, ...]
    identity_with: tuple[str, ...]
    conditional: bool | None
    write: str = "update"  # "create-if-absent": a mention must never overwrite the full record


@dataclass(slots=True)
class Conversion:
    record: SourceRecord
    message_map: str
    drafts: list[Draft]
    unmapped: list[Unmapped] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    lineage: list[Lineage] = field(default_factory=list)
    read: set[str] = field(default_factory=set)


class _Context:
    __slots__ = ("conversion", "alias", "resource_type", "trace", "wrote", "index", "lineage",
                 "occurrences")

    def __init__(self, conversion: Conversion, trace: bool) -> None:
        self.conversion = conversion
        self.trace = trace
        self.alias = ""
        self.resource_type = ""
        self.wrote = 0
        self.index = 0
        self.lineage = conversion.lineage  # a datatype's rules trace into a list of their own
        self.occurrences: dict[int, str] = {}

    def traced(self, node: Any) -> str:
        """Return the node's location, with the segment occurrence when a segment repeats."""
        if isinstance(node, sources.XmlNode) and node.element is not None:
            return sources.element_path(node.element)
        location = node.location()
        if not isinstance(node, sources.Hl7Node):
            return location
        segment = node.segment
        prefix = self.occurrences.get(id(segment))
        if prefix is None:
            same = self.conversion.record.payload.all(segment.name)
            prefix = segment.name
            if len(same) > 1:
                number = next(i for i, s in enumerate(same, 1) if s is segment)
                prefix = f"{segment.name}[{number}]"
            self.occurrences[id(segment)] = prefix
        return prefix + location[len(segment.name):]

    def note(self, target: str, source: str, rule: str) -> None:
        self.lineage.append(
            Lineage(self.alias, self.resource_type, target, source, rule, self.index)
        )


class Engine:
    """Applies a :class:`MappingSet` to records. ``trace`` records lineage and coverage."""

    def __init__(self, mappings: MappingSet, trace: bool = False) -> None:
        self.mappings = mappings
        self.trace = trace
        self._by_type: dict[str, MessageMap] = {}
        for message in mappings.messages:
            for message_type in message.message_types:
                self._by_type.setdefault(message_type, message)

    # -- choosing the table -------------------------------------------------------------------

    def find_map(self, record: SourceRecord) -> MessageMap | None:
        if record.format == "hl7v2":
            return self._by_type.get(record.kind)
        for message in self.mappings.messages:
            if _matches(message, record):
                return message
        return None

    # -- converting ---------------------------------------------------------------------------

    def convert(self, record: SourceRecord) -> Conversion:
        """Convert one record; raise SourceError (quarantine) when it cannot be converted."""
        if record.error is not None:
            raise record.error
        message = self.find_map(record)
        if message is None:
            hint = (": it is FHIR already, the target model, not a legacy export"
                    if record.kind.startswith("fhir:") else "")
            raise UnsupportedInputError(
                f"no mapping table handles {record.format} records of kind '{record.kind}'{hint}",
                file=record.file,
                record_id=record.record_id,
            )
        conversion = Conversion(record, message.name, [])
        ctx = _Context(conversion, self.trace)
        root = self._root_scope(message, record)
        try:
            for item in message.produce:
                self._produce(item, root, ctx)
        except SourceError as exc:
            exc.file = exc.file or record.file
            exc.record_id = exc.record_id or record.record_id
            exc.args = (exc.describe(),)
            raise
        if not conversion.drafts:
            # Nothing to load (an ADA "no pregnancy card" answer, a document without the woman):
            # a Bundle of a Provenance alone would say something was converted.
            raise SourceError("the record holds nothing the mapping tables convert",
                              file=record.file, record_id=record.record_id, rule=message.file,
                              code="empty-record")
        _settle_keyed_references(conversion.drafts)
        return conversion

    def _root_scope(self, message: MessageMap, record: SourceRecord) -> Any:
        if record.format == "hl7v2":
            return sources.Hl7Scope(record.payload)
        if record.format == "xml":
            scope = sources.XmlScope(record.payload)
            if message.scope is not None:
                found = scope.select(message.scope)
                if not found or found[0].element is None:
                    raise SourceError(
                        "the document has no element where the mapping starts",
                        field=message.scope.text,
                        rule=message.file,
                        code="structure",
                    )
                scope = sources.XmlScope(found[0].element)
            return scope
        return sources.RowScope(record.payload, record.record_id)

    def _produce(self, item: Produce, root: Any, ctx: _Context) -> None:
        resource = self.mappings.resources[item.map_name]
        if item.for_each is None:
            scopes = [root]
        elif isinstance(item.for_each, str):
            scopes = root.each(item.for_each, list(item.context))
        else:
            scopes = root.each(item.for_each)
        for index, scope in enumerate(scopes):
            if item.when is not None and not self._test(item.when, scope, ctx):
                continue
            if item.refuse is not None and self._test(item.refuse, scope, ctx):
                # The source contradicts the model here (a birth naming the mother as the
                # child): leave this one resource out and report where, rather than write a
                # resource its profile rejects and lose the whole record to quarantine.
                ctx.conversion.issues.append(Issue(item.refuse_issue, scope.location(),
                                                   item.origin))
                continue
            draft = self._build(item, resource, scope, index, ctx)
            if draft is not None and item.key is not None:
                key = _first_text(scope, item.key, ctx)
                if key:
                    draft.alias = f"{item.alias}#{key}"
            if draft is not None:
                ctx.conversion.drafts.append(draft)

    def _build(self, item: Produce, resource: ResourceMap, scope: Any, index: int,
               ctx: _Context) -> Draft | None:
        ctx.alias, ctx.resource_type, ctx.wrote = item.alias, resource.resource_type, 0
        ctx.index = index
        traced_before = len(ctx.conversion.lineage)
        body: dict[str, Any] = {"resourceType": resource.resource_type}
        self._apply(resource.rules, scope, body, ctx)
        _drop_identifiers_without_value(body)
        if ctx.wrote == 0 and not item.always:
            del ctx.conversion.lineage[traced_before:]  # constants of a resource not produced
            if not item.optional:
                ctx.conversion.issues.append(Issue("empty-resource", item.alias, item.origin))
            return None
        identity = tuple(_first_text(scope, path, ctx) for path in resource.identity_from)
        return Draft(
            alias=item.alias,
            index=index,
            map_name=resource.name,
            resource_type=resource.resource_type,
            profiles=resource.profiles,
            body=body,
            identity_values=identity,
            identifier_systems=resource.identifier_systems,
            identity_with=resource.identity_with,
            conditional=resource.conditional,
            write=item.write or "update",
        )

    def _apply(self, rules: Iterable[Rule], scope: Any, body: dict[str, Any], ctx: _Context,
               inside_datatype: bool = False) -> None:
        for rule in rules:
            if rule.when is not None and not self._test(rule.when, scope, ctx):
                continue
            if rule.has_constant:
                self._write(body, rule, copy.deepcopy(rule.constant), "constant", ctx)
                continue
            if rule.reference is not None and rule.key is not None:
                self._keyed_references(rule, scope, body, ctx)
                continue
            if rule.reference is not None:
                self._write(body, rule, {"reference": AliasRef(rule.reference)},
                            f"reference to {rule.reference}", ctx)
                continue
            if ctx.trace:
                nodes = _select(scope, rule.source, rule.repeat, ctx)
            else:
                nodes = scope.select(rule.source, rule.repeat)  # the hot path: no extra call
            if not nodes:
                if rule.required:
                    raise SourceError("a required value is missing", field=rule.source_text,
                                      rule=rule.origin, code="missing-required")
                continue
            for node in nodes:
                self._apply_one(rule, node, body, ctx, inside_datatype)

    def _keyed_references(self, rule: Rule, scope: Any, body: dict[str, Any],
                          ctx: _Context) -> None:
        """Write one Reference per key value, to the resource of that alias and key."""
        for node in scope.select(rule.key, rule.repeat):
            key = node.text()
            if key:
                if ctx.trace:
                    ctx.conversion.read.add(ctx.traced(node))
                self._write(body, rule, {"reference": AliasRef(f"{rule.reference}#{key}")},
                            f"reference to {rule.reference}", ctx)

    def _write(self, body: dict[str, Any], rule: Rule, value: Any, source: str,
               ctx: _Context) -> None:
        if ctx.trace:
            ctx.note(write_traced(body, rule.target, value), source, rule.origin)
        else:
            write(body, rule.target, value)

    def _apply_one(self, rule: Rule, node: Any, body: dict[str, Any], ctx: _Context,
                   inside_datatype: bool) -> None:
        if ctx.trace:
            self._apply_one_traced(rule, node, body, ctx, inside_datatype)
            return
        value = self._checked_value(rule, node, ctx, inside_datatype)
        if value is None or value == "" or value == {}:
            return
        write(body, rule.target, value)
        ctx.wrote += 1

    def _checked_value(self, rule: Rule, node: Any, ctx: _Context,
                       inside_datatype: bool) -> Any:
        """The rule's value for ``node``; None (nothing written) when the value is refused.

        A refusal is counted as an issue; inside a datatype it drops the whole datatype value
        instead, and on a required rule it quarantines the record naming the field.
        """
        try:
            return self._value(rule, node, ctx)
        except Reject as reject:
            if inside_datatype:
                raise
            ctx.conversion.issues.append(Issue(reject.issue, node.location(), rule.origin))
            if rule.required:
                raise SourceError(f"a required value is unusable ({reject.issue})",
                                  field=node.location(), rule=rule.origin,
                                  code=reject.issue) from None
            return None

    def _apply_one_traced(self, rule: Rule, node: Any, body: dict[str, Any], ctx: _Context,
                          inside_datatype: bool) -> None:
        """Apply like :meth:`_apply_one`, recording what was read and the concrete paths written.

        A datatype's own rules write into a fresh value; their lineage is collected apart and
        prefixed with the path where that value lands.
        """
        outer, inner = ctx.lineage, []
        ctx.lineage = inner
        try:
            value = self._checked_value(rule, node, ctx, inside_datatype)
        finally:
            ctx.lineage = outer
        location = ctx.traced(node)
        ctx.conversion.read.add(location)
        if value is None or value == "" or value == {}:
            return
        path = write_traced(body, rule.target, value)
        ctx.wrote += 1
        ctx.note(path, location, rule.origin)
        for written in inner:
            written.target = f"{path}.{written.target}"
            outer.append(written)

    def _value(self, rule: Rule, node: Any, ctx: _Context) -> Any:
        if rule.datatype is not None:
            value: Any = {}
            self._apply(self.mappings.datatypes[rule.datatype], node, value, ctx, True)
            if rule.translate and value:
                self._translate(self.mappings.codes[rule.translate], value, node, ctx)
            return value
        if rule.transform in NODE_TRANSFORM_FUNCTIONS:
            value = NODE_TRANSFORM_FUNCTIONS[rule.transform](node.parts())
        else:
            value = node.text()
            if rule.transform is not None:
                value = TEXT_TRANSFORMS[rule.transform](value)
        if rule.codes is not None and value not in (None, ""):
            value = self._code(self.mappings.codes[rule.codes], str(value), node, ctx)
        return value

    def _code(self, table: CodeTable, code: str, node: Any, ctx: _Context) -> Any:
        row = table.lookup(code)
        if row is None and table.strict:
            # A closed vendor list (a kraamzorg export's column codes): an unknown code is a
            # mapping error, quarantining the record when the rule is required.
            raise Reject("unknown-code", "not in the code table")
        if row is None:
            ctx.conversion.unmapped.append(
                Unmapped(table.name, table.source_system or "", code, node.location())
            )
            row = table.default
            if row is None:
                if table.scalar:
                    return None  # a code element cannot keep a foreign code; counted above
                original = {"code": code}
                if table.source_system:
                    original["system"] = table.source_system
                return original
        return row.value if row.value is not None else row.coding()

    def _translate(self, table: CodeTable, concept: dict[str, Any], node: Any,
                   ctx: _Context) -> None:
        codings = concept.get("coding") or []
        if table.target_system and any(c.get("system") == table.target_system for c in codings):
            return  # the sender already coded it in the standard system
        for coding in codings:
            row = table.lookup(str(coding.get("code", "")), coding.get("system"))
            if row is not None and row.code is not None:
                standard = row.coding()
                if not any(c.get("system") == standard.get("system")
                           and c.get("code") == standard.get("code") for c in codings):
                    codings.insert(0, standard)
                return
        first = codings[0] if codings else {}
        if first.get("code"):
            ctx.conversion.unmapped.append(
                Unmapped(table.name, first.get("system", ""), str(first["code"]), node.location())
            )

    # -- conditions ---------------------------------------------------------------------------

    def _test(self, condition: Condition, scope: Any, ctx: _Context) -> bool:
        op = condition.op
        if op == "any":
            return any(self._test(c, scope, ctx) for c in condition.children)
        if op == "all":
            return all(self._test(c, scope, ctx) for c in condition.children)
        if op == "not":
            return not self._test(condition.children[0], scope, ctx)
        nodes = _select(scope, condition.path, True, ctx)
        if ctx.trace:
            ctx.conversion.read.update(ctx.traced(n) for n in nodes)
        if op == "exists":
            return any(n.text() or n.parts() != [""] for n in nodes)
        if op == "absent":
            return not nodes
        texts = [n.text() for n in nodes]
        if op == "equals":
            return any(t.lower() == condition.value for t in texts)
        if op == "in":
            return any(t.lower() in condition.value for t in texts)
        return any(condition.value.search(t) for t in texts)


def _matches(message: MessageMap, record: SourceRecord) -> bool:
    source = {"xlsx": "csv"}.get(record.format, record.format)
    if message.source != source:
        return False
    if message.kinds and record.kind not in message.kinds:
        return False
    if message.template_ids:
        present = set(filter(None, record.meta.get("templateIds", "").split(",")))
        if not present & message.template_ids:
            return False
    if message.headers:
        headers = {sources.normalise_header(h) for h in record.meta.get("headers", "").split("\t")}
        if not set(message.headers) <= headers:
            return False
    return True


def _first_text(scope: Any, path: Any, ctx: _Context) -> str:
    nodes = _select(scope, path, False, ctx)
    if nodes and ctx.trace:
        ctx.conversion.read.add(ctx.traced(nodes[0]))
    return nodes[0].text() if nodes else ""


def _settle_keyed_references(drafts: list[Draft]) -> None:
    """Point a plain reference to a keyed alias at its first resource; drop dangling ones.

    A produce with ``key`` names its drafts ``alias#key``; a rule that refers to the alias
    without a key means the first of them (the only one, usually). A keyed reference whose
    resource was not produced (the ADA @id it names is absent) is removed with the element
    holding it, and an extension left with its url alone goes too: FHIR's ext-1 requires a
    value or nested extensions, so ``{url}`` would fail at the server.
    """
    aliases = {d.alias for d in drafts}
    if not any("#" in a for a in aliases):
        return
    first: dict[str, str] = {}
    for alias in (d.alias for d in drafts):
        if "#" in alias:
            first.setdefault(alias.split("#", 1)[0], alias)
    for draft in drafts:
        _rewrite_refs(draft.body, aliases, first)
        _drop_dangling(draft.body, aliases)


def _rewrite_refs(node: Any, aliases: set[str], first: dict[str, str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, AliasRef):
                if str(value) not in aliases and str(value) in first:
                    node[key] = AliasRef(first[str(value)])
            else:
                _rewrite_refs(value, aliases, first)
    elif isinstance(node, list):
        for item in node:
            _rewrite_refs(item, aliases, first)


def _drop_dangling(node: Any, aliases: set[str]) -> bool:
    """Remove keyed references to resources not produced; return True when ``node`` must go.

    Mirrors the assembler, which drops a Reference it cannot resolve with the element holding
    it; here an extension that only held such a reference is dropped as well.
    """
    if isinstance(node, dict):
        value = node.get("reference")
        if isinstance(value, AliasRef) and "#" in value and str(value) not in aliases:
            return True
        emptied = False
        for key in list(node):
            child = node[key]
            if isinstance(child, (dict, list)) and _drop_dangling(child, aliases):
                del node[key]
                emptied = True
        return emptied and (not node or set(node) == {"url"})
    if isinstance(node, list):
        kept = [item for item in node if not _drop_dangling(item, aliases)]
        gone = len(kept) < len(node)
        node[:] = kept
        return gone and not kept
    return False


def _select(scope: Any, path: Any, repeat: bool, ctx: _Context) -> list[Any]:
    if ctx.trace and isinstance(scope, sources.XmlNode):
        return scope.select_traced(path, repeat)
    return scope.select(path, repeat)


def _drop_identifiers_without_value(body: dict[str, Any]) -> None:
    """Leave out an identifier whose value was refused (a BSN failing the 11-test) or absent.

    Its constant system alone would claim an identifier that is not there, and a conditional
    update on ``system|`` would match nothing useful. One that says why the value is missing
    (an extension on ``_value``) is kept.
    """
    identifiers = body.get("identifier")
    if not isinstance(identifiers, list):
        return
    kept = [i for i in identifiers
            if not isinstance(i, dict) or i.get("value") not in (None, "") or "_value" in i]
    if kept:
        body["identifier"] = kept
    else:
        del body["identifier"]

