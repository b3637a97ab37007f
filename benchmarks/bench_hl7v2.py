"""HL7v2 end-to-end throughput on one core: read, map, assemble, validate (profiles), discard.

    .venv/bin/python benchmarks/bench_hl7v2.py [--messages 2000] [--validation strict]

Builds an ADT corpus and an ORU corpus from the project's samples, each message with its own
BSN (passing the 11-test) and control id, runs the pipeline into the null sink (so the figure is
conversion, not disk or network), and reports messages and resources per second. For reference it
also times hl7apy's full ``parse_message`` on a few of the same messages. Not a test.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from converters.wiring import Settings, build_pipeline  # noqa: E402

SAMPLES = ROOT / "samples" / "hl7v2"


def bsn(n: int) -> str:
    """The n-th 9-digit number in the 999 test range that passes the 11-test."""
    base = 999000000 + n * 10
    while True:
        digits = [int(c) for c in str(base)]
        total = sum(d * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True)) - digits[8]
        if total % 11 == 0:
            return str(base)
        base += 1


def corpus(template: Path, count: int, out: Path) -> Path:
    raw = template.read_bytes().replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    messages = [m for m in re.split(rb"(?=MSH\|)", raw) if m.startswith(b"MSH|")]
    with out.open("wb") as handle:
        for i in range(count):
            message = messages[i % len(messages)]
            message = re.sub(rb"999\d{6}", bsn(i).encode(), message)
            message = re.sub(rb"(MSH(?:\|[^|\r]*){8}\|)([^|\r]*)", rb"\g<1>BENCH-%d" % i, message,
                             count=1)
            handle.write(message.rstrip(b"\r") + b"\r")
    return out


def run(path: Path, validation: str, state: Path) -> tuple[int, int, float]:
    pipeline = build_pipeline(Settings(target="null:", state_dir=state, validation=validation,
                                       id_key="benchmark-key-0123456789abcdef"))
    start = time.process_time()
    report = pipeline.run([path])
    elapsed = time.process_time() - start
    return report.records_in, sum(report.resources.values()), elapsed


def hl7apy_reference(path: Path, count: int) -> float:
    from hl7apy.parser import parse_message

    text = path.read_bytes().decode("latin-1")
    messages = ["MSH|" + m for m in text.split("MSH|")[1:]][:count]
    start = time.process_time()
    for message in messages:
        parse_message(message.replace("\n", "\r").strip(), find_groups=True)
    return len(messages) / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--validation", default="strict", choices=["strict", "warn", "off"])
    args = parser.parse_args()
    os.environ.pop("BABYCONNECT_ID_KEY", None)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sets = {
            "ADT": corpus(SAMPLES / "adt_a04_pregnant_woman.hl7", args.messages,
                          folder / "adt.hl7"),
            "ORU": corpus(SAMPLES / "oru_r01_prenatal_screening.hl7", args.messages // 4,
                          folder / "oru.hl7"),
        }
        print(f"validation: {args.validation}; one process (CPU time)")
        for name, path in sets.items():
            state = folder / f"state-{name}"
            messages, resources, seconds = run(path, args.validation, state)
            print(f"{name}: {messages} messages, {resources} resources in {seconds:.2f} s CPU: "
                  f"{messages / seconds:,.0f} messages/s, {resources / seconds:,.0f} resources/s")
        for name, path in sets.items():
            rate = hl7apy_reference(path, 20)
            print(f"{name}: hl7apy parse_message (reference): {rate:,.1f} messages/s")


if __name__ == "__main__":
    main()
