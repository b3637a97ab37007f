"""ADA PWD 3.2 -> FHIR against Nictiz's reference output, and docs/conformance.md kept honest."""

from __future__ import annotations

import re

import pytest

from converters import conformance as cf
from tests.conftest import ROOT, corpus_path

DOC = ROOT / "docs" / "conformance.md"
TARGET = 0.95
OBS = "x/bc-MaternalObservation"


@pytest.fixture(scope="module")
def report() -> cf.Report:
    return cf.run(cf.both_use_cases(corpus_path("nictiz-peri326-fhir")))


def _documented_rows() -> dict[str, tuple[int, ...]]:
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[1].isdigit():
            rows[cells[0]] = tuple(int(c) for c in cells[1:6])
    return rows


def _documented_figure() -> tuple[int, int]:
    found = re.search(r"(\d+)/(\d+) reference elements reproduced", DOC.read_text("utf-8"))
    assert found, "docs/conformance.md states no figure"
    return int(found.group(1)), int(found.group(2))


def test_only_the_example_without_a_pregnancy_card_is_quarantined(report: cf.Report) -> None:
    assert len(report.quarantined) == 1
    assert "geen_kaart" in report.quarantined[0]
    assert "holds nothing the mapping tables convert" in report.quarantined[0]


def test_the_agreement_figure_is_the_one_documented(report: cf.Report) -> None:
    assert (report.reproduced, report.elements) == _documented_figure()


def test_every_remaining_difference_per_profile_is_documented(report: cf.Report) -> None:
    computed = {row[0]: row[1:] for row in cf.markdown_rows(report)}
    assert _documented_rows() == computed


def test_at_least_95_percent_of_reference_elements_are_reproduced(report: cf.Report) -> None:
    assert report.agreement >= TARGET


@pytest.mark.parametrize("use_case", [
    "med_mij_01_beschikbaarstellen_integrale_zwangerschapskaart",
    "med_mij_uitbreiding_verloskunde_beschikbaarstellen",
])
def test_each_use_case_reaches_95_percent_as_documented(use_case: str) -> None:
    one = cf.run(cf.use_cases(corpus_path("nictiz-peri326-fhir"))[use_case])
    assert one.agreement >= TARGET
    documented = re.search(rf"`{use_case}` \((\d+)/(\d+), ", DOC.read_text("utf-8"))
    assert documented, f"docs/conformance.md states no figure for {use_case}"
    assert (one.reproduced, one.elements) == (int(documented[1]), int(documented[2]))


def test_references_are_compared_by_the_kind_of_their_target() -> None:
    ours = cf._prepare("c", [
        {"resourceType": "Patient", "id": "a", "meta": {"profile": ["x/bc-Woman"]},
         "_fullUrl": "urn:uuid:1"},
        {"resourceType": "Observation", "id": "o", "meta": {"profile": [OBS]},
         "subject": {"reference": "urn:uuid:1", "display": "ignored"}},
    ])
    theirs = cf._prepare("c", [
        {"resourceType": "Patient", "id": "HANNA", "meta": {"profile": ["x/bc-Woman"]}},
        {"resourceType": "Observation", "id": "p", "meta": {"profile": [OBS]},
         "subject": {"reference": "Patient/HANNA", "display": "other"}},
    ])
    assert ours[1].leaves == theirs[1].leaves


def test_generated_ids_and_narrative_are_not_counted_as_elements() -> None:
    resource = {"resourceType": "Observation", "id": "x", "text": {"div": "<div/>"},
                "identifier": [{"system": cf.GENERATED_ID_SYSTEM, "value": "1"}],
                "status": "final"}
    assert cf.leaves(resource, lambda ref: "") == {("status", "final"): 1}


def test_a_missing_reference_resource_counts_all_its_elements_as_missing() -> None:
    report = cf.Report()
    theirs = cf._prepare("c", [{"resourceType": "Observation", "meta": {"profile": ["x/zib-Y"]},
                                "status": "final", "code": {"coding": [{"code": "1"}]}}])
    cf.compare_case(report, [], theirs)
    assert (report.reproduced, report.elements) == (0, 3)  # meta.profile, status, code


def test_the_generated_tables_are_what_the_generator_makes() -> None:
    tsv = corpus_path("..", "domain", "pwd32_fhir_mapping.tsv")
    import tools.generate_ada32_tables as gen

    files, entries, count = gen.build(tsv)
    assert count > 100  # every coded bc-*Observation concept of PWD 3.2, used or not
    for path, text in files.items():
        assert path.read_text(encoding="utf-8") == text, path.name
    assert entries in (ROOT / "mappings" / "ada32" / "message.yaml").read_text(encoding="utf-8")
