"""Measure CSV reading speed and show that memory stays flat as the file grows.

Writes a vendor-A-layout kraamzorg CSV of ``--rows`` rows (default 5,000,000; about 0.9 GB) to a
temporary directory, reads it with ``read_table`` and prints, every ``--every`` rows (default
1,000,000) and at the end, the rows read, rows per second and the process's peak resident set
size. A flat peak RSS from the first checkpoint to the last is the point. Not a test: run it by
hand, e.g. ``.venv/bin/python benchmarks/bench_tabular_read.py --rows 1000000``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from converters.readers.tabular import read_table  # noqa: E402

HEADER = (
    "BSN moeder;BSN kind;Bezoekdatum;Kraamverzorgende;Temp moeder;RR systolisch;RR diastolisch;"
    "Fundusstand;Lochia;Borstvoeding;Gewicht kind (g);Temp kind;Icterus;Voeding;Hielprik;"
    "Gehoorscreening;Uren geïndiceerd;Uren geleverd;Kraamverzorgende AGB;Organisatie AGB;Opmerking"
)
# Synthetic BSNs that pass the 11-test; rows cycle through them.
BSN_PAIRS = [("999990019", "999990020"), ("999990032", "999990044"), ("999990056", "999990068")]


def row(n: int) -> str:
    """Return one synthetic visit row; every 1000th row has a quoted two-line remark."""
    mother, child = BSN_PAIRS[n % len(BSN_PAIRS)]
    day = 1 + n % 28
    remark = '"Overleg; bijvoeding\r\ngestart"' if n % 1000 == 0 else ""
    return (
        f"{mother};{child};{day:02d}-03-2024 {9 + n % 8:02d}:{n % 60:02d};Renée Jansen;"
        f"37,{n % 10};{110 + n % 20};{70 + n % 10};N-{1 + n % 4};normaal;ja;{3000 + n % 500};"
        f"36,{5 + n % 5};geen;BV;afgenomen;goed;49;6,5;22012345;22700001;{remark}\r\n"
    )


def write_csv(path: Path, rows: int) -> None:
    """Write the header and ``rows`` data rows in Windows-1252, a batch at a time."""
    with path.open("w", encoding="cp1252", newline="") as stream:
        stream.write(HEADER + "\r\n")
        for start in range(0, rows, 10_000):
            stream.write("".join(row(n) for n in range(start, min(start + 10_000, rows))))


def peak_rss_mib() -> float:
    """Return the peak resident set size of this process in MiB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report(label: str, count: int, started: float) -> None:
    elapsed = time.perf_counter() - started
    print(
        f"{label:>10} {count:>10,} rows  {elapsed:8.1f} s  {count / elapsed:>10,.0f} rows/s  "
        f"peak RSS {peak_rss_mib():8.1f} MiB",
        flush=True,
    )


def main() -> None:
    """Generate the file, read it and print the checkpoints."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--every", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_tabular_") as folder:
        path = Path(folder) / "vendor_a_visits.csv"
        started = time.perf_counter()
        write_csv(path, args.rows)
        size_mib = path.stat().st_size / 2**20
        elapsed = time.perf_counter() - started
        print(f"wrote {args.rows:,} rows, {size_mib:,.0f} MiB in {elapsed:.1f} s")
        print(f"peak RSS before reading {peak_rss_mib():.1f} MiB")

        started = time.perf_counter()
        count = errors = 0
        for record in read_table(path, chunk_rows=args.chunk_rows):
            count += 1
            errors += record.error is not None
            if count % args.every == 0:
                report("read", count, started)
        report("total", count, started)
        print(f"malformed rows: {errors}")


if __name__ == "__main__":
    main()
