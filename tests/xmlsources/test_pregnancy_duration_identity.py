"""One gestational-age observation per woman, pregnancy, value and date (ADA 3.2).

The pregnancy duration's id comes from its value and date within the woman's pregnancy
(mappings/ada32/resources/pregnancy-duration.yaml, ``identity``): within a document, a check and a
problem of the same day and duration share one (a mapping test shows it); another woman with the
same duration on the same day gets her own.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import SAMPLES
from tests.support.xmlsources import convert

CARD = SAMPLES / "xml" / "ada32_zwangerschapskaart.xml"
WOMAN_BSN = "999990573"
OTHER_BSN = "999990585"  # synthetic, passes the 11-test
DURATION = "http://nictiz.nl/fhir/StructureDefinition/zib-Pregnancy-PregnancyDuration"


def _durations(out: Path) -> dict[str, dict]:
    found = {}
    for line in (out / "ndjson" / "Observation.ndjson").read_text(encoding="utf-8").splitlines():
        resource = json.loads(line)
        if DURATION in resource["meta"]["profile"]:
            found[resource["id"]] = resource
    return found


def test_another_woman_with_the_same_duration_gets_her_own(tmp_path: Path) -> None:
    text = CARD.read_text(encoding="utf-8")
    assert text.count(WOMAN_BSN) == 1
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.xml").write_text(text, encoding="utf-8")
    (folder / "b.xml").write_text(text.replace(WOMAN_BSN, OTHER_BSN), encoding="utf-8")
    report = convert([folder], tmp_path / "out")
    assert report["outcomes"] == {"loaded": 2}
    durations = _durations(tmp_path / "out").values()
    subjects = {d["subject"]["reference"] for d in durations}
    assert len(subjects) == 2
    per_woman = {s: sorted(d["valueQuantity"]["value"] for d in durations
                           if d["subject"]["reference"] == s) for s in subjects}
    first, second = per_woman.values()
    assert first == second and first, "each woman keeps the same durations"
