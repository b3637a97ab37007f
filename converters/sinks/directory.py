"""The embedded default target: a directory a person can read and a FHIR server can import.

    target/bundles/<source file>/<position>-<record id>.json   one transaction Bundle per record
    target/ndjson/<ResourceType>.ndjson                          bulk-data files, one line per id
    target/quarantine/...                                        see converters.quarantine
    target/report.json, target/ledger.db, target/id-key          the run's account and state

Durability before accounting: ``write`` appends every resource to a journal
(``ndjson/journal.log``) and flushes it before returning, so what the ledger then records as
loaded is on disk even if the process is killed a moment later. ``close`` (of this run, or of the
next one after a crash) compacts the journal into the NDJSON files: one line per id, the last
update winning, a create-if-absent line only filling a gap. Re-runs converge on the same files.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from converters.fhir.assembler import Assembled
from converters.records import SourceRecord
from converters.sinks.results import WriteResult

JOURNAL = "journal.log"
LOCK = ".lock"


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Several tasks may write one target at once (mapped Airflow tasks): one at a time here."""
    with (folder / LOCK).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:80] or "record"


class DirectorySink:
    """Write bundles and NDJSON into a folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.name = f"dir:{root.resolve()}"
        (root / "bundles").mkdir(parents=True, exist_ok=True)
        (root / "ndjson").mkdir(parents=True, exist_ok=True)
        self._ndjson = root / "ndjson"

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
            results.append(WriteResult(True, [e.key for e in assembled.entries]))
        lines = [("?" if e.if_absent else "=") + (assembled.source_time or "-") + "\t"
                 + json.dumps(e.resource, ensure_ascii=False, separators=(",", ":")) + "\n"
                 for _, assembled in items for e in assembled.entries]
        with _locked(self._ndjson), (self._ndjson / JOURNAL).open("a", encoding="utf-8") as out:
            out.write("".join(lines))
            out.flush()
            os.fsync(out.fileno())
        return results

    def close(self) -> None:
        with _locked(self._ndjson):
            compact(self._ndjson)


def compact(folder: Path) -> None:
    """Fold the journal into one NDJSON file per resource type, then empty the journal."""
    journal = folder / JOURNAL
    if not journal.exists():
        return
    # Per id: of the updates, the newest source statement wins (ties: the greater line), so the
    # result does not depend on the order parallel tasks wrote in; of the create-if-absent
    # mentions, the oldest, and only where no update and no earlier line exists.
    updates: dict[str, dict[str, tuple[str, str]]] = {}
    if_absent: dict[str, dict[str, tuple[str, str]]] = {}
    with journal.open(encoding="utf-8") as handle:
        for raw in handle:
            if len(raw) < 3 or not raw.endswith("\n") or "\t" not in raw:
                continue  # a line cut off by a kill was never acknowledged to the ledger
            head, line = raw[:-1].split("\t", 1)
            mode, stamp = head[0], head[1:]
            resource_type, resource_id = _type_and_id(line)
            if mode == "=":
                book = updates.setdefault(resource_type, {})
                book[resource_id] = max(book.get(resource_id, ("", "")), (stamp, line))
            else:
                book = if_absent.setdefault(resource_type, {})
                book[resource_id] = min(book.get(resource_id, ("~", "~")), (stamp, line))
    for resource_type in sorted(set(updates) | set(if_absent)):
        path = folder / f"{resource_type}.ndjson"
        merged = _read_lines(path)
        merged.update({k: v[1] for k, v in updates.get(resource_type, {}).items()})
        for resource_id, (_, line) in if_absent.get(resource_type, {}).items():
            merged.setdefault(resource_id, line)
        tmp = path.with_suffix(".ndjson.tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            for resource_id in sorted(merged):
                handle.write(merged[resource_id] + "\n")
        os.replace(tmp, path)
    journal.unlink()


def _read_lines(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    out: dict[str, str] = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            line = line.rstrip("\n")
            if line:
                out[_type_and_id(line)[1]] = line
    return out


_HEAD = re.compile(r'^\{"resourceType":"([A-Za-z]+)","id":"([^"]+)"')


def _type_and_id(line: str) -> tuple[str, str]:
    found = _HEAD.match(line)
    if found:
        return found.group(1), found.group(2)
    data = json.loads(line)
    return data["resourceType"], str(data["id"])


class NullSink:
    """Convert and validate, keep nothing: for benchmarks and dry runs."""

    name = "null:"

    def write(self, items: list[tuple[SourceRecord, Assembled]]) -> list[WriteResult]:
        return [WriteResult(True, [e.key for e in a.entries]) for _, a in items]

    def close(self) -> None:
        return None
