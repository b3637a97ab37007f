"""The reconcile table tells an interrupted file from a real difference."""

from __future__ import annotations

from converters.cli import format_reconciliation


def _row(state: str, records: int | None, loaded: int) -> dict:
    return {"path": "inbox/a.hl7", "state": state, "input_records": records, "loaded": loaded,
            "quarantined": 0, "skipped": 0,
            "difference": None if records is None else records - loaded}


def test_an_interrupted_file_is_named_as_such_with_what_to_do() -> None:
    text = format_reconciliation({"ok": False, "files": [_row("incomplete", None, 3)]})
    assert "incomplete" in text and "INTERRUPTED: 1 file(s)" in text and "?" in text


def test_a_complete_file_that_does_not_add_up_is_a_difference() -> None:
    text = format_reconciliation({"ok": False, "files": [_row("complete", 5, 4)]})
    assert "DIFFERENCE" in text and "INTERRUPTED" not in text


def test_a_balanced_run_says_ok() -> None:
    assert "OK: every record" in format_reconciliation({"ok": True,
                                                        "files": [_row("complete", 4, 4)]})
