"""Benchmark the kraamzorg pipeline on a generated vendor-A CSV (not a test).

Writes a synthetic vendor-A export of ``--rows`` rows (default 5,000,000; every BSN passes the
11-test), runs it with ``Settings(target="null:")`` (``--validation strict`` by default, or off)
and reports rows/s and resources/s per CPU second (one core, even on a busy machine) and peak RSS
at checkpoints (``--every``) to show memory stays flat.

    .venv/bin/python benchmarks/bench_kraamzorg.py --rows 1000000
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

from converters.pipeline import Options
from converters.wiring import Settings, build_pipeline

HEADER = ("BSN moeder;BSN kind;Bezoekdatum;Kraamverzorgende;Temp moeder;RR systolisch;"
          "RR diastolisch;Fundusstand;Lochia;Borstvoeding;Gewicht kind (g);Temp kind;Icterus;"
          "Voeding;Hielprik;Gehoorscreening;Uren geïndiceerd;Uren geleverd;"
          "Kraamverzorgende AGB;Organisatie AGB;Opmerking")


def _bsn(seed: int) -> str:
    """Return a nine-digit number passing the 11-test, derived from ``seed``."""
    while True:
        digits = f"{100_000_000 + seed % 800_000_000:09d}"
        weights = zip(digits[:8], range(9, 1, -1), strict=True)
        total = sum(int(d) * w for d, w in weights) - int(digits[8])
        if total % 11 == 0 and total:
            return digits
        seed += 1


def write_export(path: Path, rows: int) -> None:
    """Write a vendor-A CSV (cp1252, ';', decimal comma) of ``rows`` visits."""
    with path.open("w", encoding="cp1252", newline="") as out:
        out.write(HEADER + "\r\n")
        for n in range(rows):
            mother, child = _bsn(n * 37), _bsn(n * 37 + 13)
            day = 1 + n % 28
            out.write(f"{mother};{child};{day:02d}-03-2024 09:{n % 60:02d};Kraamverzorgende;"
                      f"37,{n % 10};120;78;N-2;normaal;ja;3400;36,9;geen;BV;afgenomen;goed;49;"
                      f"6,5;22012345;22700001;\r\n")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--every", type=int, default=1_000_000, help="checkpoint interval")
    parser.add_argument("--validation", choices=("strict", "off"), default="strict",
                        help="profile validation (strict costs about 40%% of the CPU time)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory() as folder:
        export = Path(folder) / "vendor_a_bench.csv"
        write_export(export, args.rows)
        settings = Settings(target="null:", validation=args.validation,
                            state_dir=Path(folder) / "st", id_key="benchmark-key-0123456789")
        pipeline = build_pipeline(settings)
        started = time.perf_counter()
        cpu_started = time.process_time()
        seen = 0

        def progress(count: int) -> None:
            nonlocal seen
            seen += count
            if seen % args.every == 0:
                cpu = time.process_time() - cpu_started
                sys.stdout.write(f"{seen:>10,} rows  {seen / cpu:8,.0f} rows/CPU-s  "
                                 f"peak RSS {peak_rss_mb():8.1f} MB\n")
                sys.stdout.flush()

        pipeline.options = Options(validation=args.validation, progress=progress)
        report = pipeline.run([export])
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        resources = sum(report.resources.values())
        # Rates per CPU second are the one-core figure even on a busy machine; wall time is shown.
        sys.stdout.write(f"total {report.records_in:,} rows, validation {args.validation}: "
                         f"{elapsed:.1f} s wall, {cpu:.1f} s CPU; "
                         f"{report.records_in / cpu:,.0f} rows/s, "
                         f"{resources / cpu:,.0f} resources/s on one core, "
                         f"peak RSS {peak_rss_mb():.1f} MB, outcomes {dict(report.outcomes)}\n")


if __name__ == "__main__":
    main()
