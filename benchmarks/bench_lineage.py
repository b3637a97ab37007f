"""Measure conversion throughput with lineage tracing off (the pipeline's path) and on.

Reads the HL7v2 samples once, then converts every record ``--rounds`` times (default 200) with
``Engine(trace=False)`` and with ``Engine(trace=True)`` and prints records per second for both and
the ratio. Tracing is for the workbench (explain, coverage); the point is that the untraced path
stays as fast as before. Not a test: run it by hand,
e.g. ``.venv/bin/python benchmarks/bench_lineage.py --rounds 500``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from converters.errors import SourceError  # noqa: E402
from converters.mapping.engine import Engine  # noqa: E402
from converters.mapping.tables import load_mappings  # noqa: E402
from converters.readers.registry import discover, reader_for  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "hl7v2"


def _records(inputs: list[Path]) -> list:
    records = []
    for path in discover(inputs):
        records.extend(r for r in reader_for(path)(path) if r.error is None)
    return records


def _throughput(engine: Engine, records: list, rounds: int) -> float:
    converted = 0
    started = time.perf_counter()
    for _ in range(rounds):
        for record in records:
            try:
                engine.convert(record)
            except SourceError:
                continue
            converted += 1
    return converted / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="*", type=Path, default=[SAMPLES])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()

    mappings = load_mappings()
    records = _records(args.inputs)
    _throughput(Engine(mappings), records, 5)  # warm the segment caches and the code paths

    plain = _throughput(Engine(mappings, trace=False), records, args.rounds)
    traced = _throughput(Engine(mappings, trace=True), records, args.rounds)
    sys.stdout.write(
        f"{len(records)} records x {args.rounds} rounds\n"
        f"trace off: {plain:10.0f} records/s\n"
        f"trace on:  {traced:10.0f} records/s  ({traced / plain:.2f} of trace off)\n"
    )


if __name__ == "__main__":
    main()
