"""``babyconnect lint``: check every mapping table without converting anything.

Each file is checked on its own first (YAML syntax, the JSON Schema), so one run lists the
problems of all files; then the cross-references between tables; then every HL7v2 source path
against hl7apy's structure knowledge (is ``PID-99`` a field of PID in v2.5?).
"""

from __future__ import annotations

from pathlib import Path

from converters.errors import MappingTableError
from converters.mapping.tables import DEFAULT_MAPPINGS, MappingSet, Rule, load_mappings
from converters.mapping.yamlfile import check_schema, load_yaml

HL7_REFERENCE_VERSION = "2.5.1"  # the newest version the issue asks for; fields only grow


def lint(root: Path | None = None) -> tuple[list[str], MappingSet | None]:
    """Return the problems found (as 'file:line key: reason' lines) and the tables if loadable."""
    root = (root or DEFAULT_MAPPINGS).resolve()
    problems: list[str] = []
    for path in sorted(root.rglob("*.yaml")):
        try:
            check_schema(load_yaml(path, str(path)))
        except MappingTableError as exc:
            problems.append(str(exc))
    if problems:
        return problems, None
    try:
        mappings = load_mappings(root)
    except MappingTableError as exc:
        return [str(exc)], None
    problems.extend(_hl7_paths(mappings))
    return problems, mappings


def _hl7_paths(mappings: MappingSet) -> list[str]:
    try:
        from converters.readers import hl7v2_structure as structure
    except ImportError:  # pragma: no cover - hl7apy is a dependency
        return []
    problems = []
    for resource in mappings.resources.values():
        if resource.source != "hl7v2":
            continue
        for rule in resource.rules:
            problem = _check_rule(rule, structure)
            if problem:
                problems.append(f"{rule.origin} {rule.target_text}: {problem}")
    return problems


def _check_rule(rule: Rule, structure: object) -> str | None:
    path = rule.source
    if path is None or getattr(path, "segment", None) is None:
        return None
    segment = path.segment
    if segment.startswith("Z"):
        return None
    if not structure.segment_known(HL7_REFERENCE_VERSION, segment):  # type: ignore[attr-defined]
        return f"HL7 v{HL7_REFERENCE_VERSION} has no segment {segment}"
    count = structure.field_count(HL7_REFERENCE_VERSION, segment)  # type: ignore[attr-defined]
    if count and path.field > count:
        return f"{segment} has {count} fields in HL7 v{HL7_REFERENCE_VERSION}, not {path.field}"
    return None
