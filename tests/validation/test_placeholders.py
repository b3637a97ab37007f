"""Nictiz test-harness date placeholders become fixed, valid dates."""

from __future__ import annotations

import datetime as dt

from converters.validation.placeholders import normalise_placeholders


def test_a_day_offset_is_applied_to_the_reference_date():
    text = '<start value="${DATE, T, D, -139}T08:36:00+02:00"/>'

    assert normalise_placeholders(text, dt.date(2024, 1, 1)) == (
        '<start value="2023-08-15T08:36:00+02:00"/>'
    )


def test_positive_offsets_and_years_are_understood():
    assert normalise_placeholders("${DATE, T, D, +7}", dt.date(2024, 1, 1)) == "2024-01-08"
    assert normalise_placeholders("${DATE, T, Y, -30}", dt.date(2024, 1, 1)) == "1994-01-01"


def test_text_without_placeholders_is_unchanged():
    assert normalise_placeholders('<x value="2020-02-02"/>') == '<x value="2020-02-02"/>'
