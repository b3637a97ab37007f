"""The embedded default target: a directory a person can read and a FHIR server can import.

    target/bundles/<source file>/<position>-<record id>.json   one transaction Bundle per record
    target/ndjson/<ResourceType>.ndjson                          bulk-data files, one line per id
    target/quarantine/...                                        see converters.quarantine
    target/report.json, target/ledger.db, target/id-key          the run's account and state

NDJSON files hold one line per resource id: a resource met again (the same woman in tomorrow's
export) replaces its line, so re-runs converge on the same files.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from converters.fhir.assembler import Assembled
from converters.records import SourceRecord
from converters.sinks.results import WriteResult


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:80] or "record"


class DirectorySink:
    """Write bundles and NDJSON into a folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.name = f"dir:{root.resolve()}"
        self._pending: dict[str, dict[str, str]] = {}
        (root / "bundles").mkdir(parents=True, exist_ok=True)
        (root / "ndjson").mkdir(parents=True, exist_ok=True)

    def write(self, items: list[tuple[SourceRecord, Assembled]]) -> list[WriteResult]:
        results = []
        for record, assembled in items:
            folder = self.root / "bundles" / _safe(Path(record.file).name)
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{record.position:07d}-{_safe(record.record_id)}.json"
            (folder / name).write_text(
                json.dumps(assembled.bundle, ensure_ascii=False, indent=1) + "\n",
                encoding="utf-8",
            )
            for entry in assembled.entries:
                resource = entry.resource
                lines = self._pending.setdefault(resource["resourceType"], {})
                lines[resource["id"]] = json.dumps(
                    resource, ensure_ascii=False, separators=(",", ":")
                )
            results.append(WriteResult(True, [e.key for e in assembled.entries]))
        if sum(len(v) for v in self._pending.values()) > 50_000:
            self.flush()
        return results

    def flush(self) -> None:
        """Merge pending resources into the NDJSON files, one line per id (last one wins)."""
        for resource_type, lines in self._pending.items():
            path = self.root / "ndjson" / f"{resource_type}.ndjson"
            merged = _read_lines(path)
            merged.update(lines)
            tmp = path.with_suffix(".ndjson.tmp")
            with tmp.open("w", encoding="utf-8") as handle:
                for resource_id in sorted(merged):
                    handle.write(merged[resource_id] + "\n")
            os.replace(tmp, path)
        self._pending.clear()

    def close(self) -> None:
        self.flush()


def _read_lines(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    out: dict[str, str] = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            line = line.rstrip("\n")
            if line:
                out[_id_of(line)] = line
    return out


def _id_of(line: str) -> str:
    found = re.search(r'"id":"([^"]+)"', line)
    return found.group(1) if found else str(json.loads(line).get("id"))


class NullSink:
    """Convert and validate, keep nothing: for benchmarks and dry runs."""

    name = "null:"

    def write(self, items: list[tuple[SourceRecord, Assembled]]) -> list[WriteResult]:
        return [WriteResult(True, [e.key for e in a.entries]) for _, a in items]

    def close(self) -> None:
        return None
