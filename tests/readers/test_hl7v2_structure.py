"""HL7 structure knowledge comes from hl7apy's reference tables, per version."""

from __future__ import annotations

import pytest

from converters.readers.hl7v2_structure import (
    component_names,
    field_count,
    field_info,
    full_parse,
    is_z_segment,
    library_version,
    segment_known,
)


def test_pid_5_is_the_patient_name_of_datatype_xpn_and_repeats() -> None:
    info = field_info("2.5", "PID", 5)

    assert info is not None
    assert (info.name, info.long_name, info.datatype) == ("PID_5", "Patient Name", "XPN")
    assert info.repeats and info.max_repetitions is None


def test_a_field_beyond_the_segment_is_rejected() -> None:
    assert field_info("2.5", "PID", 99) is None
    assert field_info("2.5", "PID", 0) is None
    assert field_count("2.5", "PID") == 39


def test_msh_fields_are_numbered_with_the_separator_as_msh_1() -> None:
    assert field_info("2.5", "MSH", 1).long_name == "Field Separator"  # type: ignore[union-attr]
    assert field_info("2.5", "MSH", 9).long_name == "Message Type"  # type: ignore[union-attr]


def test_z_segments_are_unknown_but_recognised_as_local() -> None:
    assert not segment_known("2.5", "ZBE")
    assert is_z_segment("ZBE")
    assert field_info("2.5", "ZBE", 1) is None
    assert field_count("2.5", "ZBE") == 0
    assert segment_known("2.5", "OBX")


def test_fn_components_name_the_dutch_surname_parts() -> None:
    assert component_names("2.5", "FN") == [
        "Surname",
        "Own Surname Prefix",
        "Own Surname",
        "Surname Prefix From Partner Spouse",
        "Surname From Partner Spouse",
    ]
    assert component_names("2.5", "XPN")[:2] == ["Family Name", "Given Name"]
    assert component_names("2.5", "ST") == []


@pytest.mark.parametrize(
    ("asked", "answered"),
    [("2.5.1", "2.5.1"), ("2.3", "2.3"), ("2.5.2", "2.5.1"), ("2.9", "2.8.2"), ("", "2.5")],
)
def test_versions_hl7apy_lacks_are_answered_from_the_nearest_lower_one(
    asked: str, answered: str
) -> None:
    assert library_version(asked) == answered


def test_structure_differs_between_versions_where_hl7_changed_it() -> None:
    assert field_info("2.3", "PID", 5).max_repetitions == 1  # type: ignore[union-attr]
    assert field_info("2.5", "OBX", 5).datatype == "varies"  # type: ignore[union-attr]


def test_full_parse_reads_a_message_with_hl7apy() -> None:
    raw = "MSH|^~\\&|HIS|LINDE|||20240820||ADT^A04^ADT_A01|C1|P|2.5\nPID|1||7001234^^^LINDE^PI\n"

    parsed = full_parse(raw)

    assert parsed.msh.msh_10.value == "C1"
    assert parsed.pid.pid_3.cx_4.value == "LINDE"
