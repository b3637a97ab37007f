"""What a sink says about each record it was given."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class WriteResult:
    ok: bool
    server_ids: list[str] = field(default_factory=list)
    error: BaseException | None = None
    outcome: dict | None = None
