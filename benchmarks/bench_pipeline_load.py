"""Measure end-to-end load speed into sekmet-fhir by bundle group size and concurrency.

Synthesises HL7v2 exports from two samples (``adt_a04_pregnant_woman.hl7`` and
``oru_r01_prenatal_screening.hl7``): each generated woman gets her own BSN (passing the 11-test,
in the 999 test range), hospital number and message control ids, so every configuration loads
new Patients rather than new versions of old ones. Starts one sekmet-fhir on loopback, then for
each (group size, concurrency) runs ``babyconnect load`` in process with a state folder of its
own and prints records/s and resources/s (conversion, validation and loading together).

Not a test: run it by hand, e.g.
``.venv/bin/python benchmarks/bench_pipeline_load.py --women 100 --groups 1 10 --concurrency 1 4``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from converters.cli import main  # noqa: E402
from tests.support.fhir_server import (  # noqa: E402
    base_url,
    free_port,
    start_fhir_server,
    stop_fhir_server,
)

SAMPLES = ROOT / "samples" / "hl7v2"
TEMPLATES = ("adt_a04_pregnant_woman.hl7", "oru_r01_prenatal_screening.hl7")
SAMPLE_BSN = b"999990317"
SAMPLE_HOSPITAL_NO = b"7001234"
CONTROL_IDS = (b"LINDE-ADT-0001", b"LABLINDE-ORU-0042")
ID_KEY = "benchmark-key-not-secret-0123456789abcdef"
MESSAGES_PER_FILE = 50


def passes_11_test(bsn: str) -> bool:
    """Return True when a 9-digit BSN passes the 11-test (weights 9..2, and -1 for the last)."""
    digits = [int(c) for c in bsn]
    total = sum(d * w for d, w in zip(digits, range(9, 1, -1), strict=False)) - digits[8]
    return total % 11 == 0


def synthetic_bsns(start: int) -> Iterator[str]:
    """Yield BSNs in the 999 test range from ``999000000 + start`` on, each passing the 11-test."""
    n = 999_000_000 + start
    while True:
        if passes_11_test(str(n)):
            yield str(n)
        n += 1


def write_exports(folder: Path, women: int, first: int) -> int:
    """Write ``women`` ADT^A04 + ORU^R01 pairs as HL7v2 files; return the number of messages."""
    templates = [(SAMPLES / name).read_bytes().rstrip(b"\r\n") + b"\r" for name in TEMPLATES]
    bsns = synthetic_bsns(first * 20)
    folder.mkdir(parents=True)
    messages: list[bytes] = []
    for n in range(women):
        bsn, hospital_no = next(bsns).encode(), str(8_000_000 + first + n).encode()
        for template, control_id in zip(templates, CONTROL_IDS, strict=True):
            message = template.replace(SAMPLE_BSN, bsn).replace(SAMPLE_HOSPITAL_NO, hospital_no)
            unique_id = b"BENCH-%d-%d" % (first + n, len(messages))
            messages.append(message.replace(control_id, unique_id))
    for start in range(0, len(messages), MESSAGES_PER_FILE):
        path = folder / f"bench_{start // MESSAGES_PER_FILE:04d}.hl7"
        path.write_bytes(b"".join(messages[start : start + MESSAGES_PER_FILE]))
    return len(messages)


def run_one(url: str, work: Path, women: int, first: int, group: int, workers: int,
            validation: str) -> dict:
    """Load one generated export set with these settings; return the measured figures."""
    exports = work / f"exports-{group}-{workers}"
    messages = write_exports(exports, women, first)
    state = work / f"state-{group}-{workers}"
    started = time.perf_counter()
    code = main(["load", str(exports), "--fhir-url", url, "--state", str(state),
                 "--id-key", ID_KEY, "--validation", validation, "--quiet",
                 "--group-size", str(group), "--concurrency", str(workers)])
    elapsed = time.perf_counter() - started
    report = json.loads(max((state / "reports").glob("*.json"),
                            key=lambda p: p.stat().st_mtime_ns).read_text(encoding="utf-8"))
    loaded = report["outcomes"].get("loaded", 0)
    resources = sum(report["resources"].values())
    return {"group": group, "workers": workers, "messages": messages, "loaded": loaded,
            "resources": resources, "seconds": elapsed, "exit": code}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--women", type=int, default=100, help="women per configuration")
    parser.add_argument("--groups", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--validation", choices=["strict", "warn", "off"], default="strict")
    return parser.parse_args(argv)


def main_bench(argv: list[str] | None = None) -> None:
    """Start the server, run every configuration and print one line per configuration."""
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        work = Path(tmp)
        port = free_port()
        server = start_fhir_server(port, work / "sekmet")
        try:
            print(f"{'group':>5} {'workers':>7} {'records':>8} {'resources':>9} "
                  f"{'seconds':>8} {'records/s':>9} {'resources/s':>11}")
            first = 0
            for group in args.groups:
                for workers in args.concurrency:
                    row = run_one(base_url(port), work, args.women, first, group, workers,
                                  args.validation)
                    first += args.women
                    print(f"{row['group']:>5} {row['workers']:>7} {row['loaded']:>8} "
                          f"{row['resources']:>9} {row['seconds']:>8.2f} "
                          f"{row['loaded'] / row['seconds']:>9.1f} "
                          f"{row['resources'] / row['seconds']:>11.1f}"
                          + ("" if row["exit"] == 0 else f"  (exit {row['exit']})"),
                          flush=True)
        finally:
            stop_fhir_server(server)


if __name__ == "__main__":
    main_bench()
