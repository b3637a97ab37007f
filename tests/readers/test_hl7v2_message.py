"""The lazy message model: field, component and sub-component access as the mapping uses it."""

from __future__ import annotations

import pytest

from converters.readers.hl7v2 import Hl7FormatError, Hl7Message, parse_message

MSH = (
    "MSH|^~\\&|HIS|LINDE^06010599^L|BCONV|BABYCONNECT|20240820091500+0200||ADT^A04^ADT_A01|C1|P|2.5"
)
PID = (
    "PID|1||999990317^^^NLMINBIZA^NNNLD~7001234^^^LINDE^PI||"
    "Jansen-de Vries&&Jansen&de&Vries^Eva^Noelle^^^^L^^^^NL4||19920314|F|||"
    'Lindelaan 12 a&Lindelaan&12^a^Amersfoort^^3811AB^NL^M||+31612345678^ORN^CP~""^PRN^PH'
    '|||""'
)


def message(*segments: str, msh: str = MSH) -> Hl7Message:
    parsed, _ = parse_message("\r".join((msh, *segments)).encode("latin-1") + b"\r")
    return parsed


def test_header_facts_come_from_msh() -> None:
    parsed = message(PID)

    assert parsed.control_id == "C1"
    assert parsed.message_type == "ADT^A04"
    assert parsed.trigger == "A04"
    assert parsed.structure == "ADT_A01"
    assert parsed.version == "2.5"


def test_msh_numbering_counts_the_field_separator_as_msh_1() -> None:
    msh = message().segments[0]

    assert msh.get(1) == "|"
    assert msh.get(2) == "^~\\&"
    assert msh.get(3) == "HIS"
    assert msh.get(4, 2) == "06010599"
    assert msh.get(9, 2) == "A04"


def test_fn_sub_components_give_own_and_partner_name_parts() -> None:
    pid = message(PID).first("PID")
    assert pid is not None

    parts = [pid.get(5, 1, n) for n in range(1, 6)]

    assert parts == ["Jansen-de Vries", "", "Jansen", "de", "Vries"]
    assert pid.subcomponent_count(5, 1) == 5
    assert pid.get(5, 7) == "L"
    assert pid.get(5, 11) == "NL4"


def test_address_reads_street_house_number_and_addition() -> None:
    pid = message(PID).first("PID")
    assert pid is not None

    assert pid.get(11, 1, 2) == "Lindelaan"
    assert pid.get(11, 1, 3) == "12"
    assert pid.get(11, 2) == "a"
    assert pid.get(11, 5) == "3811AB"


def test_repetitions_are_counted_and_read_by_index_from_zero() -> None:
    pid = message(PID).first("PID")
    assert pid is not None

    assert pid.repetitions(3) == 2
    assert pid.get(3, 4, repetition=0) == "NLMINBIZA"
    assert pid.get(3, 1, repetition=1) == "7001234"
    assert pid.get(3, 5, repetition=1) == "PI"
    assert pid.get(3, 1, repetition=2) == ""


def test_absent_places_read_as_empty_and_count_as_zero() -> None:
    pid = message(PID).first("PID")
    assert pid is not None

    assert pid.get(99) == ""
    assert pid.get(7, 2) == ""
    assert pid.get(7, 1, 2) == ""
    assert pid.repetitions(2) == 0
    assert pid.component_count(2) == 0
    assert pid.subcomponent_count(3, 2) == 0
    assert not pid.has(2)
    assert not pid.has(3, 2)


def test_component_count_includes_empty_components_between_values() -> None:
    pid = message(PID).first("PID")
    assert pid is not None

    assert pid.component_count(3) == 5
    assert pid.component_count(5) == 11
    assert pid.component_count(8) == 1


def test_explicit_null_reads_empty_and_is_told_apart_from_absent() -> None:
    pid = message(PID).first("PID")
    assert pid is not None

    assert pid.is_null(16)
    assert pid.get(16) == ""
    assert not pid.has(16)
    assert not pid.is_null(15)
    assert pid.get(13, 1, repetition=1) == ""
    assert pid.get(13, 2, repetition=1) == "PRN"


