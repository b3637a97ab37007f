"""Run the ``tests:`` entries of mapping files: a short input, and what the FHIR output must hold.

An entry (see ``mappings/schema/mapping.schema.json``)::

    tests:
      - name: a BSN with the NLMINBIZA authority becomes the bsn identifier
        source: hl7v2                # hl7v2 | xml | csv
        input: |
          MSH|^~\\&|...
          PID|1||999911120^^^NLMINBIZA^NNNLD
        expect:
          - resource: Patient        # a resource type or a message map alias (optional)
            path: Patient.identifier.where(system='http://fhir.nl/fhir/NamingSystem/bsn').value
            equals: "999911120"
        expect_absent:
          - Patient.deceasedBoolean

Paths are FHIRPath (evaluated with fhirpathpy) on every resource chosen; ``equals`` passes when
one of the values found equals it. A failure names the rules that wrote the element (from
lineage), the expected and the actual value.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fhirpathpy import evaluate

from converters.errors import SourceError
from converters.mapping.tables import MappingSet
from converters.readers.registry import reader_for
from converters.workbench.explain import Traced, convert_traced

_SUFFIX = {"hl7v2": ".hl7", "xml": ".xml", "csv": ".csv"}
_FUNCTION = re.compile(r"\.(where|exists|first|last|ofType|resolve)\(.*?\)(?=\.|$)")
_INDEX = re.compile(r"\[\d+\]")


@dataclass(slots=True)
class MappingTestResult:
    file: str
    line: int
    name: str
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def describe(self) -> str:
        """Return a readable account: where the test is, and each failure with its rules."""
        head = f"{self.file}:{self.line} {self.name!r}"
        if self.passed:
            return f"ok    {head}"
        return "\n".join([f"FAIL  {head}", *("  " + f.replace("\n", "\n  ")
                                             for f in self.failures)])


def run_all(mappings: MappingSet) -> list[MappingTestResult]:
    """Run every ``tests:`` entry of every mapping file."""
    return [run_one(mappings, file, line, spec) for file, line, spec in mappings.tests]


def run_one(mappings: MappingSet, file: str, line: int, spec: dict[str, Any]
            ) -> MappingTestResult:
    """Run one entry; the result holds one readable message per unmet expectation."""
    result = MappingTestResult(file, line, spec.get("name", "(unnamed)"))
    expected_error = spec.get("expect_error")
    try:
        traced = _convert(spec, mappings)
    except SourceError as exc:
        if expected_error is None:
            result.failures.append(f"the input could not be converted: {exc}")
        else:
            _check_error(result, expected_error, exc)
        return result
    except (LookupError, ValueError) as exc:
        result.failures.append(f"the input could not be converted: {exc}")
        return result
    if expected_error is not None:
        result.failures.append(f"expected the record to be quarantined with code "
                               f"'{expected_error.get('code')}', but it converted")
        return result
    for expectation in spec.get("expect", []):
        failure = _check_equals(traced, expectation)
        if failure:
            result.failures.append(failure)
    for path in spec.get("expect_absent", []):
        failure = _check_absent(traced, path if isinstance(path, str) else path["path"])
        if failure:
            result.failures.append(failure)
    return result


def _check_error(result: MappingTestResult, expected: dict[str, Any], exc: SourceError) -> None:
    """``expect_error: {code: missing-required, field: BSN moeder}``: the record is quarantined
    with that reason code, and (when given) the field named contains that text."""
    if expected.get("code") and exc.code != expected["code"]:
        result.failures.append(f"expected quarantine code '{expected['code']}', got '{exc.code}'"
                               f" ({exc.reason})")
    if expected.get("field") and expected["field"] not in exc.field:
        result.failures.append(f"expected the reason to name field '{expected['field']}', "
                               f"got '{exc.field}'")


def _convert(spec: dict[str, Any], mappings: MappingSet) -> Traced:
    source = spec.get("source", "hl7v2")
    text = spec["input"]
    if source == "hl7v2":
        text = "\r".join(line for line in text.splitlines() if line.strip())
    with tempfile.TemporaryDirectory(prefix="mapping-test-") as folder:
        path = Path(folder) / f"input{_SUFFIX[source]}"
        path.write_text(text, encoding="utf-8")
        records = list(reader_for(path)(path))
    if not records:
        raise ValueError("the input holds no record")
    return convert_traced(records[0], mappings)


def _chosen(traced: Traced, path: str, wanted: str | None) -> list[dict[str, Any]]:
    wanted = wanted or path.split(".", 1)[0]
    # A keyed resource's alias is "alias#key": `resource: lab-test` names every one of them.
    return [entry.resource for draft, entry in traced.owners
            if wanted in (draft.alias, draft.alias.split("#", 1)[0],
                          entry.resource["resourceType"])]


def _values(traced: Traced, path: str, wanted: str | None) -> list[Any]:
    found: list[Any] = []
    for resource in _chosen(traced, path, wanted):
        found.extend(evaluate(resource, path))
    return found


def _check_equals(traced: Traced, expectation: dict[str, Any]) -> str | None:
    path, expected = expectation["path"], expectation.get("equals")
    actual = _values(traced, path, expectation.get("resource"))
    if "equals" not in expectation:
        return None if actual else _explain(traced, path, "a value", actual)
    if any(_same(value, expected) for value in actual):
        return None
    return _explain(traced, path, expected, actual)


def _check_absent(traced: Traced, path: str) -> str | None:
    actual = _values(traced, path, None)
    return _explain(traced, path, "(nothing)", actual) if actual else None


def _same(value: Any, expected: Any) -> bool:
    """Compare as FHIR JSON would print: 7.1 (YAML float) equals Decimal('7.1') (FHIRPath)."""
    if value == expected:
        return True
    if isinstance(value, (dict, list)) or isinstance(expected, (dict, list)):
        return _show(value) == _show(expected)
    if isinstance(value, bool) or isinstance(expected, bool):
        return str(value).lower() == str(expected).lower()
    return str(value) == str(expected)


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str,
                                                           sort_keys=True)


def _explain(traced: Traced, path: str, expected: Any, actual: list[Any]) -> str:
    shown = ", ".join(_show(v) for v in actual) if actual else "(nothing)"
    lines = [f"{path}", f"- expected: {_show(expected)}", f"+ actual:   {shown}"]
    rules = writers(traced, path)
    if rules:
        lines.append("written by:")
        lines.extend(f"  {line}" for line in rules)
    else:
        lines.append("written by: no rule wrote this element")
    return "\n".join(lines)


def writers(traced: Traced, path: str) -> list[str]:
    """Return 'source -> rule -> FHIR path' for lineage entries that wrote the path's element."""
    resource_type, _, rest = path.partition(".")
    plain = _INDEX.sub("", _FUNCTION.sub("", "." + rest))[1:]
    wanted = [p for p in plain.split(".") if p and not p[0].isupper()]
    found = []
    for entry in traced.conversion.lineage:
        if entry.resource_type != resource_type and entry.alias != resource_type:
            continue
        names = _INDEX.sub("", entry.target).split(".")
        if wanted and names[: len(wanted)] == wanted[: len(names)]:
            found.append(f"{entry.source} -> {entry.rule} -> {resource_type}.{entry.target}")
    return found[:12]
