"""The ledger: what happened to every file and every record, per target (SQLAlchemy 2 Core).

Three tables. ``runs``: one row per pipeline run. ``files``: one row per file a run began, with the
record count once the file is finished. ``records``: one row per (file content, position, target)
holding the record's final outcome; a reprocessed record overwrites its row (upsert), so a resumed
or repeated run never counts a record twice. Keys are content checksums, not paths: a file moved
or renamed is still recognised, and a corrected file (new checksum) is processed anew.

The ledger holds places, hashes, outcomes and the pipeline's own reasons; never payloads and never
patient data. SQLite by default (WAL, busy timeout, so several processes can share one file);
PostgreSQL by URL for scaled-out runs.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from converters.errors import ConfigurationError
from converters.records import Outcome

REASON_MAX = 1000

metadata = MetaData()

runs_table = Table(
    "ledger_runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("source", String(200), nullable=False),
    Column("kind", String(50), nullable=False),
    Column("target", String(200), nullable=False),
    Column("params", Text, nullable=False, default="{}"),
    Column("status", String(20), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
)

files_table = Table(
    "ledger_files",
    metadata,
    Column("file_id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False, index=True),
    Column("path", Text, nullable=False),
    Column("checksum", String(128), nullable=False),
    Column("size", Integer, nullable=False),
    Column("target", String(200), nullable=False),
    Column("records", Integer),  # set by finish_file; NULL while the file is in progress
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True)),
)

records_table = Table(
    "ledger_records",
    metadata,
    Column("checksum", String(128), nullable=False),
    Column("position", Integer, nullable=False),
    Column("target", String(200), nullable=False),
    Column("run_id", String(64), nullable=False, index=True),
    Column("file_id", Integer, nullable=False, index=True),
    Column("record_id", String(200), nullable=False),
    Column("content_hash", String(128), nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("reason_code", String(100), nullable=False, default=""),
    Column("bundle_id", String(200), nullable=False, default=""),
    Column("server_ids", Text, nullable=False, default="[]"),
    Column("quarantine_path", Text, nullable=False, default=""),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("checksum", "position", "target", name="uq_ledger_record"),
)

# Lookups the pipeline makes per record and per file.
Index("ix_ledger_records_content", records_table.c.content_hash, records_table.c.target)
Index("ix_ledger_files_content", files_table.c.checksum, files_table.c.target)


@dataclass(frozen=True)
class QuarantineEntry:
    """A quarantined record: where it came from and why, never its content."""

    path: str
    position: int
    record_id: str
    reason: str
    reason_code: str
    quarantine_path: str
    run_id: str


@dataclass(frozen=True)
class FileReconciliation:
    """One file of one run: records read versus records accounted for.

    ``state`` is ``complete`` (finish_file was called), ``incomplete`` (the run stopped inside the
    file) or ``resumed`` (incomplete, but a later run completed the same content into the same
    target). ``difference`` is input minus accounted; None while the input count is unknown.
    """

    run_id: str
    file_id: int
    path: str
    checksum: str
    target: str
    state: str
    input_records: int | None
    loaded: int
    quarantined: int
    skipped: int
    difference: int | None

    @property
    def accounted(self) -> int:
        return self.loaded + self.quarantined + self.skipped

    @property
    def ok(self) -> bool:
        return self.state == "resumed" or (self.state == "complete" and self.difference == 0)


@dataclass(frozen=True)
class Reconciliation:
    """Every file of the reconciled runs; ``ok`` when each one balances."""

    files: list[FileReconciliation]

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.files)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "files": [
                {**asdict(row), "accounted": row.accounted, "ok": row.ok} for row in self.files
            ],
        }


def _now() -> datetime:
    return datetime.now(UTC)


def _make_engine(url: str) -> Engine:
    if not url:
        raise ConfigurationError("ledger URL is empty")
    if url.startswith("sqlite"):
        # timeout: wait for another process's write lock instead of failing at once.
        engine = create_engine(url, connect_args={"timeout": 60})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers in other processes go on while one process writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Ledger:
    """Record runs, files and record outcomes; answer what to skip and whether a run balances."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine = _make_engine(url)
        self._upsert_factory = (
            postgresql.insert if self._engine.dialect.name == "postgresql" else sqlite.insert
        )
        self._file_keys: dict[int, tuple[str, str]] = {}
        self._create_tables()

    def _create_tables(self) -> None:
        # Several processes may open a new ledger at once; each table and index is checked and
        # created separately, so another process can win any of those races: check again.
        for attempt in range(10):
            try:
                metadata.create_all(self._engine, checkfirst=True)
                return
            except (IntegrityError, OperationalError, ProgrammingError):
                if attempt == 9:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def close(self) -> None:
        """Release the connection pool."""
        self._engine.dispose()

    # -- runs ---------------------------------------------------------------------------------

    def start_run(
        self,
        *,
        source: str,
        kind: str,
        target: str,
        run_id: str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> str:
        """Register a run and return its id (a new UUID unless given)."""
        run_id = run_id or str(uuid.uuid4())
        with self._engine.begin() as conn:
            conn.execute(
                insert(runs_table).values(
                    run_id=run_id,
                    source=source,
                    kind=kind,
                    target=target,
                    params=json.dumps(dict(params or {}), sort_keys=True),
                    status="running",
                    started_at=_now(),
                )
            )
        return run_id

    def finish_run(self, run_id: str, status: str) -> None:
        """Mark a run finished with a status (``success``, ``failed``, ...)."""
        with self._engine.begin() as conn:
            conn.execute(
                update(runs_table)
                .where(runs_table.c.run_id == run_id)
                .values(status=status, finished_at=_now())
            )

    def runs(self) -> list[dict]:
        """Return every run, oldest first, as plain dicts."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(runs_table).order_by(runs_table.c.started_at)).mappings()
            return [{**row, "params": json.loads(row["params"])} for row in rows]

    # -- files --------------------------------------------------------------------------------

    def file_done(self, *, path: str, checksum: str, target: str) -> bool:
        """True when a file with this checksum was completely processed into this target before.

        ``path`` is not part of the test: the same content under another name is the same file.
        """
        query = (
            select(files_table.c.file_id)
            .where(
                files_table.c.checksum == checksum,
                files_table.c.target == target,
                files_table.c.completed_at.is_not(None),
            )
            .limit(1)
        )
        with self._engine.connect() as conn:
            return conn.execute(query).first() is not None

    def begin_file(self, *, run_id: str, path: str, checksum: str, size: int, target: str) -> int:
        """Register that a run starts on a file; return the file id for record outcomes."""
        with self._engine.begin() as conn:
            result = conn.execute(
                insert(files_table)
                .values(
                    run_id=run_id,
                    path=path,
                    checksum=checksum,
                    size=size,
                    target=target,
                    started_at=_now(),
                )
                .returning(files_table.c.file_id)
            )
            file_id = int(result.scalar_one())
        self._file_keys[file_id] = (checksum, target)
        return file_id

    def finish_file(self, file_id: int, *, records: int) -> None:
        """Mark a file complete with the number of records read from it."""
        with self._engine.begin() as conn:
            conn.execute(
                update(files_table)
                .where(files_table.c.file_id == file_id)
                .values(records=records, completed_at=_now())
            )

    # -- records ------------------------------------------------------------------------------

    def done_positions(self, *, checksum: str, target: str) -> set[int]:
        """Positions of this file content that already ended in an outcome for this target."""
        query = select(records_table.c.position).where(
            records_table.c.checksum == checksum, records_table.c.target == target
        )
        with self._engine.connect() as conn:
            return set(conn.execute(query).scalars())

    def record_outcome(
        self,
        *,
        run_id: str,
        file_id: int,
        position: int,
        record_id: str,
        content_hash: str,
        outcome: Outcome,
        reason: str = "",
        reason_code: str = "",
        bundle_id: str = "",
        server_ids: Sequence[str] = (),
        quarantine_path: str = "",
    ) -> None:
        """Store a record's outcome; a record processed again gets its new outcome."""
        self.record_outcomes([{
            "run_id": run_id, "file_id": file_id, "position": position, "record_id": record_id,
            "content_hash": content_hash, "outcome": outcome, "reason": reason,
            "reason_code": reason_code, "bundle_id": bundle_id, "server_ids": server_ids,
            "quarantine_path": quarantine_path,
        }])

    def record_outcomes(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Store many outcomes (the keyword arguments of :meth:`record_outcome`) in one
        transaction: a pipeline accounts for a whole write batch at once."""
        if not rows:
            return
        now = _now()
        values = []
        for row in rows:
            checksum, target = self._file_key(row["file_id"])
            values.append({
                "checksum": checksum,
                "position": row["position"],
                "target": target,
                "run_id": row["run_id"],
                "file_id": row["file_id"],
                "record_id": row["record_id"],
                "content_hash": row["content_hash"],
                "outcome": Outcome(row["outcome"]).value,
                "reason": str(row.get("reason", ""))[:REASON_MAX],
                "reason_code": row.get("reason_code", ""),
                "bundle_id": row.get("bundle_id", ""),
                "server_ids": json.dumps(list(row.get("server_ids", ()))),
                "quarantine_path": row.get("quarantine_path", ""),
                "updated_at": now,
            })
        statement = self._upsert_factory(records_table)
        updated = [c for c in values[0] if c not in ("checksum", "position", "target")]
        statement = statement.on_conflict_do_update(
            index_elements=["checksum", "position", "target"],
            set_={name: statement.excluded[name] for name in updated},
        )
        with self._engine.begin() as conn:
            conn.execute(statement, values)

    def loaded_contents(self, *, content_hashes: Sequence[str], target: str) -> set[str]:
        """The hashes among ``content_hashes`` of records already loaded into this target."""
        if not content_hashes:
            return set()
        query = select(records_table.c.content_hash).where(
            records_table.c.content_hash.in_(sorted(set(content_hashes))),
            records_table.c.target == target,
            records_table.c.outcome == Outcome.LOADED.value,
        )
        with self._engine.connect() as conn:
            return set(conn.execute(query).scalars())

    def content_loaded(self, *, content_hash: str, target: str) -> bool:
        """True when a record with exactly this content was loaded into this target before."""
        query = (
            select(records_table.c.position)
            .where(
                records_table.c.content_hash == content_hash,
                records_table.c.target == target,
                records_table.c.outcome == Outcome.LOADED.value,
            )
            .limit(1)
        )
        with self._engine.connect() as conn:
            return conn.execute(query).first() is not None

    def quarantined(
        self, *, source: str | None = None, run_id: str | None = None
    ) -> list[QuarantineEntry]:
        """Return the quarantined records, optionally of one source or one run."""
        r, f = records_table, files_table
        query = (
            select(
                f.c.path,
                r.c.position,
                r.c.record_id,
                r.c.reason,
                r.c.reason_code,
                r.c.quarantine_path,
                r.c.run_id,
            )
            .join(f, f.c.file_id == r.c.file_id)
            .join(runs_table, runs_table.c.run_id == r.c.run_id)
            .where(r.c.outcome == Outcome.QUARANTINED.value)
            .order_by(f.c.path, r.c.position)
        )
        if source is not None:
            query = query.where(runs_table.c.source == source)
        if run_id is not None:
            query = query.where(r.c.run_id == run_id)
        with self._engine.connect() as conn:
            return [QuarantineEntry(**row) for row in conn.execute(query).mappings()]

    # -- reconciliation -----------------------------------------------------------------------

    def reconcile(self, run_id: str | None = None) -> Reconciliation:
        """Compare, per run and file, records read with records loaded, quarantined or skipped.

        A completed file is balanced against every outcome stored for its content and target (a
        resumed run finishes what an earlier run began); an unfinished file is shown with what
        its own run recorded.
        """
        files_query = select(files_table).order_by(files_table.c.file_id)
        if run_id is not None:
            files_query = files_query.where(files_table.c.run_id == run_id)
        with self._engine.connect() as conn:
            files = list(conn.execute(files_query).mappings())
            completed = self._completed_contents(conn)
            rows = [self._reconcile_file(conn, row, completed) for row in files]
        return Reconciliation(rows)

    def _completed_contents(self, conn: Any) -> set[tuple[str, str]]:
        query = (
            select(files_table.c.checksum, files_table.c.target)
            .where(files_table.c.completed_at.is_not(None))
            .distinct()
        )
        return {(row.checksum, row.target) for row in conn.execute(query)}

    def _reconcile_file(
        self, conn: Any, row: Mapping[str, Any], completed: set[tuple[str, str]]
    ) -> FileReconciliation:
        r = records_table
        if row["completed_at"] is not None:
            state = "complete"
            where = and_(r.c.checksum == row["checksum"], r.c.target == row["target"])
        else:
            done_later = (row["checksum"], row["target"]) in completed
            state = "resumed" if done_later else "incomplete"
            where = r.c.file_id == row["file_id"]
        query = select(r.c.outcome, func.count()).where(where).group_by(r.c.outcome)
        counts = {outcome: int(n) for outcome, n in conn.execute(query)}
        loaded, quarantined, skipped = (counts.get(o.value, 0) for o in Outcome)
        inputs = row["records"]
        difference = None if inputs is None else inputs - (loaded + quarantined + skipped)
        return FileReconciliation(
            run_id=row["run_id"],
            file_id=row["file_id"],
            path=row["path"],
            checksum=row["checksum"],
            target=row["target"],
            state=state,
            input_records=inputs,
            loaded=loaded,
            quarantined=quarantined,
            skipped=skipped,
            difference=difference,
        )

    def _file_key(self, file_id: int) -> tuple[str, str]:
        key = self._file_keys.get(file_id)
        if key is None:
            query = select(files_table.c.checksum, files_table.c.target).where(
                files_table.c.file_id == file_id
            )
            with self._engine.connect() as conn:
                row = conn.execute(query).first()
            if row is None:
                raise KeyError(f"ledger: no file with id {file_id}")
            key = self._file_keys[file_id] = (row.checksum, row.target)
        return key
