"""Benchmark XML conversion end to end on a batch file of over 1 GB (not a test).

Builds a batch of ``--size-mb`` MB (default 1100) by concatenating Nictiz's ADA PWD 3.2 test
instances from ``../shared/corpus/nictiz-peri326-fhir`` (read by path, never copied into the
repository), each copy with its own XML declaration as Astraia writes exports and a comment that
makes its content unique, so the ledger treats every copy as a new document. It then runs the
pipeline on the file with strict profile validation into the null target and prints, every
``--every`` documents and at the end, documents and resources per CPU second (one core, even on a
busy machine) and the process's peak resident set size, which should stay flat as the file grows.

    .venv/bin/python benchmarks/bench_xml_convert.py                 # > 1 GB, ~15 CPU minutes
    .venv/bin/python benchmarks/bench_xml_convert.py --size-mb 50    # a quick look
"""

from __future__ import annotations

import argparse
import logging
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from converters.pipeline import Options  # noqa: E402
from converters.wiring import Settings, build_pipeline  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "nictiz-peri326-fhir"
DECLARATION = re.compile(rb"^\s*<\?xml[^>]*\?>\s*")


def templates() -> list[bytes]:
    """Return the corpus ADA instances without their XML declarations."""
    files = sorted(CORPUS.glob("*/ada_instance/*.xml"))
    if not files:
        sys.exit(f"corpus not found at {CORPUS}: this benchmark reads Nictiz's ADA instances")
    return [DECLARATION.sub(b"", path.read_bytes(), count=1) for path in files]


def write_batch(path: Path, size_mb: int, bodies: list[bytes]) -> int:
    """Concatenate numbered copies until the file reaches ``size_mb``; return how many."""
    target, count = size_mb * 1_000_000, 0
    with path.open("wb") as stream:
        while stream.tell() < target:
            body = bodies[count % len(bodies)]
            stream.write(b'<?xml version="1.0" encoding="UTF-8"?>\n')
            stream.write(f"<!-- benchmark copy {count} -->\n".encode())
            stream.write(body)
            stream.write(b"\n")
            count += 1
    return count


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1100)
    parser.add_argument("--every", type=int, default=2000, help="checkpoint interval (documents)")
    parser.add_argument("--mappings", type=Path, default=None, help="mapping tables folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="bench-xml-convert-") as folder:
        batch = Path(folder) / "batch.xml"
        written = write_batch(batch, args.size_mb, templates())
        size = batch.stat().st_size
        print(f"wrote {written:,} documents, {size / 1e6:,.0f} MB", flush=True)
        settings = Settings(target="null:", validation="strict", state_dir=Path(folder) / "st",
                            id_key="benchmark-key-0123456789", mappings_dir=args.mappings)
        pipeline = build_pipeline(settings)
        cpu_started, wall_started = time.process_time(), time.perf_counter()
        seen = 0

        def progress(count: int) -> None:
            nonlocal seen
            before, seen = seen, seen + count
            if seen // args.every > before // args.every:
                cpu = time.process_time() - cpu_started
                print(f"{seen:>9,} docs  {seen / cpu:7.1f} docs/CPU-s  "
                      f"peak RSS {peak_rss_mib():7.1f} MiB", flush=True)

        pipeline.options = Options(validation="strict", progress=progress)
        report = pipeline.run([batch])
        cpu = time.process_time() - cpu_started
        wall = time.perf_counter() - wall_started
        resources = sum(report.resources.values())
        print(f"total {report.records_in:,} docs ({size / 1e6:,.0f} MB), validation strict: "
              f"{wall:.0f} s wall, {cpu:.0f} s CPU; {report.records_in / cpu:,.1f} docs/s, "
              f"{resources / cpu:,.0f} resources/s, {size / 1e6 / cpu:.2f} MB/s on one core; "
              f"peak RSS {peak_rss_mib():.1f} MiB; outcomes {dict(report.outcomes)}", flush=True)


if __name__ == "__main__":
    main()
