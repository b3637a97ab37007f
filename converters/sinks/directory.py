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
        merged = _read_stamped(path)
        for resource_id, stamped in updates.get(resource_type, {}).items():
            merged[resource_id] = max(merged.get(resource_id, ("", "")), stamped)
        for resource_id, (_, line) in if_absent.get(resource_type, {}).items():
            # A mention fills a gap with the lowest stamp: any update, older or newer, replaces it.
            merged.setdefault(resource_id, ("", line))
        _write_stamped(path, merged)
    journal.unlink()


def _read_stamped(path: Path) -> dict[str, tuple[str, str]]:
    """The NDJSON lines by id, each with the source time of the statement it holds.

    The times live in a sidecar (``<Type>.ndjson.stamps``) because the NDJSON itself must stay
    plain FHIR for bulk import; they let a later compaction keep the newest statement.
    """
    if not path.exists():
        return {}
    stamps: dict[str, str] = {}
    sidecar = path.with_suffix(".ndjson.stamps")
    if sidecar.exists():
        for row in sidecar.read_text(encoding="utf-8").splitlines():
            resource_id, _, stamp = row.partition("\t")
            stamps[resource_id] = stamp
    out: dict[str, tuple[str, str]] = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            line = line.rstrip("\n")
            if line:
                resource_id = _type_and_id(line)[1]
                out[resource_id] = (stamps.get(resource_id, ""), line)
    return out


def _write_stamped(path: Path, merged: dict[str, tuple[str, str]]) -> None:
    tmp = path.with_suffix(".ndjson.tmp")
    stamps_tmp = path.with_suffix(".stamps.tmp")
    with tmp.open("w", encoding="utf-8") as lines, stamps_tmp.open("w", encoding="utf-8") as st:
        for resource_id in sorted(merged):
            stamp, line = merged[resource_id]
            lines.write(line + "\n")
            st.write(f"{resource_id}\t{stamp}\n")
    os.replace(stamps_tmp, path.with_suffix(".ndjson.stamps"))
    os.replace(tmp, path)


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
