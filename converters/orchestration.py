"""What the Airflow tasks call: small functions over the pipeline that take and return references.

Every function here takes paths, run ids and settings, and returns paths, counts and run ids:
never a record or a resource, so nothing identifying can reach an XCom. The DAG files in
``dags/`` only wire these into tasks. Errors keep their ``retryable`` flag so that the task layer
retries only an unreachable target, never bad input.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from converters.errors import ConfigurationError
from converters.pipeline import file_checksum
from converters.readers.registry import discover
from converters.wiring import Settings, build_pipeline, open_ledger, state_folder, target_name

log = logging.getLogger(__name__)

SCHEMA = Path(__file__).with_name("pipelines.schema.json")


@dataclass(frozen=True)
class SourceConfig:
    """One source system from the pipelines file."""

    name: str
    format: str
    inbox: str
    pattern: str = "*"
    mappings: str | None = None
    schedule: str | None = "@daily"
    target: str = "target"
    connection: str | None = None
    pool: str = "default_pool"
    pool_slots: int = 4
    state: str | None = None
    ledger: str | None = None
    archive: str | None = None
    validation: str = "strict"
    extra: dict[str, Any] = field(default_factory=dict)

    def settings(self, kind: str) -> Settings:
        target = self.target
        server: dict[str, Any] = {}
        if self.connection:
            target, server = _connection_target(self.connection)
        return Settings(
            target=target,
            state_dir=Path(self.state) if self.state else None,
            ledger_url=self.ledger,
            mappings_dir=Path(self.mappings) if self.mappings else None,
            validation=self.validation,
            source=self.name,
            kind=kind,
            server=server,
        )


def load_pipelines(path: Path) -> list[SourceConfig]:
    """Read and check the pipelines file; an error names the file and the key."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"{path}: cannot read the pipelines file: {exc}") from None
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data),
                    key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = ".".join(str(p) for p in first.absolute_path) or "(top)"
        raise ConfigurationError(f"{path} {where}: {first.message}")
    base = path.parent
    sources = []
    for item in data["sources"]:
        item = dict(item)
        for key in ("inbox", "mappings", "state", "archive"):
            if item.get(key) and "://" not in item[key] and not Path(item[key]).is_absolute():
                item[key] = str((base / item[key]).resolve())
        if item.get("target") and "://" not in item["target"] and not Path(
                item["target"]).is_absolute():
            item["target"] = str((base / item["target"]).resolve())
        if not item.get("state") and (item.get("connection") or "://" in item.get("target", "")):
            # A server target keeps its ledger and quarantine beside the pipelines file, not in
            # whatever folder a worker happens to start in.
            item["state"] = str((base / "state" / item["name"]).resolve())
        sources.append(SourceConfig(**item))
    return sources


# -- task bodies ----------------------------------------------------------------------------------


def find_new_files(source: SourceConfig, since: str | None = None,
                   until: str | None = None) -> list[str]:
    """Export files in the inbox that the ledger has not completed with the same checksum."""
    settings = source.settings("nightly")
    pipeline_target = target_name(settings)
    ledger = open_ledger(settings)
    found = []
    for path in discover([Path(source.inbox)], source.pattern):
        if not _in_range(path, since, until):
            continue
        checksum, _ = file_checksum(path)
        if not ledger.file_done(path=str(path), checksum=checksum, target=pipeline_target):
            found.append(str(path))
    log.info("source %s: %d new file(s) in the inbox", source.name, len(found))
    return found


def chunk(paths: list[str], size: int) -> list[list[str]]:
    size = max(1, int(size))
    return [paths[i:i + size] for i in range(0, len(paths), size)]


def convert_and_load(source: SourceConfig, paths: list[str], run_id: str,
                     kind: str = "nightly") -> dict[str, Any]:
    """Run the pipeline over ``paths``; return counts (no patient data) for XCom."""
    pipeline = build_pipeline(source.settings(kind))
    report = pipeline.run([Path(p) for p in paths], run_id=run_id)
    report.write(state_folder(source.settings(kind)) / "reports" / f"{report.run_id}.json")
    return {
        "run_id": report.run_id,
        "paths": list(paths),
        "files": len(paths),
        "records": report.records_in,
        "loaded": report.outcomes["loaded"],
        "quarantined": report.outcomes["quarantined"],
        "skipped": report.outcomes["skipped"],
        "previously_done": report.previously_done,
        "status": report.status,
    }


def reconcile(source: SourceConfig, run_ids: list[str]) -> dict[str, Any]:
    """Check every run: records in = loaded + quarantined + skipped."""
    ledger = open_ledger(source.settings("nightly"))
    differences = 0
    files = 0
    for run_id in run_ids:
        result = ledger.reconcile(run_id)
        files += len(result.files)
        differences += sum(1 for f in result.files if not f.ok)
    return {"runs": len(run_ids), "files": files, "unreconciled_files": differences}


def archive(source: SourceConfig, paths: list[str]) -> int:
    """Move processed files to the archive folder, keeping their names (none when unset)."""
    if not source.archive:
        return 0
    folder = Path(source.archive)
    folder.mkdir(parents=True, exist_ok=True)
    moved = 0
    for path in map(Path, paths):
        if path.exists():
            shutil.move(str(path), folder / path.name)
            moved += 1
    return moved


def summarise(source: SourceConfig, results: list[dict[str, Any]],
              reconciliation: dict[str, Any]) -> str:
    """A short text for the task log and the run note: counts, reasons, unmapped codes."""
    totals = {k: sum(r[k] for r in results) for k in
              ("files", "records", "loaded", "quarantined", "skipped")}
    lines = [f"Babyconnect {source.name}: {totals['files']} file(s), {totals['records']} "
             f"record(s): loaded {totals['loaded']}, quarantined {totals['quarantined']}, "
             f"skipped {totals['skipped']}; unreconciled files "
             f"{reconciliation.get('unreconciled_files', 0)}"]
    state = state_folder(source.settings("nightly"))
    for result in results:
        report_path = state / "reports" / f"{result['run_id']}.json"
        if report_path.exists():
            report = json.loads(report_path.read_text(encoding="utf-8"))
            for item in report.get("quarantined", [])[:10]:
                lines.append(f"  quarantined {Path(item['file']).name} record {item['record']}: "
                             f"{item['reason']}")
            for item in report.get("unmapped_codes", [])[:10]:
                lines.append(f"  unmapped {item['table']}: {item['code']} x{item['count']}")
    return "\n".join(lines)


# -- helpers --------------------------------------------------------------------------------------


def _in_range(path: Path, since: str | None, until: str | None) -> bool:
    if not since and not until:
        return True
    day = datetime.fromtimestamp(path.stat().st_mtime).date()
    if since and day < date.fromisoformat(since):
        return False
    return not (until and day > date.fromisoformat(until))


def _connection_target(conn_id: str) -> tuple[str, dict[str, Any]]:
    """Resolve an Airflow connection to a FHIR base URL and loader settings (at run time)."""
    from airflow.sdk import BaseHook

    from converters.sinks.fhir_server import ServerSettings

    settings = ServerSettings.from_airflow_connection(BaseHook.get_connection(conn_id))
    overrides = {k: v for k, v in asdict(settings).items() if k != "base_url" and v is not None}
    return settings.base_url, overrides
