"""Administratief geboortebericht (PRPA_IN101301NL): the two peri20 examples give child and mother.

Corpus: peri20-xml-examples/PRPA_EX101301NL_Geboortebericht_v22_{1,2}.xml (fictitious test data).
"""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import corpus_path
from tests.support.xmlsources import bundles, convert


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    folder = corpus_path("peri20-xml-examples")
    inputs = tmp_path_factory.mktemp("notices")
    for source in sorted(folder.glob("PRPA_EX101301NL_*.xml")):
        shutil.copy(source, inputs / source.name)  # a temporary folder, never the repository
    out = tmp_path_factory.mktemp("out")
    return convert([inputs], out), bundles(out)


def _resources(bundle: dict, profile: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if profile in str(e["resource"].get("meta"))]


def test_both_birth_notices_load(written: tuple[dict, dict]) -> None:
    report, bundles_by_file = written
    assert report["outcomes"] == {"loaded": 2}
    assert len(bundles_by_file) == 2


@pytest.mark.parametrize("number", ["1", "2"])
def test_a_notice_gives_one_child_one_mother_and_the_link_between_them(
    written: tuple[dict, dict], number: str
) -> None:
    bundle = written[1][f"PRPA_EX101301NL_Geboortebericht_v22_{number}.xml"]
    (child,) = _resources(bundle, "bc-Child")
    (mother,) = _resources(bundle, "bc-Woman")
    (link,) = _resources(bundle, "bc-MotherOf")
    child_url = next(e["fullUrl"] for e in bundle["entry"] if e["resource"] is child)

    assert child["birthDate"] == "2015-02-02"
    assert mother["gender"] == "female"
    assert link["patient"]["reference"] == child_url
    assert link["identifier"] == mother["identifier"]


def test_the_dutch_prefix_is_kept_apart_from_the_surname(written: tuple[dict, dict]) -> None:
    bundle = written[1]["PRPA_EX101301NL_Geboortebericht_v22_2.xml"]
    (child,) = _resources(bundle, "bc-Child")
    (name,) = child["name"]

    parts = {e["url"].rsplit("-", 1)[-1]: e["valueString"] for e in name["_family"]["extension"]}
    assert parts == {"prefix": "de", "name": "Groot"}
    assert name["family"] == "de Groot"


def test_a_deceased_newborn_keeps_the_moment_of_death(written: tuple[dict, dict]) -> None:
    bundle = written[1]["PRPA_EX101301NL_Geboortebericht_v22_1.xml"]
    (child,) = _resources(bundle, "bc-Child")

    assert child["deceasedDateTime"].startswith("2015-02-02T12:30")
    assert child["multipleBirthInteger"] == 2
