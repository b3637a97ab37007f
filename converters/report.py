"""The run report: what a person needs in the morning, with no patient data in it.

Counts per outcome and per resource type, quarantined records with their reasons (file, record
id, field, rule: places, never values), codes no table knew ranked by frequency with an example
record id, conversion issues and validation findings by rule. Written as ``report.json`` and
printed as a short summary.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from converters.mapping.engine import Conversion
from converters.records import Outcome, SourceRecord

MAX_LISTED = 200


@dataclass
class RunReport:
    run_id: str
    target: str
    mapping_version: str
    files: list[dict[str, Any]] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    resources: Counter[str] = field(default_factory=Counter)
    quarantined: list[dict[str, str]] = field(default_factory=list)
    quarantine_reasons: Counter[str] = field(default_factory=Counter)
    skipped: list[dict[str, str]] = field(default_factory=list)
    unmapped: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    unmapped_example: dict[tuple[str, str, str], str] = field(default_factory=dict)
    issues: Counter[str] = field(default_factory=Counter)
    issue_example: dict[str, str] = field(default_factory=dict)
    findings: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    records_in: int = 0
    previously_done: int = 0
    status: str = "running"

    # -- recording ------------------------------------------------------------------------------

    def count_conversion(self, conversion: Conversion) -> None:
        where = _where(conversion.record)
        for item in conversion.unmapped:
            key = (item.table, item.system, item.code)
            self.unmapped[key] += 1
            self.unmapped_example.setdefault(key, f"{where} {item.field}")
        for issue in conversion.issues:
            self.issues[issue.code] += 1
            self.issue_example.setdefault(issue.code, f"{where} {issue.field}")

    def count_loaded(self, record: SourceRecord, resource_types: list[str]) -> None:
        self.outcomes[Outcome.LOADED.value] += 1
        self.resources.update(resource_types)

    def count_quarantined(self, record: SourceRecord, error: dict[str, str]) -> None:
        self.outcomes[Outcome.QUARANTINED.value] += 1
        self.quarantine_reasons[error.get("code", "error")] += 1
        if len(self.quarantined) < MAX_LISTED:
            self.quarantined.append({"file": record.file, "record": record.record_id, **error})

    def count_skipped(self, file: str, record_id: str, reason: str, records: int = 1) -> None:
        self.outcomes[Outcome.SKIPPED.value] += records
        if len(self.skipped) < MAX_LISTED:
            self.skipped.append({"file": file, "record": record_id, "reason": reason})

    def count_findings(self, findings: list[dict[str, str]]) -> None:
        for finding in findings:
            self.findings[(finding["rule"], finding["profile"], finding["path"])] += 1

    # -- output ---------------------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        accounted = sum(self.outcomes.values())
        return {
            "run_id": self.run_id,
            "status": self.status,
            "target": self.target,
            "mapping_version": self.mapping_version,
            "records_in": self.records_in,
            "previously_done": self.previously_done,
            "outcomes": dict(self.outcomes),
            "accounted": accounted + self.previously_done,
            "resources": dict(sorted(self.resources.items())),
            "files": self.files,
            "quarantine_reasons": dict(self.quarantine_reasons.most_common()),
            "quarantined": self.quarantined,
            "skipped": self.skipped,
            "unmapped_codes": [
                {"table": t, "system": s, "code": c, "count": n,
                 "example": self.unmapped_example[(t, s, c)]}
                for (t, s, c), n in self.unmapped.most_common()
            ],
            "issues": [
                {"issue": code, "count": n, "example": self.issue_example[code]}
                for code, n in self.issues.most_common()
            ],
            "validation_findings": [
                {"rule": r, "profile": p, "path": path, "count": n}
                for (r, p, path), n in self.findings.most_common()
            ],
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(), indent=2, ensure_ascii=False) + "\n",
                        encoding="utf-8")

    def summary(self) -> str:
        data = self.as_dict()
        lines = [
            f"Run {self.run_id} into {self.target}: {self.status}",
            f"  records read {self.records_in}: loaded {self.outcomes['loaded']}, "
            f"quarantined {self.outcomes['quarantined']}, skipped {self.outcomes['skipped']}"
            + (f", done in earlier runs {self.previously_done}" if self.previously_done else ""),
        ]
        if self.resources:
            lines.append("  resources: " + ", ".join(f"{t} {n}" for t, n in
                                                      sorted(self.resources.items())))
        if self.quarantined:
            lines.append("  quarantined:")
            for item in self.quarantined[:20]:
                where = ", ".join(p for p in (item["file"], f"record {item['record']}",
                                              item.get("field") and f"field {item['field']}")
                                  if p)
                lines.append(f"    {where}: {item['reason']}")
        if data["unmapped_codes"]:
            lines.append("  codes no table knows (commonest first):")
            for item in data["unmapped_codes"][:15]:
                system = f"{item['system']}|" if item["system"] else ""
                lines.append(f"    {item['count']:>5}  {item['table']}: {system}{item['code']}"
                             f"  (e.g. {item['example']})")
        if self.issues:
            lines.append("  issues: " + ", ".join(f"{c} {n}" for c, n in
                                                   self.issues.most_common()))
        if self.findings:
            lines.append("  validation findings (commonest first):")
            for (rule, profile, path), n in self.findings.most_common(10):
                lines.append(f"    {n:>5}  {rule} {path} ({profile.rsplit('/', 1)[-1]})")
        return "\n".join(lines)


def _where(record: SourceRecord) -> str:
    return f"{Path(record.file).name}#{record.record_id}"
