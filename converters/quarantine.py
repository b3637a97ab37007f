"""The quarantine: the original bytes of every record that could not be loaded, with the reason.

One folder per source file, one ``<position>.<ext>`` per record with a ``.reason.json`` beside it
naming the file, record id, field, rule and (for profile failures) the findings. ``reprocess``
reads them back after a mapping author has fixed a table.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from converters.records import SourceRecord

_EXTENSIONS = {"hl7v2": ".hl7", "xml": ".xml", "csv": ".csv", "xlsx": ".csv"}


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:80] or "record"


class Quarantine:
    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, record: SourceRecord, reason: dict[str, Any]) -> str:
        """Store the record's raw bytes and the reason; return the stored file's path."""
        folder = self.root / _safe(Path(record.file).name)
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{record.position:07d}"
        data_path = folder / (stem + _EXTENSIONS.get(record.format, ".dat"))
        data_path.write_bytes(record.raw)
        meta = {
            "file": record.file,
            "position": record.position,
            "record_id": record.record_id,
            "format": record.format,
            "kind": record.kind,
            **{k: record.meta[k] for k in ("headers", "separator") if k in record.meta},
            **reason,
        }
        (folder / f"{stem}.reason.json").write_text(
            json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        return str(data_path)

    def entries(self) -> list[tuple[Path, dict[str, Any]]]:
        """All quarantined records: (data file, reason)."""
        out = []
        for reason_path in sorted(self.root.glob("*/*.reason.json")):
            meta = json.loads(reason_path.read_text(encoding="utf-8"))
            stem = reason_path.name[: -len(".reason.json")]
            data = next((p for p in reason_path.parent.glob(stem + ".*")
                         if not p.name.endswith(".reason.json")), None)
            if data is not None:
                out.append((data, meta))
        return out

    def remove(self, data_path: Path) -> None:
        data_path.unlink(missing_ok=True)
        stem = data_path.name.rsplit(".", 1)[0]
        (data_path.parent / f"{stem}.reason.json").unlink(missing_ok=True)
