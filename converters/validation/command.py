"""The ``validate`` subcommand: check FHIR files against the vendored Babyconnect profiles.

Accepts files or folders of JSON resources, JSON Bundles, NDJSON and FHIR XML (resource or
Bundle). Prints the findings grouped by rule, commonest first, and how many rules could not be
checked. Exit status: 0 clean, 1 findings (errors or warnings), 2 usage or input error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from converters.validation.fhirxml import FhirXmlError, xml_to_resource
from converters.validation.placeholders import normalise_placeholders
from converters.validation.validator import Finding, ProfileValidator

SUFFIXES = (".json", ".ndjson", ".xml")


class InputError(ValueError):
    """A file cannot be read as FHIR. The message names the file, never its content."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``validate`` subcommand."""
    parser = subparsers.add_parser(
        "validate", help="validate FHIR STU3 resources against the Babyconnect profiles",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("paths", nargs="+", type=Path,
                        help="files or folders (.json, .ndjson, .xml; Bundles allowed)")
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="output format (default: text)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate every resource under ``args.paths``; return the exit status."""
    validator = ProfileValidator.default()
    findings: list[Finding] = []
    resources = 0
    try:
        for path in _files(args.paths):
            for resource in read_resources(path):
                resources += 1
                if resource.get("resourceType") == "Bundle":
                    findings.extend(validator.validate_bundle(resource))
                else:
                    findings.extend(validator.validate(resource))
    except InputError as exc:
        sys.stderr.write(f"validate: {exc}\n")
        return 2
    report = _report(findings, resources, validator)
    if args.format == "json":
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        sys.stdout.write(_text(report))
    return 1 if findings else 0


def _files(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
        elif path.is_file():
            yield path
        else:
            raise InputError(f"{path}: no such file or folder")


def read_resources(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the resources (or Bundles) in one file; Nictiz date placeholders are normalised."""
    try:
        text = normalise_placeholders(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot be read ({type(exc).__name__})") from None
    if path.suffix == ".xml" or text.lstrip().startswith("<"):
        try:
            yield xml_to_resource(text.encode("utf-8"))
        except FhirXmlError as exc:
            raise InputError(f"{path}: {exc}") from None
        return
    if path.suffix == ".ndjson":
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                yield _json(line, f"{path}:{number}")
        return
    yield _json(text, str(path))


def _json(text: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not JSON (line {exc.lineno})") from None
    if not isinstance(value, dict) or "resourceType" not in value:
        raise InputError(f"{where}: not a FHIR resource (no resourceType)")
    return value


def _report(findings: list[Finding], resources: int, validator: ProfileValidator
            ) -> dict[str, Any]:
    by_rule = Counter(f.rule for f in findings)
    groups = []
    for rule, count in by_rule.most_common():
        kinds = Counter((f.severity, f.profile, _unindexed(f.path), f.message)
                        for f in findings if f.rule == rule)
        groups.append({
            "rule": rule,
            "count": count,
            "findings": [
                {"severity": s, "profile": p, "path": path, "message": m, "count": n}
                for (s, p, path, m), n in kinds.most_common()
            ],
        })
    return {
        "resources": resources,
        "errors": sum(f.severity == "error" for f in findings),
        "warnings": sum(f.severity == "warning" for f in findings),
        "unchecked": sum(validator.unchecked_hits.values()),
        "unchecked_rules": dict(validator.unchecked_hits.most_common()),
        "by_rule": groups,
    }


def _unindexed(path: str) -> str:
    """Drop repetition indexes so that the same defect in many resources groups together."""
    parts = [p.split("[")[0] for p in path.split(".")]
    return ".".join(parts)


def _text(report: dict[str, Any]) -> str:
    lines = [
        f"{report['resources']} resources: {report['errors']} errors, "
        f"{report['warnings']} warnings, {report['unchecked']} checks not possible "
        f"({len(report['unchecked_rules'])} distinct rules)",
    ]
    for group in report["by_rule"]:
        lines.append(f"\n{group['rule']}: {group['count']}")
        for item in group["findings"]:
            profile = item["profile"].rsplit("/", 1)[-1] or "-"
            lines.append(f"  {item['count']:>5}  {item['severity']:<7} {profile}  {item['path']}: "
                         f"{item['message']}")
    return "\n".join(lines) + "\n"
