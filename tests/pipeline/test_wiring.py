"""The ledger keys rows by the target's name: DAG tasks and the pipeline must agree on it."""

from __future__ import annotations

from pathlib import Path

from converters.wiring import Settings, build_sink, target_name


def test_the_target_name_is_the_one_each_sink_gives_itself(tmp_path: Path) -> None:
    for target in (str(tmp_path / "out"), "null:", "http://127.0.0.1:9/fhir/"):
        settings = Settings(target=target)
        sink = build_sink(settings)
        assert target_name(settings) == sink.name, target
        if hasattr(sink, "close") and target.startswith("http"):
            sink.close()
