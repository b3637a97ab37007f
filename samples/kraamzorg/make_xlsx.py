"""Write vendor_b_measurements.xlsx from vendor_b_measurements.csv, the same rows as typed cells.

Run from the project root: ``.venv/bin/python samples/kraamzorg/make_xlsx.py``. Values that look
like numbers become numeric cells and parseable measurement times become date-time cells, as a
vendor's Excel export would hold them; everything else (the bad values) stays text, so the
workbook exercises the same bad rows as the CSV. The row with a stray comma keeps its extra cell,
to the right of the last header column.
"""

from __future__ import annotations

import csv
import re
from datetime import datetime
from pathlib import Path

from openpyxl import Workbook

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "vendor_b_measurements.csv"
TARGET = HERE / "vendor_b_measurements.xlsx"
TIME_COLUMN = "Meetmoment"
VALUE_COLUMN = "Waarde"
# Fixed document dates keep the workbook's metadata the same from one run to the next.
STAMP = datetime(2024, 8, 1, 12, 0, 0)


def typed(column: str, text: str) -> object:
    """Return the cell value an Excel export would hold for one CSV field."""
    if column == VALUE_COLUMN and re.fullmatch(r"\d+", text):
        return int(text)
    if column == VALUE_COLUMN and re.fullmatch(r"\d+\.\d+", text):
        return float(text)
    if column == TIME_COLUMN:
        try:
            return datetime.strptime(text, "%d/%m/%Y %H:%M")
        except ValueError:
            return text
    return text


def main() -> None:
    """Read the CSV and write the workbook beside it."""
    with SOURCE.open(encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.reader(stream))
    header, data = rows[0], rows[1:]

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Metingen"
    sheet.append(header)
    for row in data:
        columns = header + [""] * (len(row) - len(header))
        sheet.append([typed(column, text) for column, text in zip(columns, row, strict=False)])
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, datetime):
                cell.number_format = "dd/mm/yyyy hh:mm"

    # A second sheet: the reader takes the first one unless a sheet is named.
    notes = workbook.create_sheet("Toelichting")
    notes.append(["Synthetic sample; see README.md"])

    workbook.properties.created = STAMP
    workbook.properties.modified = STAMP
    workbook.save(TARGET)


if __name__ == "__main__":
    main()
