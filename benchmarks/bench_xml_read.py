"""Measure XML batch reading speed and show that memory stays flat as the file grows.

Writes a batch file of synthetic Kernset-like HL7v3 messages of about ``--size-mb`` MB (default
1100, so over 1 GB) to a temporary directory, either concatenated (each message with its own XML
declaration, as Astraia writes exports) or wrapped in one ``<Batch>`` element (``--layout``). One
message in every 10,000 is deliberately broken, so the careful scan is exercised too. It then
reads the file with ``read_xml`` and prints, every ``--every`` documents and at the end, the
documents read, documents per second, MB per second and the process's peak resident set size. A
flat peak RSS from the first checkpoint to the last is the point. Not a test: run it by hand, e.g.
``.venv/bin/python benchmarks/bench_xml_read.py --size-mb 200 --layout wrapped``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from converters.readers.xml import read_xml  # noqa: E402

HL7 = "urn:hl7-org:v3"
# Synthetic test BSNs (11-test valid, from the 9999900xx test range); no real person.
BSNS = ("999990019", "999990032", "999990056")


def message(n: int, namespaced: bool) -> str:
    """Return one synthetic Kernset-like message of about 6 KB; every 10,000th is broken."""
    xmlns = f' xmlns="{HL7}"' if namespaced else ""
    observations = "".join(
        f'<component><observation classCode="OBS" moodCode="EVN"><code code="{100 + k}" '
        f'codeSystem="2.16.840.1.113883.2.4.4.13"/><value value="{(n + k) % 40}"/>'
        f"</observation></component>\n"
        for k in range(40)
    )
    broken = "<unclosed>" if n % 10_000 == 9_999 else ""
    return (
        f"<REPC_IN004014NL{xmlns}>\n"
        f'<id root="2.16.840.1.113883.2.4.3.11.999.60.1" extension="msg-{n}"/>\n'
        f'<interactionId root="2.16.840.1.113883.1.6" extension="REPC_IN004014NL"/>\n'
        f"<ControlActProcess><subject><registrationProcess><subject2><CareProvisionEvent>\n"
        f'<templateId root="2.16.840.1.113883.2.4.6.10.90.76"/>\n'
        f'<subject><patient><id root="2.16.840.1.113883.2.4.6.3" extension="{BSNS[n % 3]}"/>'
        f"</patient></subject>\n{observations}{broken}"
        f"</CareProvisionEvent></subject2></registrationProcess></subject></ControlActProcess>\n"
        f"</REPC_IN004014NL>\n"
    )


def write_batch(path: Path, size_mb: int, layout: str) -> int:
    """Write messages until the file reaches ``size_mb``; return how many were written."""
    target, count = size_mb * 1_000_000, 0
    with path.open("w", encoding="utf-8") as stream:
        if layout == "wrapped":
            stream.write(f'<?xml version="1.0" encoding="UTF-8"?>\n<Batch xmlns="{HL7}">\n')
        head = '<?xml version="1.0" encoding="UTF-8"?>\n' if layout == "concatenated" else ""
        while stream.tell() < target:
            block = []
            for n in range(count, count + 1000):
                block.append(head + message(n, namespaced=layout == "concatenated"))
            stream.write("".join(block))
            count += 1000
        if layout == "wrapped":
            stream.write("</Batch>\n")
    return count


def peak_rss_mib() -> float:
    """Return the peak resident set size of this process in MiB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    """Return the current resident set size in MiB (Linux /proc; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        return 0.0
    return pages * resource.getpagesize() / 2**20


def report(label: str, count: int, size: int, started: float) -> None:
    """Print one checkpoint line."""
    elapsed = time.perf_counter() - started
    print(
        f"{label:>10} {count:>10,} docs  {elapsed:8.1f} s  {count / elapsed:>9,.0f} docs/s  "
        f"{size / elapsed / 1e6:7.1f} MB/s  RSS {rss_mib():6.1f} MiB  "
        f"peak RSS {peak_rss_mib():6.1f} MiB",
        flush=True,
    )


def main() -> None:
    """Generate the batch, read it, print throughput and peak memory."""
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--size-mb", type=int, default=1100)
    options.add_argument("--layout", choices=("concatenated", "wrapped"), default="concatenated")
    options.add_argument("--every", type=int, default=40_000)
    args = options.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-xml-") as folder:
        path = Path(folder) / f"batch-{args.layout}.xml"
        written = write_batch(path, args.size_mb, args.layout)
        size = path.stat().st_size
        print(f"wrote {written:,} documents, {size / 1e6:,.0f} MB ({args.layout}); "
              f"peak RSS after writing {peak_rss_mib():.1f} MiB", flush=True)

        started, count, errors, done = time.perf_counter(), 0, 0, 0
        for record in read_xml(path):
            count += 1
            errors += record.error is not None
            done = int(record.meta["byte_offset"]) + len(record.raw)
            if count % args.every == 0:
                report("so far", count, done, started)
        report("total", count, size, started)
        print(f"{errors} unreadable documents (expected {written // 10_000})")


if __name__ == "__main__":
    main()
