"""Print how long profile validation takes per resource on the public corpus (not a test).

    .venv/bin/python benchmarks/bench_validation.py [--mode fast|pydantic] [--repeat N]

Reads the Nictiz FHIR instances from ../shared/corpus once, warms the validator (profiles are
compiled on first use), then validates every instance N times and prints CPU µs per resource,
overall and per resource type.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from converters.validation.validator import ProfileValidator  # noqa: E402
from tests.support.validation_corpus import corpus_files, read_instance  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("fast", "pydantic"), default="fast")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    files = corpus_files()
    if not files:
        print("corpus not found under ../shared/corpus", file=sys.stderr)
        return 2
    resources = [read_instance(path) for path in files]
    validator = ProfileValidator(structure_mode=args.mode)
    for resource in resources:
        validator.validate(resource)

    per_type: dict[str, list[float]] = defaultdict(list)
    start = time.process_time()
    for _ in range(args.repeat):
        for resource in resources:
            t0 = time.process_time()
            validator.validate(resource)
            per_type[resource["resourceType"]].append(time.process_time() - t0)
    total = time.process_time() - start

    count = len(resources) * args.repeat
    print(f"{len(resources)} resources x {args.repeat}, structure={args.mode}: "
          f"{total / count * 1e6:.1f} µs/resource ({count / total:,.0f} resources/s)")
    for type_name, times in sorted(per_type.items(), key=lambda kv: -len(kv[1])):
        print(f"  {type_name:<20} {len(times) // args.repeat:>5}  "
              f"{sum(times) / len(times) * 1e6:7.1f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
