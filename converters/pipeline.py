"""The pipeline: read -> map -> assemble -> validate -> write, with the ledger counting each record.

    for each export file:          skip it when the ledger has it done with the same checksum
      for each record it holds:    (readers)         skip positions done in an earlier run
        convert                    (mapping engine)  SourceError -> quarantine
        assemble                   (fhir assembler)  ids, references, transaction Bundle
        validate                   (validation)      profile findings -> quarantine (or warn)
        write                      (sink)            directory or FHIR server; 4xx -> quarantine
        account                    (ledger)          loaded / quarantined / skipped, with reason

The command line and the Airflow DAGs are thin layers over :class:`Pipeline`. Nothing here logs
a value from a record: only files, positions, record ids, counts and rule names.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from converters.errors import BabyconnectError, SourceError, ValidationFailed
from converters.fhir.assembler import Assembled, Assembler
from converters.fhir.ids import IdMaker
from converters.ledger import Ledger
from converters.mapping.engine import Conversion, Engine
from converters.mapping.tables import MappingSet
from converters.quarantine import Quarantine
from converters.readers.registry import discover, reader_for
from converters.records import Outcome, SourceRecord
from converters.report import RunReport
from converters.sinks.results import WriteResult

log = logging.getLogger(__name__)

BATCH = 64


class Sink(Protocol):
    name: str

    def write(self, items: list[tuple[SourceRecord, Assembled]]) -> list[WriteResult]: ...
    def close(self) -> None: ...


class Validator(Protocol):
    def validate(self, resource: dict[str, Any], resolve: Any = None) -> list[Any]: ...


@dataclass
class Options:
    validation: str = "strict"          # strict: failing resources quarantine their record;
                                        # warn: load and report; off: structure not checked
    trace: bool = False                 # record lineage and coverage (issue 8)
    source: str = "cli"                 # the source system's name, for the ledger
    kind: str = "convert"               # convert | migrate | nightly | reprocess
    progress: Callable[[int], None] | None = None
    file_pattern: str = "*"
    limit_files: int | None = None


@dataclass(slots=True)
class Prepared:
    record: SourceRecord
    conversion: Conversion
    assembled: Assembled
    findings: list[dict[str, str]]


class Pipeline:
    def __init__(self, *, mappings: MappingSet, sink: Sink, ledger: Ledger, ids: IdMaker,
                 quarantine: Quarantine, validator: Validator | None,
                 options: Options | None = None) -> None:
        self.mappings = mappings
        self.sink = sink
        self.ledger = ledger
        self.quarantine = quarantine
        self.validator = validator
        self.options = options or Options()
        self.engine = Engine(mappings, trace=self.options.trace)
        self.assembler = Assembler(ids, mappings.version)
        self.conversions: list[Conversion] = []  # kept only when tracing (explain, coverage)

    # -- a run ----------------------------------------------------------------------------------

    def run(self, inputs: Sequence[Path], run_id: str | None = None) -> RunReport:
        """Process every export under ``inputs``; return the run report."""
        run_id = self.ledger.start_run(source=self.options.source, kind=self.options.kind,
                                       target=self.sink.name, run_id=run_id)
        report = RunReport(run_id, self.sink.name, self.mappings.version)
        files = discover(inputs, self.options.file_pattern)[: self.options.limit_files]
        log.info("run %s: %d file(s) into %s", run_id, len(files), self.sink.name)
        status = "failed"
        try:
            for path in files:
                self.process_file(path, run_id, report)
            status = "partial" if report.outcomes[Outcome.QUARANTINED.value] else "success"
        finally:
            self.sink.close()
            report.status = status
            self.ledger.finish_run(run_id, status)
        return report

    def process_file(self, path: Path, run_id: str, report: RunReport) -> None:
        checksum, size = file_checksum(path)
        target = self.sink.name
        if self.ledger.file_done(path=str(path), checksum=checksum, target=target):
            log.info("%s: unchanged since it was processed, skipped", path)
            report.files.append({"file": str(path), "status": "unchanged, skipped"})
            report.count_skipped(str(path), "", "file unchanged since an earlier run", 0)
            return
        try:
            reader = reader_for(path)
        except SourceError as exc:
            log.warning("%s: no reader for this file, skipped", path)
            report.files.append({"file": str(path), "status": f"skipped: {exc.reason}"})
            report.count_skipped(str(path), "", exc.reason, 0)
            return
        file_id = self.ledger.begin_file(run_id=run_id, path=str(path), checksum=checksum,
                                         size=size, target=target)
        done = self.ledger.done_positions(checksum=checksum, target=target)
        count = self._process_records(reader(path), done, run_id, file_id, report)
        self.ledger.finish_file(file_id, records=count)
        report.files.append({"file": str(path), "status": "processed", "records": count})
        log.info("%s: %d record(s)", path, count)

    def _process_records(self, records: Iterator[SourceRecord], done: set[int], run_id: str,
                         file_id: int, report: RunReport) -> int:
        count = 0
        pending: list[SourceRecord] = []
        try:
            for record in records:
                count += 1
                report.records_in += 1
                if self.options.progress:
                    self.options.progress(1)
                if record.position in done:
                    report.previously_done += 1
                    continue
                pending.append(record)
                if len(pending) >= BATCH:
                    self._process_batch(pending, run_id, file_id, report)
                    pending = []
        except SourceError as exc:
            # The reader gave up on the rest of the file (no header, not a workbook): that rest
            # becomes one quarantined record, so the file is accounted for and the run goes on.
            count += 1
            report.records_in += 1
            pending.append(_rest_of_file(exc, count))
        if pending:
            self._process_batch(pending, run_id, file_id, report)
        return count

    def _process_batch(self, records: list[SourceRecord], run_id: str, file_id: int,
                       report: RunReport) -> None:
        """Convert, write and account for a batch; the ledger is written once, after the sink."""
        loaded_before = self.ledger.loaded_contents(
            content_hashes=[r.content_hash for r in records if r.error is None],
            target=self.sink.name,
        )
        outcomes: list[dict[str, Any]] = []
        try:
            batch = []
            for record in records:
                if record.error is None and record.content_hash in loaded_before:
                    self._skip_duplicate(record, run_id, file_id, report, outcomes)
                    continue
                prepared = self._prepare(record, run_id, file_id, report, outcomes)
                if prepared is not None:
                    batch.append(prepared)
            if batch:
                self._write(batch, run_id, file_id, report, outcomes)
        finally:
            self.ledger.record_outcomes(outcomes)  # what did reach the sink stays counted

    # -- one record -----------------------------------------------------------------------------

    def _skip_duplicate(self, record: SourceRecord, run_id: str, file_id: int,
                        report: RunReport, outcomes: list[dict[str, Any]]) -> None:
        reason = "an identical record was loaded before (re-sent in another file)"
        report.count_skipped(record.file, record.record_id, reason)
        outcomes.append(_outcome(record, run_id, file_id, Outcome.SKIPPED, reason=reason,
                                 reason_code="duplicate"))

    def _prepare(self, record: SourceRecord, run_id: str, file_id: int, report: RunReport,
                 outcomes: list[dict[str, Any]]) -> Prepared | None:
        try:
            conversion = self.engine.convert(record)
            report.count_conversion(conversion)
            if self.options.trace:
                self.conversions.append(conversion)
            assembled = self.assembler.assemble(conversion)
            findings = self._validate(record, assembled, report)
        except SourceError as exc:
            reason: dict[str, Any] = exc.as_dict()
            if isinstance(exc, ValidationFailed):
                reason["findings"] = exc.findings
            self._quarantine(record, reason, run_id, file_id, report, outcomes)
            return None
        return Prepared(record, conversion, assembled, findings)

    def _validate(self, record: SourceRecord, assembled: Assembled,
                  report: RunReport) -> list[dict[str, str]]:
        if self.validator is None or self.options.validation == "off":
            return []
        resolve = assembled.resolver()
        findings = []
        for entry in assembled.entries:
            for finding in self.validator.validate(entry.resource, resolve):
                findings.append(finding.as_dict())
        report.count_findings(findings)
        errors = [f for f in findings if f.get("severity", "error") == "error"]
        if errors and self.options.validation == "strict":
            report_findings = errors[:20]
            first = errors[0]
            raise ValidationFailed(
                f"{len(errors)} profile finding(s); first: {first['rule']} at {first['path']}",
                report_findings,
                file=record.file,
                record_id=record.record_id,
                field=first["path"],
                rule=first["profile"],
            )
        return findings

    def _write(self, batch: list[Prepared], run_id: str, file_id: int, report: RunReport,
               outcomes: list[dict[str, Any]]) -> None:
        results = self.sink.write([(p.record, p.assembled) for p in batch])
        for prepared, result in zip(batch, results, strict=True):
            record = prepared.record
            if result.ok:
                report.count_loaded(record, [e.resource["resourceType"]
                                             for e in prepared.assembled.entries])
                outcomes.append(_outcome(record, run_id, file_id, Outcome.LOADED,
                                         bundle_id=prepared.assembled.bundle["id"],
                                         server_ids=result.server_ids))
                continue
            error = result.error
            if error is not None and getattr(error, "retryable", False):
                raise error  # the target is unreachable: stop; a re-run resumes from the ledger
            reason = {"code": "rejected-by-server",
                      "reason": str(error) if error else "the target refused the bundle",
                      "field": "", "rule": "", "file": record.file,
                      "record_id": record.record_id}
            if result.outcome:
                reason["operation_outcome"] = result.outcome  # type: ignore[assignment]
            self._quarantine(record, reason, run_id, file_id, report, outcomes)

    def _quarantine(self, record: SourceRecord, reason: dict[str, Any], run_id: str,
                    file_id: int, report: RunReport, outcomes: list[dict[str, Any]]) -> None:
        stored = self.quarantine.put(record, {**reason, "ledger_file_id": file_id,
                                              "run_id": run_id})
        report.count_quarantined(record, {k: str(v) for k, v in reason.items()
                                          if k in ("code", "reason", "field", "rule")})
        outcomes.append(_outcome(record, run_id, file_id, Outcome.QUARANTINED,
                                 reason=str(reason.get("reason", "")),
                                 reason_code=str(reason.get("code", "")),
                                 quarantine_path=stored))
        log.info("%s record %s (position %d): quarantined, %s", record.file, record.record_id,
                 record.position, reason.get("code"))


    def reprocess(self, entries: list[tuple[SourceRecord, int]], report: RunReport,
                  run_id: str) -> None:
        """Convert quarantined records again; each keeps its original ledger place."""
        for record, file_id in entries:
            report.records_in += 1
            outcomes: list[dict[str, Any]] = []
            try:
                prepared = self._prepare(record, run_id, file_id, report, outcomes)
                if prepared is not None:
                    self._write([prepared], run_id, file_id, report, outcomes)
            finally:
                self.ledger.record_outcomes(outcomes)


def _rest_of_file(error: SourceError, position: int) -> SourceRecord:
    path = Path(error.file)
    raw = path.read_bytes() if path.exists() and path.stat().st_size <= 10 << 20 else b""
    error.record_id = error.record_id or f"file from record {position}"
    return SourceRecord(file=error.file, position=position, record_id=error.record_id,
                        format="file", kind="", raw=raw, error=error)


def _outcome(record: SourceRecord, run_id: str, file_id: int, outcome: Outcome,
             **details: Any) -> dict[str, Any]:
    return {"run_id": run_id, "file_id": file_id, "position": record.position,
            "record_id": record.record_id, "content_hash": record.content_hash,
            "outcome": outcome, **details}


def file_checksum(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def iter_records(paths: Iterable[Path]) -> Iterator[SourceRecord]:
    """Every record of every export under ``paths`` (for explain and coverage)."""
    for path in discover(paths):
        try:
            reader = reader_for(path)
        except BabyconnectError:
            continue
        yield from reader(path)
