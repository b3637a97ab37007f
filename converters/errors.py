"""Exceptions as data.

Every error carries where it happened as attributes (file, record id, field or source path,
mapping rule) and whether a retry can help (``retryable``), so that Airflow retries only what can
succeed. Messages name places and rules, never values: no patient data reaches a log line or an
exception text through these classes.
"""

from __future__ import annotations


class BabyconnectError(Exception):
    """Base class. ``retryable`` is False: bad input or bad mappings do not heal on a retry."""

    retryable = False


class MappingTableError(BabyconnectError):
    """A mapping table is invalid. Names the file, the line and the key path."""

    def __init__(self, file: str, line: int | None, key_path: str, reason: str) -> None:
        self.file = file
        self.line = line
        self.key_path = key_path
        self.reason = reason
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where} {key_path}: {reason}" if key_path else f"{where}: {reason}")


class SourceError(BabyconnectError):
    """A source record cannot be converted. Final: the record goes to quarantine.

    ``field`` is a source location (``PID-3.4``, an XPath, a CSV column); ``rule`` the mapping
    rule (``mappings/hl7v2/adt.yaml:42``) when one was involved. ``reason`` must not quote values.
    """

    def __init__(
        self,
        reason: str,
        *,
        file: str = "",
        record_id: str = "",
        field: str = "",
        rule: str = "",
        code: str = "source-error",
    ) -> None:
        self.reason = reason
        self.file = file
        self.record_id = record_id
        self.field = field
        self.rule = rule
        self.code = code
        super().__init__(self.describe())

    def describe(self) -> str:
        parts = [p for p in (self.file, self.record_id and f"record {self.record_id}") if p]
        if self.field:
            parts.append(f"field {self.field}")
        if self.rule:
            parts.append(f"rule {self.rule}")
        where = ", ".join(parts)
        return f"{where}: {self.reason}" if where else self.reason

    def as_dict(self) -> dict[str, str]:
        return {
            "code": self.code,
            "reason": self.reason,
            "file": self.file,
            "record_id": self.record_id,
            "field": self.field,
            "rule": self.rule,
        }


class UnsupportedInputError(SourceError):
    """The input is of a kind no mapping supports (a message type, a document template)."""

    def __init__(self, reason: str, **kwargs: str) -> None:
        kwargs.setdefault("code", "unsupported")
        super().__init__(reason, **kwargs)


class ValidationFailed(SourceError):
    """A converted resource breaks a profile rule; ``findings`` lists each broken rule."""

    def __init__(self, reason: str, findings: list[dict[str, str]], **kwargs: str) -> None:
        kwargs.setdefault("code", "invalid")
        super().__init__(reason, **kwargs)
        self.findings = findings


class LoadError(BabyconnectError):
    """Writing to the FHIR repository failed."""


class TransientLoadError(LoadError):
    """The repository could not be reached or was busy (429, 5xx, timeout). A retry can help."""

    retryable = True


class RejectedByServer(LoadError):
    """The repository refused a bundle with a final 4xx. ``outcome`` is its OperationOutcome."""

    def __init__(self, status: int, outcome: dict | None, reason: str = "") -> None:
        self.status = status
        self.outcome = outcome or {}
        super().__init__(reason or f"server refused the bundle with HTTP {status}")


class ConfigurationError(BabyconnectError):
    """A setting is missing or wrong (a pipelines file, a connection, a hash key)."""
