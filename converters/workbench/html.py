"""The coverage report as one self-contained HTML page: an inline SVG bar chart and two tables.

Nothing is fetched when the page opens (no scripts, fonts or styles from elsewhere), so it can be
attached to a ticket or opened on a machine without internet.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from converters.workbench.coverage import CoverageReport

CHART_BARS = 20
_BAR_HEIGHT, _GAP, _LABEL_WIDTH, _CHART_WIDTH = 18, 6, 160, 420

_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; }
td.n { text-align: right; }
svg text { font-size: 12px; font-family: monospace; }
"""


def render_html(report: CoverageReport, title: str = "Mapping coverage") -> str:
    """Return the report as an HTML page with a bar chart of the most frequent unread places."""
    ranked = report.ranked_fields()
    rows = "".join(
        f"<tr><td>{escape(fmt)}</td><td><code>{escape(place)}</code></td>"
        f"<td class='n'>{t.count}</td><td class='n'>{t.records}</td>"
        f"<td>{escape(t.example)}</td></tr>"
        for fmt, place, t in ranked
    )
    codes = "".join(
        f"<tr><td>{escape(table)}</td><td>{escape(system or '-')}</td>"
        f"<td><code>{escape(code)}</code></td><td class='n'>{t.count}</td>"
        f"<td>{escape(t.example)}</td></tr>"
        for table, system, code, t in report.ranked_codes()
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>{_STYLE}</style></head><body>
<h1>{escape(title)}</h1>
<p>{report.records} records read, {report.converted} converted, {report.failed} not converted.
{len(ranked)} source places carried data that no rule read; {len(report.codes)} codes no table
knew. Places and codes only: no values are shown.</p>
<h2>Most frequent unread places</h2>
{bar_chart(ranked[:CHART_BARS])}
<h2>Unread source places</h2>
<table><tr><th>format</th><th>place</th><th>times</th><th>records</th><th>example record</th></tr>
{rows}</table>
<h2>Codes no table knew</h2>
<table><tr><th>table</th><th>source system</th><th>code</th><th>times</th><th>example record</th>
</tr>{codes}</table>
</body></html>
"""


def bar_chart(ranked: list) -> str:
    """Return an inline SVG with one horizontal bar per (format, place, tally)."""
    if not ranked:
        return "<p>Every populated source place was read by a rule.</p>"
    top = max(t.count for _, _, t in ranked)
    height = len(ranked) * (_BAR_HEIGHT + _GAP) + _GAP
    width = _LABEL_WIDTH + _CHART_WIDTH + 60
    bars = []
    for row, (_, place, tally) in enumerate(ranked):
        y = _GAP + row * (_BAR_HEIGHT + _GAP)
        length = max(2, round(_CHART_WIDTH * tally.count / top))
        bars.append(
            f'<text x="{_LABEL_WIDTH - 6}" y="{y + 13}" text-anchor="end">{escape(place)}</text>'
            f'<rect class="bar" x="{_LABEL_WIDTH}" y="{y}" width="{length}" '
            f'height="{_BAR_HEIGHT}" fill="#2f6db5"><title>{escape(place)}: {tally.count}'
            f'</title></rect>'
            f'<text x="{_LABEL_WIDTH + length + 6}" y="{y + 13}">{tally.count}</text>'
        )
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'role="img" aria-label="unread source places by frequency">{"".join(bars)}</svg>')


def write_html(report: CoverageReport, folder: Path) -> Path:
    """Write ``coverage.html`` into ``folder`` and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "coverage.html"
    path.write_text(render_html(report), encoding="utf-8")
    return path
