"""Babyconnect conversion pipeline: legacy birth-care exports to Babyconnect FHIR STU3.

The data travels one way: ``readers`` turn an export into :class:`SourceRecord` objects, the
``mapping`` engine applies the YAML tables, ``fhir`` assembles resources and Bundles,
``validation`` checks them, ``sinks`` write them, and the ``ledger`` accounts for every record.
"""

from __future__ import annotations

__version__ = "0.1.0"
