"""Golden files: each sample message converts to exactly the reviewed Bundle beside it.

Regenerate after an intended mapping change with ``BABYCONNECT_REGEN_GOLDEN=1 pytest
tests/pipeline/test_golden_hl7v2.py`` and review the diff in git before committing.
"""

from __future__ import annotations

import difflib
import importlib
import json
import os
from pathlib import Path

import pytest

from converters.fhir.assembler import Assembler
from converters.fhir.ids import IdMaker
from converters.mapping.engine import Engine
from converters.mapping.tables import load_mappings
from converters.readers.hl7v2 import read_hl7v2
from tests.conftest import SAMPLES

SAMPLE_DIR = SAMPLES / "hl7v2"
EXPECTED = SAMPLE_DIR / "expected"
KEY = b"golden-files-key-not-a-secret-000"
VERSION_PLACEHOLDER = "urn:babyconnect:mapping-version:<version>"


def _records() -> list[tuple[str, object]]:
    out = []
    for path in sorted(SAMPLE_DIR.glob("*.hl7")):
        for record in read_hl7v2(path):
            if record.error is None:
                out.append((f"{path.stem}.{record.position}", record))
    return out


RECORDS = _records()


@pytest.fixture(scope="module")
def convert():
    mappings = load_mappings()
    engine = Engine(mappings)
    assembler = Assembler(IdMaker(KEY), mappings.version)

    def run(record: object) -> dict:
        bundle = assembler.assemble(engine.convert(record)).bundle  # type: ignore[arg-type]
        text = json.dumps(bundle, indent=1, ensure_ascii=False, sort_keys=True)
        return json.loads(text.replace(
            f"urn:babyconnect:mapping-version:{mappings.version}", VERSION_PLACEHOLDER))

    return run


@pytest.mark.parametrize(("case", "record"), RECORDS, ids=[c for c, _ in RECORDS])
def test_sample_message_converts_to_its_golden_bundle(case: str, record: object,
                                                      convert) -> None:
    actual = convert(record)
    golden = EXPECTED / f"{case}.json"
    actual_text = json.dumps(actual, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    if os.environ.get("BABYCONNECT_REGEN_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(actual_text, encoding="utf-8")
    expected_text = golden.read_text(encoding="utf-8")
    if actual_text != expected_text:
        diff = "".join(difflib.unified_diff(expected_text.splitlines(True),
                                            actual_text.splitlines(True),
                                            f"expected/{case}.json", "actual", n=2))
        pytest.fail(f"{case} differs from its golden file:\n{diff}")


@pytest.mark.parametrize(("case", "record"), RECORDS, ids=[c for c, _ in RECORDS])
def test_every_resource_of_a_sample_parses_with_the_stu3_models(case: str, record: object,
                                                                convert) -> None:
    bundle = convert(record)
    importlib.import_module("fhir.resources.STU3.bundle").Bundle.model_validate(bundle)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        module = importlib.import_module(f"fhir.resources.STU3.{resource['resourceType'].lower()}")
        getattr(module, resource["resourceType"]).model_validate(resource)


def test_there_is_a_golden_file_for_every_sample_message_and_no_stale_one() -> None:
    expected = {p.stem for p in EXPECTED.glob("*.json")}
    assert expected == {case for case, _ in RECORDS}
