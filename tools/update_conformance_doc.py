"""Refresh the figures of docs/conformance.md from a conformance run, keeping the reasons.

Run from the project root after changing the ADA mapping tables:

    .venv/bin/python tools/update_conformance_doc.py

Rows for profiles new to the table get the reason "No resource map for this profile yet.";
edit the reason by hand when it is something else.
"""

from __future__ import annotations

import re
from pathlib import Path

from converters import conformance as cf

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "conformance.md"
CORPUS = ROOT.parent / "shared" / "corpus" / "nictiz-peri326-fhir"
DEFAULT_REASON = "No resource map for this profile yet."


def main() -> int:
    report = cf.run(cf.both_use_cases(CORPUS))
    text = DOC.read_text(encoding="utf-8")
    reasons = {}
    kept = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[1].isdigit():
            reasons[cells[0]] = cells[6]
        else:
            kept.append(line)
    rows = [f"| {kind} | {ref} | {matched} | {missing} | {elements} | {same} | "
            f"{reasons.get(kind, DEFAULT_REASON)} |"
            for kind, ref, matched, missing, elements, same in cf.markdown_rows(report)]
    header = next(i for i, line in enumerate(kept) if line.startswith("|---"))
    out = "\n".join(kept[:header + 1] + rows + kept[header + 1:]) + "\n"
    out = re.sub(r"\d+/\d+ reference elements reproduced \([\d.]+%\)",
                 f"{report.reproduced}/{report.elements} reference elements reproduced "
                 f"({report.agreement:.1%})", out)
    for name, pairs in cf.use_cases(CORPUS).items():
        one = cf.run(pairs)
        out = re.sub(rf"(`{name}` )\(\d+/\d+, [\d.]+%\)",
                     rf"\g<1>({one.reproduced}/{one.elements}, {one.agreement:.1%})", out)
    DOC.write_text(out, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
