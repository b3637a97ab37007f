"""Deterministic, non-revealing resource ids.

An id is an HMAC-SHA256 of the resource type and its business identity (a BSN, an AGB code, a
lab's order number and test code) under a key from configuration. The same input always yields
the same id, so re-runs update rather than duplicate, and no id reveals a BSN: without the key
one cannot test a guessed BSN against an id. (Decision note: docs/decisions/0002-ids.md.)
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import uuid
from pathlib import Path

from converters.errors import ConfigurationError

KEY_ENV = "BABYCONNECT_ID_KEY"
KEY_FILE = "id-key"


class IdMaker:
    """Make ids and ``urn:uuid`` full URLs from identity parts."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ConfigurationError("the id key must be at least 16 bytes")
        self._key = key

    def make(self, *parts: str) -> str:
        message = "\x1f".join(parts).encode("utf-8")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    @staticmethod
    def full_url(resource_id: str) -> str:
        return f"urn:uuid:{uuid.UUID(hex=resource_id[:32])}"


def resolve_key(explicit: str | None = None, state_dir: Path | None = None) -> bytes:
    """Return the id key: given, from ``BABYCONNECT_ID_KEY``, or kept in ``state_dir``.

    A key kept in the state folder is created once with 256 random bits (mode 0600), so the ids
    of one target stay stable across runs without anyone having to set a key for a first try.
    """
    text = explicit or os.environ.get(KEY_ENV)
    if text:
        return text.encode("utf-8")
    if state_dir is None:
        raise ConfigurationError(f"no id key: set {KEY_ENV} or give a state folder")
    path = state_dir / KEY_FILE
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text(encoding="utf-8").strip().encode("utf-8")