def test_field_count_is_the_highest_field_holding_a_value() -> None:
    parsed = message(PID, "PV1|1|O|||||||||||||||||V1||||")

    assert parsed.segments[0].field_count() == 12
    assert parsed.first("PID").field_count() == 16  # type: ignore[union-attr]
    assert parsed.first("PV1").field_count() == 19  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("escaped", "plain"),
    [
        ("Bakker \\T\\ Mulder", "Bakker & Mulder"),
        ("a\\F\\b\\S\\c\\R\\d\\E\\e", "a|b^c~d\\e"),
        ("regel 1\\.br\\regel 2", "regel 1\nregel 2"),
        ("\\H\\vet\\N\\", "vet"),
        ("Cr\\XE8\\me", "Crème"),
        ("onbekend \\Z99\\ blijft", "onbekend \\Z99\\ blijft"),
        ("los \\ teken", "los \\ teken"),
    ],
)
def test_escape_sequences_are_resolved_when_a_value_is_read(escaped: str, plain: str) -> None:
    nte = message(f"NTE|1|L|{escaped}", msh=MSH + "||||||8859/1").first("NTE")
    assert nte is not None

    assert nte.get(3) == plain


def test_hex_escapes_decode_in_the_character_set_of_the_message() -> None:
    nte = message("NTE|1|L|Cr\\XC3A8\\me", msh=MSH + "||||||UNICODE UTF-8").first("NTE")
    assert nte is not None

    assert nte.get(3) == "Crème"


def test_escapes_follow_the_encoding_characters_declared_in_msh_2() -> None:
    msh = "MSH#$*!@#HIS#LINDE#BCONV#BC#20240820##ADT$A04#C2#P#2.5"
    parsed = message("PID#1##7001234$$$LINDE$PI##Jansen@@Jansen$Eva##!T!x", msh=msh)
    pid = parsed.first("PID")
    assert pid is not None

    assert parsed.message_type == "ADT^A04"
    assert pid.get(3, 4) == "LINDE"
    assert pid.get(5, 1, 3) == "Jansen"
    assert pid.get(7) == "@x"


def test_first_all_and_preceding_find_segments_in_message_order() -> None:
    parsed = message("OBR|1", "OBX|1", "OBX|2", "OBR|2", "OBX|3")
    third = parsed.all("OBX")[2]

    assert [s.get(1) for s in parsed.all("OBX")] == ["1", "2", "3"]
    assert parsed.first("OBR").get(1) == "1"  # type: ignore[union-attr]
    assert parsed.preceding(third, "OBR").get(1) == "2"  # type: ignore[union-attr]
    assert parsed.preceding(parsed.all("OBR")[0], "OBX") is None
    assert parsed.first("ZZZ") is None


def test_segment_repr_shows_the_place_never_the_values() -> None:
    pid = message(PID).first("PID")

    assert repr(pid) == "Segment(PID, index=1)"
    assert "Jansen" not in repr(message(PID))


def test_field_numbers_start_at_one() -> None:
    pid = message(PID).first("PID")
    assert pid is not None

    with pytest.raises(ValueError):
        pid.get(0)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"PID|1||7001234\r", "MSH"),
        (b"MSH|^~\r", "MSH"),
        (b"MSH|^~^&|HIS||||||ADT^A01|C1|P|2.5\r", "MSH-2"),
        (b"MSH|^~\\&|HIS||||||ADT^A01|C1|P|2.5\rPID|1\rpid|2\r", "segment 3"),
        (b"MSH|^~\\&|HIS||||||ADT^A01|C1|P|2.5\rPID^1\r", "segment 2"),
        (b"MSH|^~\\&|HIS|||||||C1|P|2.5\r", "MSH-9"),
        (b"MSH|^~\\&|HIS||||||ADT^A01||P|2.5\r", "MSH-10"),
        (b"MSH|^~\\&|HIS||||||ADT^A01|C1|P|2.5||||||UNICODE UTF-8\rPID|\xe9\r", "MSH-18"),
        (b"MSH|^~\\&|HIS||||||ADT^A01|C1|P|2.5||||||EBCDIC\rPID|\xe9\r", "MSH-18"),
        (b"MSH|^~\\&|HIS||||||ADT^A01|C1|P|2.5\rPID|\xe9\r", "MSH-18"),
    ],
)
def test_broken_messages_raise_naming_the_field(raw: bytes, field: str) -> None:
    with pytest.raises(Hl7FormatError) as raised:
        parse_message(raw)

    assert raised.value.field == field
