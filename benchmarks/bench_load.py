"""Benchmark: resources per second loaded into sekmet-fhir, by bundle size and concurrency.

Starts its own sekmet-fhir on a free loopback port (or uses ``--url``), builds synthetic
transaction Bundles shaped like the converter's output (a woman by conditional update on a
synthetic BSN, plus N-1 Observations referencing her by urn:uuid) and loads them with
``FhirServerSink`` for every combination of the given settings. A script, not a test:

    .venv/bin/python benchmarks/bench_load.py --records 200 --sizes 2,10,50 \
        --concurrency 1,2,4 --groups 1,5
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
import uuid
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from converters.sinks.fhir_server import FhirServerSink, ServerSettings  # noqa: E402
from tests.support.fhir_server import (  # noqa: E402
    base_url,
    free_port,
    start_fhir_server,
    stop_fhir_server,
)

BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"


def synthetic_bsn(number: int) -> str:
    """Return an eleven-proof nine-digit number starting 99 (not a real person's)."""
    for prefix in (2 * number, 2 * number + 1):
        digits = f"99{prefix:06d}"
        total = sum(int(d) * w for d, w in zip(digits, range(9, 1, -1), strict=True))
        if total % 11 < 10:
            return digits + str(total % 11)
    raise AssertionError("unreachable")


def bundle(number: int, size: int, run: str) -> dict:
    """Return a transaction of ``size`` entries: one woman and ``size - 1`` observations."""
    woman_url = f"urn:uuid:{uuid.uuid4()}"
    bsn = synthetic_bsn(number)
    entries = [
        {
            "fullUrl": woman_url,
            "resource": {
                "resourceType": "Patient",
                "identifier": [{"system": BSN_SYSTEM, "value": bsn}],
            },
            "request": {"method": "PUT", "url": f"Patient?identifier={BSN_SYSTEM}|{bsn}"},
        }
    ]
    for i in range(size - 1):
        oid = f"{run}-{number}-{i}"
        entries.append(
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": {
                    "resourceType": "Observation",
                    "id": oid,
                    "status": "final",
                    "code": {"coding": [{"system": "http://snomed.info/sct", "code": "57036006"}]},
                    "subject": {"reference": woman_url},
                    "valueQuantity": {
                        "value": 180 + i,
                        "unit": "d",
                        "system": "http://unitsofmeasure.org",
                        "code": "d",
                    },
                },
                "request": {"method": "PUT", "url": f"Observation/{oid}"},
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def measure(
    url: str, records: int, size: int, concurrency: int, group: int, first: int
) -> tuple[float, int, int]:
    """Load ``records`` bundles; return (seconds, resources written, failed records)."""
    run = uuid.uuid4().hex[:8]
    items = [(f"bench#{n}", bundle(first + n, size, run)) for n in range(records)]
    settings = ServerSettings(
        base_url=url, concurrency=concurrency, group_size=group, timeout=120.0
    )
    started = time.perf_counter()
    with FhirServerSink(settings) as sink:
        results = list(sink.send_many(items))
    seconds = time.perf_counter() - started
    written = sum(len(r.server_ids) for r in results)
    return seconds, written, sum(1 for r in results if not r.ok)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an already running FHIR server base URL")
    parser.add_argument("--records", type=int, default=100, help="bundles per measurement")
    parser.add_argument("--sizes", type=_ints, default=[2, 10, 50], help="entries per bundle")
    parser.add_argument("--concurrency", type=_ints, default=[1, 2, 4])
    parser.add_argument("--groups", type=_ints, default=[1, 5], help="bundles per transaction")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-sekmet-") as tmp:
        process = None
        url = args.url
        if not url:
            port = free_port()
            process = start_fhir_server(port, Path(tmp))
            url = base_url(port)
        try:
            _run(url, args)
        finally:
            if process is not None:
                stop_fhir_server(process)


def _run(url: str, args: argparse.Namespace) -> None:
    print(f"server {url}, {args.records} bundles per row")
    print(
        f"{'entries/bundle':>14} {'concurrency':>11} {'group':>5} {'seconds':>8} "
        f"{'resources':>9} {'resources/s':>11} {'failed':>6}"
    )
    first = 0
    for size, concurrency, group in itertools.product(args.sizes, args.concurrency, args.groups):
        seconds, written, failed = measure(url, args.records, size, concurrency, group, first)
        first += args.records
        print(
            f"{size:>14} {concurrency:>11} {group:>5} {seconds:>8.2f} {written:>9} "
            f"{written / seconds:>11.0f} {failed:>6}"
        )


if __name__ == "__main__":
    main()
