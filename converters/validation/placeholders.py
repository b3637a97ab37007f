"""Replace the test-harness date placeholders found in Nictiz's published FHIR instances.

Nictiz's reference outputs are made for Touchstone test scripts and carry dates such as
``${DATE, T, D, -139}`` ("today minus 139 days"). They are not FHIR dates, so the instances are
normalised to one fixed reference date before they are validated or compared.
"""

from __future__ import annotations

import datetime as dt
import re

REFERENCE_DATE = dt.date(2024, 1, 1)
_PLACEHOLDER = re.compile(r"\$\{DATE,\s*T,\s*([DMY]),\s*([+-]?\d+)\s*\}")


def normalise_placeholders(text: str, reference: dt.date = REFERENCE_DATE) -> str:
    """Replace every ``${DATE, T, <D|M|Y>, <offset>}`` with a date relative to ``reference``."""
    return _PLACEHOLDER.sub(lambda m: _shift(reference, m.group(1), int(m.group(2))).isoformat(),
                            text)


def _shift(reference: dt.date, unit: str, offset: int) -> dt.date:
    if unit == "D":
        return reference + dt.timedelta(days=offset)
    months = offset * (12 if unit == "Y" else 1)
    year, month = divmod(reference.month - 1 + months, 12)
    return reference.replace(year=reference.year + year, month=month + 1)
