"""Build a :class:`Pipeline` from settings: the one place the command line and the DAGs share.

A *target* is a folder (the embedded default) or a FHIR base URL. A *state folder* holds what a
target needs between runs: the ledger (SQLite unless a URL is given), the id key (unless one is
configured) and the quarantine. For a folder target the state lives in the folder itself.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from converters.fhir.assembler import Assembled
from converters.fhir.ids import IdMaker, resolve_key
from converters.ledger import Ledger
from converters.mapping.tables import MappingSet, load_mappings
from converters.pipeline import Options, Pipeline
from converters.quarantine import Quarantine
from converters.records import SourceRecord
from converters.sinks.directory import DirectorySink, NullSink
from converters.sinks.results import WriteResult

DEFAULT_STATE = Path(".babyconnect")


@dataclass
class Settings:
    target: str                              # a folder, "null:", or an http(s) FHIR base URL
    state_dir: Path | None = None
    ledger_url: str | None = None
    id_key: str | None = None
    mappings_dir: Path | None = None
    validation: str = "strict"
    trace: bool = False
    source: str = "cli"
    kind: str = "convert"
    server: dict[str, Any] = field(default_factory=dict)  # ServerSettings overrides


def is_server(target: str) -> bool:
    return target.startswith(("http://", "https://"))


def state_folder(settings: Settings) -> Path:
    if settings.state_dir is not None:
        return settings.state_dir
    if is_server(settings.target) or settings.target == "null:":
        return DEFAULT_STATE
    return Path(settings.target)


def build_pipeline(settings: Settings, mappings: MappingSet | None = None) -> Pipeline:
    """Wire mappings, sink, ledger, ids, quarantine and validator for one run."""
    state = state_folder(settings)
    mappings = mappings or load_mappings(settings.mappings_dir)
    ledger = open_ledger(settings)
    ids = IdMaker(resolve_key(settings.id_key, state))
    validator = default_validator() if settings.validation != "off" else None
    _freeze_long_lived()
    return Pipeline(
        mappings=mappings,
        sink=build_sink(settings),
        ledger=ledger,
        ids=ids,
        quarantine=Quarantine(state / "quarantine"),
        validator=validator,
        options=Options(validation=settings.validation, trace=settings.trace,
                        source=settings.source, kind=settings.kind),
    )


def _freeze_long_lived() -> None:
    """Move the loaded tables and compiled profiles out of the cyclic collector's reach.

    They live as long as the process, yet every full collection would walk their hundreds of
    thousands of objects again; a run allocates millions of short-lived dicts, so that walk
    recurs often (measured: 17% of a kraamzorg run's CPU time).
    """
    gc.collect()
    gc.freeze()


def open_ledger(settings: Settings) -> Ledger:
    """The target's ledger: the configured URL, else SQLite in the state folder."""
    state = state_folder(settings)
    state.mkdir(parents=True, exist_ok=True)
    return Ledger(settings.ledger_url or f"sqlite:///{(state / 'ledger.db').resolve()}")


def target_name(settings: Settings) -> str:
    """The name the sink gives the target, which keys its rows in the ledger."""
    if settings.target == "null:":
        return NullSink.name
    if is_server(settings.target):
        return f"fhir:{settings.target.rstrip('/')}"
    return f"dir:{Path(settings.target).resolve()}"


def build_sink(settings: Settings) -> Any:
    if settings.target == "null:":
        return NullSink()
    if is_server(settings.target):
        return ServerTarget(settings.target, settings.server)
    return DirectorySink(Path(settings.target))


def default_validator() -> Any:
    from converters.validation import ProfileValidator

    return ProfileValidator.default()


class ServerTarget:
    """Adapts the FHIR REST loader to the pipeline's sink interface."""

    def __init__(self, base_url: str, overrides: dict[str, Any]) -> None:
        from converters.sinks.fhir_server import FhirServerSink, ServerSettings

        self.settings = ServerSettings.from_env(base_url=base_url, **overrides)
        self.loader = FhirServerSink(self.settings)
        self.name = target_name(Settings(target=base_url))

    def write(self, items: list[tuple[SourceRecord, Assembled]]) -> list[WriteResult]:
        keyed = [(record.key, assembled.bundle) for record, assembled in items]
        by_key = {}
        for result in self.loader.send_many(keyed):
            outcome = getattr(result.error, "outcome", None)
            by_key[result.key] = WriteResult(result.ok, list(result.server_ids), result.error,
                                             outcome)
        return [by_key[record.key] for record, _ in items]

    def close(self) -> None:
        self.loader.close()
