"""The project's HL7v2 samples and the public corpus read as their README says."""

from __future__ import annotations

from pathlib import Path

import pytest

from converters.readers.hl7v2 import read_hl7v2
from converters.records import SourceRecord

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples" / "hl7v2"
CORPUS = ROOT.parent / "shared" / "corpus"
CORPUS_DIRS = ("nl-hl7v2-mmerlijn", "hl7v2-generic-msfhirconverter")


def sample(name: str) -> list[SourceRecord]:
    return list(read_hl7v2(SAMPLES / name))


def corpus_files() -> list[Path]:
    return sorted(p for d in CORPUS_DIRS for p in (CORPUS / d).glob("*") if p.is_file())


def passes_11_test(bsn: str) -> bool:
    digits = [int(c) for c in bsn]
    total = sum(d * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True)) - digits[8]
    return len(bsn) == 9 and total % 11 == 0


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("adt_a04_pregnant_woman.hl7", [("LINDE-ADT-0001", "ADT^A04")]),
        (
            "adt_a01_newborn_twins.hl7",
            [("LINDE-ADT-0201", "ADT^A01"), ("LINDE-ADT-0202", "ADT^A01")],
        ),
        (
            "adt_a08_a28_a31_batch.hl7",
            [
                ("LINDE-ADT-0101", "ADT^A08"),
                ("LINDE-ADT-0102", ""),
                ("LINDE-ADT-0103", "ADT^A28"),
                ("LINDE-ADT-0104", "ADT^A31"),
            ],
        ),
        ("adt_a04_invalid_bsn.hl7", [("LINDE-ADT-0301", "ADT^A04")]),
        ("oru_r01_prenatal_screening.hl7", [("LABLINDE-ORU-0042", "ORU^R01")]),
        (
            "oru_r01_mllp_framed.hl7",
            [("LABLINDE-ORU-0107", "ORU^R01"), ("LABLINDE-ORU-0108", "ORU^R01")],
        ),
    ],
)
def test_each_sample_reads_with_the_expected_ids_and_kinds(
    name: str, expected: list[tuple[str, str]]
) -> None:
    assert [(r.record_id, r.kind) for r in sample(name)] == expected


def test_every_sample_is_described_in_the_readme() -> None:
    readme = (SAMPLES / "README.md").read_text(encoding="utf-8")

    assert all(f"`{p.name}`" in readme for p in SAMPLES.glob("*.hl7"))


def test_only_the_broken_batch_message_is_an_error_record() -> None:
    records = sample("adt_a08_a28_a31_batch.hl7")

    assert [r.error is not None for r in records] == [False, True, False, False]
    assert records[1].error is not None and records[1].error.field == "MSH-9"
    assert {r.meta["batch"] for r in records} == {"LINDE-BATCH-20241105"}
    assert records[0].payload.version == "2.4"


def test_the_pregnant_woman_reads_with_dutch_name_parts_in_true_latin1() -> None:
    [record] = sample("adt_a04_pregnant_woman.hl7")
    pid = record.payload.first("PID")
    names = [pid.get(5, 1, n) for n in range(1, 6)]

    assert names == ["Jansen-de Vries", "", "Jansen", "de", "Vries"]
    assert (pid.get(5, 2), pid.get(5, 3), pid.get(5, 11)) == ("Eva", "Noëlle", "NL4")
    assert (pid.get(3, 1), pid.get(3, 4), pid.get(3, 5)) == ("999990317", "NLMINBIZA", "NNNLD")
    assert (pid.get(11, 1, 2), pid.get(11, 1, 3), pid.get(11, 2)) == ("Lindelaan", "12", "a")
    assert record.meta["charset"] == "latin-1"
    assert record.payload.first("PD1").get(3) == "Verloskundigenpraktijk Bakker & Mulder"


def test_the_twins_read_from_utf8_declared_8859_1_with_birth_order() -> None:
    records = sample("adt_a01_newborn_twins.hl7")
    pids = [r.payload.first("PID") for r in records]
    mothers = [r.payload.first("NK1") for r in records]

    assert [p.get(25) for p in pids] == ["1", "2"]
    assert [p.get(7) for p in pids] == ["202502270832+0100", "202502270847+0100"]
    assert {p.get(21) for p in pids} == {"999990317"}
    assert {p.get(3, 5) for p in pids} == {"PI"}
    assert {(m.get(3), m.get(2, 3), m.get(33)) for m in mothers} == {("MTH", "Noëlle", "999990317")}
    assert all("charset_note" in r.meta for r in records)


def test_the_mllp_sample_keeps_each_message_without_its_frame() -> None:
    records = sample("oru_r01_mllp_framed.hl7")

    assert all(r.raw.startswith(b"MSH|") and r.raw.endswith(b"\r") for r in records)
    assert not any(b"\x0b" in r.raw or b"\x1c" in r.raw for r in records)
    assert records[1].payload.first("PID").get(5, 2) == "Chloë"


def test_the_prenatal_screening_carries_each_value_type_and_status() -> None:
    [record] = sample("oru_r01_prenatal_screening.hl7")
    message = record.payload
    results = message.all("OBX")

    assert {o.get(2) for o in results} >= {"NM", "CWE", "ST", "SN"}
    assert {o.get(11) for o in results} == {"F", "C"}
    assert message.first("OBR").get(3) == "LAB-240822-0042"
    assert (message.first("OBR").get(16), message.first("OBR").get(16, 9)) == ("08123456", "VEKTIS")
    assert message.preceding(results[-1], "OBR") is message.first("OBR")
    assert message.first("NTE").get(3) == "Verloskundige geïnformeerd.\nControle over 4 weken."


def test_every_bsn_in_the_samples_passes_the_11_test_except_the_invalid_case() -> None:
    failing = set()
    for path in SAMPLES.glob("*.hl7"):
        for record in read_hl7v2(path):
            if record.payload is None:
                continue
            for segment in record.payload.segments:
                for field in range(1, segment.field_count() + 1):
                    for rep in range(segment.repetitions(field)):
                        if segment.get(field, 4, repetition=rep) == "NLMINBIZA":
                            bsn = segment.get(field, 1, repetition=rep)
                            if not passes_11_test(bsn):
                                failing.add((path.name, bsn))

    assert failing == {("adt_a04_invalid_bsn.hl7", "999990312")}


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_public_corpus_file_reads_into_records_without_crashing(path: Path) -> None:
    records = list(read_hl7v2(path))

    assert records
    assert all((r.payload is None) != (r.error is None) for r in records)
    assert all(r.payload.segments[0].name == "MSH" for r in records if r.payload)


def test_every_public_corpus_message_reads_without_an_error() -> None:
    if not corpus_files():
        pytest.skip(f"public corpus not found under {CORPUS}; see ../shared/corpus/README.md")
    assert all(r.error is None for p in corpus_files() for r in read_hl7v2(p))
