"""Kernset Neonatologie 3.0: the CDA document and the ADA instance of a case give the same FHIR.

Corpus: nictiz-peri-hl7v3-cda/3.0/kernset_neonatologie, four test cases each as ADA and as the CDA
Nictiz generated from it. The ADA instances carry placeholder dates (T-90D{12:13:00}); the CDA
renderings were generated with 1 January 2021 as "today" (ksneo-test3: document date T-0D{17:00}
is 20210101170000), so the ADA copies are resolved against that day before converting.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from tests.conftest import corpus_path
from tests.support.xmlsources import canonical, convert_both

GENERATED_ON = date(2021, 1, 1)
CASES = ("ksneo-test1", "ksneo-test2", "ksneo-test3", "ksneo-test4")



def _kinds(text: str) -> set[str]:
    """Return ``Type|profile`` for each profile the resource claims (the short profile name)."""
    resource = json.loads(text)
    profiles = resource.get("meta", {}).get("profile", [])
    return {f"{resource['resourceType']}|{p.rsplit('/', 1)[-1]}" for p in profiles}


def _count(texts: Counter[str]) -> Counter[str]:
    return Counter(kind for text in texts.elements() for kind in _kinds(text))


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict, dict, dict]:
    folder = corpus_path("nictiz-peri-hl7v3-cda", "3.0", "kernset_neonatologie")
    return convert_both(folder / "cda_instance", folder / "ada_instance", GENERATED_ON,
                        tmp_path_factory.mktemp("out"))


def test_every_case_loads_in_both_formats(converted: tuple[dict, dict, dict, dict]) -> None:
    cda_report, ada_report, cda, ada = converted
    for report, written in ((cda_report, cda), (ada_report, ada)):
        assert report["outcomes"] == {"loaded": 4}
        assert sorted(Path(name).stem for name in written) == sorted(CASES)


@pytest.mark.parametrize("case", CASES)
def test_cda_and_ada_of_one_case_give_the_same_resources(
    converted: tuple[dict, dict, dict, dict], case: str
) -> None:
    _, _, cda, ada = converted
    from_cda, from_ada = canonical(cda[f"{case}.xml"]), canonical(ada[f"{case}.xml"])

    only_cda = from_cda - from_ada
    only_ada = from_ada - from_cda

    assert not only_cda, f"CDA gave resources ADA did not: {list(only_cda)}"
    assert not only_ada, f"ADA gave resources CDA did not: {list(only_ada)}"
    shared = _count(from_cda & from_ada)
    assert shared["Patient|bc-Child"] == 1
    assert shared["Procedure|bc-Birth"] == 1
    assert shared["Encounter|zib-Encounter"] == 1


def test_the_mother_and_her_findings_come_only_with_a_document_that_names_her(
    converted: tuple[dict, dict, dict, dict],
) -> None:
    _, _, cda, _ = converted
    for name, bundle in cda.items():
        kinds = _count(canonical(bundle))
        named = kinds["Patient|bc-Woman"] == 1
        assert (kinds["Condition|zib-Pregnancy"] == 1) is named, name
        assert (kinds["Observation|zib-Pregnancy-Gravidity"] == 1) is named, name
        if not named:
            assert kinds["Observation|bc-BirthObservation"] == 0, name  # its subject is the woman


def test_a_mother_bsn_failing_the_11_test_leaves_no_identifier_and_no_mother_link(
    converted: tuple[dict, dict, dict, dict],
) -> None:
    _, _, cda, _ = converted
    resources = [e["resource"] for e in cda["ksneo-test1.xml"]["entry"]]  # BSN 000000000
    (woman,) = [r for r in resources if "bc-Woman" in str(r.get("meta"))]

    assert "identifier" not in woman
    assert woman["birthDate"] == "1994-01-01"
    assert not [r for r in resources if r["resourceType"] == "RelatedPerson"]


def test_the_measurements_at_admission_belong_to_the_child_and_the_admission(
    converted: tuple[dict, dict, dict, dict],
) -> None:
    _, _, cda, _ = converted
    entries = cda["ksneo-test3.xml"]["entry"]
    child = next(e["fullUrl"] for e in entries if "bc-Child" in str(e["resource"].get("meta")))
    admission = next(e["fullUrl"] for e in entries if e["resource"]["resourceType"] == "Encounter")
    weights = [e["resource"] for e in entries
               if "zib-BodyWeight" in str(e["resource"].get("meta"))]

    assert [w["valueQuantity"]["value"] for w in weights] == [1800]
    assert weights[0]["subject"]["reference"] == child
    assert weights[0]["context"]["reference"] == admission
