"""Helpers for the legacy XML source tests (tests/xmlsources): run a conversion, compare outputs.

Not a pytest plugin: the tests import these functions. Nothing here copies corpus files into the
repository; normalised copies are written to pytest's temporary folders only.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).parent / "babyconnect"

# Nictiz ADA test instances write dates relative to the day the test runs (T-306D, T-39Y,
# T-85D{09:15}); their HL7v3 renderings in the corpus were generated on one fixed day.
_PLACEHOLDER = re.compile(r'value="T([+-])(\d+)([DMY])(?:\{(\d{2}):(\d{2})(?::(\d{2}))?\})?"')


def mappings_dir() -> Path:
    """Return the mapping tables to test: the project's, or XMLSOURCES_MAPPINGS when set."""
    return Path(os.environ.get("XMLSOURCES_MAPPINGS", ROOT / "mappings"))


def convert(inputs: list[Path], out: Path, validation: str = "strict") -> dict[str, Any]:
    """Run ``babyconnect convert`` over ``inputs`` into ``out``; return its run report."""
    command = [str(CLI), "convert", *map(str, inputs), "--out", str(out), "--quiet",
               "--validation", validation, "--mappings", str(mappings_dir())]
    env = {**os.environ, "BABYCONNECT_ID_KEY": "test-key-not-secret-0123456789abcdef"}
    done = subprocess.run(command, cwd=ROOT, check=False, capture_output=True, text=True,
                          timeout=900, env=env)
    report = out / "report.json"
    assert report.exists(), (
        f"convert wrote no report (exit {done.returncode}): {done.stderr[-2000:]}")
    return json.loads(report.read_text(encoding="utf-8"))


def _shift(reference: date, sign: str, amount: int, unit: str) -> date:
    amount = amount if sign == "+" else -amount
    if unit == "D":
        return reference + timedelta(days=amount)
    months = amount * (12 if unit == "Y" else 1)
    year, month = divmod(reference.month - 1 + months, 12)
    return reference.replace(year=reference.year + year, month=month + 1)


def resolve_placeholders(text: str, reference: date) -> str:
    """Replace ADA relative date placeholders by ISO dates counted from ``reference``."""

    def replace(found: re.Match[str]) -> str:
        sign, amount, unit, hour, minute, second = found.groups()
        day = _shift(reference, sign, int(amount), unit).isoformat()
        if hour is None:
            return f'value="{day}"'
        return f'value="{day}T{hour}:{minute}:{second or "00"}"'

    return _PLACEHOLDER.sub(replace, text)


def convert_both(first: Path, ada: Path, generated_on: date, out: Path) -> tuple[dict, ...]:
    """Convert a case folder of one format and its ADA twin; return both reports and bundles.

    The ADA instances carry relative dates (``T-139D``): they are resolved against the day the
    other format was generated, in copies, so both describe the same days.
    """
    ada_copies = out / "ada-resolved"
    ada_copies.mkdir(parents=True, exist_ok=True)
    for source in sorted(ada.glob("*.xml")):
        text = source.read_text(encoding="utf-8")
        (ada_copies / source.name).write_text(resolve_placeholders(text, generated_on),
                                              encoding="utf-8")
    first_report = convert([first], out / "first")
    ada_report = convert([ada_copies], out / "ada")
    return first_report, ada_report, bundles(out / "first"), bundles(out / "ada")


def bundles(out: Path) -> dict[str, dict[str, Any]]:
    """Return the written transaction Bundles by source file name."""
    found = {}
    for path in sorted((out / "bundles").glob("*/*.json")):
        found[path.parent.name] = json.loads(path.read_text(encoding="utf-8"))
    return found


def canonical(bundle: dict[str, Any]) -> Counter[str]:
    """Return the Bundle's resources as comparable texts: no ids, references by target profile.

    Two formats of one case give equal texts when they say the same things: same profiles,
    codes and values, pointing at resources of the same kinds.
    """
    entries = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Provenance"]
    labels = {e["fullUrl"]: _label(e["resource"]) for e in entries}
    return Counter(
        json.dumps(_strip(e["resource"], labels), sort_keys=True, ensure_ascii=False)
        for e in entries
    )


def _label(resource: dict[str, Any]) -> str:
    profiles = resource.get("meta", {}).get("profile", [])
    return f"{resource['resourceType']}|{profiles[-1] if profiles else ''}"


def _strip(node: Any, labels: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            key: labels.get(value, value) if key == "reference" else _strip(value, labels)
            for key, value in node.items()
            if key != "id"
        }
    if isinstance(node, list):
        return sorted((_strip(item, labels) for item in node), key=json.dumps)
    return node
