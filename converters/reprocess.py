"""Reprocess quarantined records after a mapping author has fixed a table.

Each quarantined record's original bytes are read back with the reader of its format and sent
through the same pipeline; its ledger row (original file content and position) gets the new
outcome, so reconciliation keeps adding up. A record that fails again stays in quarantine with
its new reason.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from converters.errors import SourceError
from converters.readers.registry import reader_for
from converters.records import SourceRecord
from converters.report import RunReport
from converters.wiring import Settings, build_pipeline

log = logging.getLogger(__name__)


def reprocess(settings: Settings, source: str | None = None, run: str | None = None) -> RunReport:
    """Reprocess every quarantined record of the state folder (optionally one source or run)."""
    pipeline = build_pipeline(settings)
    quarantine = pipeline.quarantine
    run_id = pipeline.ledger.start_run(source=settings.source, kind="reprocess",
                                       target=pipeline.sink.name)
    report = RunReport(run_id, pipeline.sink.name, pipeline.mappings.version)
    selected = [(path, meta) for path, meta in quarantine.entries()
                if (run is None or meta.get("run_id") == run)]
    status = "failed"
    try:
        for data_path, meta in selected:
            record = _reread(data_path, meta)
            if record is None:  # stays in quarantine, and the report says so
                report.count_skipped(meta["file"], meta["record_id"],
                                     "stays in quarantine: no reader finds a record in its bytes")
                continue
            quarantine.remove(data_path)
            pipeline.reprocess([(record, int(meta["ledger_file_id"]))], report, run_id)
        status = "partial" if report.outcomes["quarantined"] else "success"
    finally:
        pipeline.sink.close()
        report.status = status
        pipeline.ledger.finish_run(run_id, status)
    log.info("reprocess %s: %d quarantined record(s) tried", run_id, len(selected))
    return report


def _reread(data_path: Path, meta: dict) -> SourceRecord | None:
    """Read the stored bytes back into a record that keeps its original file and position."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / data_path.name
        data = data_path.read_bytes()
        if meta.get("format") in ("csv", "xlsx") and meta.get("headers"):
            # A quarantined row is stored without its header; the header travels in the reason.
            header = meta["headers"].replace("\t", meta.get("separator", ";")) + "\n"
            data = header.encode("utf-8") + data
        copy.write_bytes(data)
        try:
            records = list(reader_for(copy)(copy))
        except SourceError:
            return None
    if not records:
        return None
    record = records[0]
    record.file = meta["file"]
    record.position = int(meta["position"])
    record.record_id = meta["record_id"]
    return record
