"""Engine features for XML sources: keyed references, $here joins, string XPaths, ADA dates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lxml import etree

from converters.cli import main
from converters.fhir.assembler import Assembler
from converters.fhir.ids import IdMaker
from converters.mapping.engine import Engine
from converters.mapping.tables import load_mappings
from converters.mapping.transforms import ada_date, ada_datetime
from converters.records import SourceRecord
from tests.conftest import corpus_path

# A synthetic ADA document: two contacts with two practitioners, a prenatal check pointing at
# one of them and at a body weight.
ADA = b"""<adaxml><data><med_mij_01_beschikbaarstellen_integrale_zwangerschapskaart>
<administratief>
 <contact id="C1"><contact_met><zorgverlener value="ZV1"/></contact_met>
  <begin_datum_tijd value="T-10D"/></contact>
 <contact id="C2"><contact_met><zorgverlener value="ZV2"/></contact_met>
  <begin_datum_tijd value="T-2D"/></contact>
 <patient id="W"><identificatienummer value="999999990" root="2.16.840.1.113883.2.4.6.3"/>
  <naamgegevens><voornamen value="Test"/><naamgebruik code="NL4"/>
   <geslachtsnaam><voorvoegsels value="van"/><achternaam value="Eigen"/></geslachtsnaam>
   <geslachtsnaam_partner><achternaam_partner value="Partner"/></geslachtsnaam_partner>
  </naamgegevens></patient>
 <zorgverlener id="ZV1"><zorgverlener_identificatienummer value="1" root="2.16.528.1.1007.3.1"/>
 </zorgverlener>
 <zorgverlener id="ZV2"><zorgverlener_identificatienummer value="2" root="2.16.528.1.1007.3.1"/>
 </zorgverlener>
</administratief>
<vrouw><demografische_gegevens><patient value="W"/></demografische_gegevens></vrouw>
<zwangerschapsgegevens>
 <prenatale_controle><contact value="C2"/><lichaamsgewicht value="G1"/></prenatale_controle>
</zwangerschapsgegevens>
<bouwstenen><metingen><lichaamsgewicht id="G1"><gewicht_waarde value="70" unit="kg"/>
 <gewicht_datum_tijd value="T-2D"/></lichaamsgewicht></metingen></bouwstenen>
</med_mij_01_beschikbaarstellen_integrale_zwangerschapskaart></data></adaxml>"""


@pytest.fixture(scope="module")
def converted() -> dict[str, list[dict]]:
    record = SourceRecord(file="synthetic.xml", position=1, record_id="1", format="xml",
                          kind="ada:med_mij_01_beschikbaarstellen_integrale_zwangerschapskaart",
                          raw=ADA, payload=etree.fromstring(ADA))
    mappings = load_mappings()
    assembled = Assembler(IdMaker(b"synthetic-test-key-0123456789"), mappings.version).assemble(
        Engine(mappings).convert(record))
    by_type: dict[str, list[dict]] = {}
    for entry in assembled.entries:
        resource = dict(entry.resource, fullUrl=entry.full_url)
        by_type.setdefault(resource["resourceType"], []).append(resource)
    return by_type


def _by_url(converted: dict[str, list[dict]], url: str) -> dict:
    return next(r for rs in converted.values() for r in rs if r["fullUrl"] == url)


def test_a_keyed_reference_points_at_the_resource_with_that_ada_id(converted) -> None:
    weight = next(o for o in converted["Observation"]
                  if o["code"]["coding"][0]["code"] == "29463-7")
    encounter = _by_url(converted, weight["context"]["reference"])
    assert encounter["period"]["start"] == ada_datetime("T-2D")


def test_each_contact_names_its_own_practitioner(converted) -> None:
    starts = {}
    for encounter in converted["Encounter"]:
        practitioner = _by_url(converted, encounter["participant"][0]["individual"]["reference"])
        starts[encounter["period"]["start"]] = practitioner["identifier"][0]["value"]
    assert starts == {ada_datetime("T-10D"): "1", ada_datetime("T-2D"): "2"}


def test_the_pregnancy_is_produced_although_the_document_records_nothing_of_it(converted) -> None:
    assert [c["code"]["coding"][0]["code"] for c in converted["Condition"]] == ["118185001"]


def test_a_string_xpath_joins_own_and_partner_name_for_nl4(converted) -> None:
    name = converted["Patient"][0]["name"][0]
    assert (name["family"], name["text"]) == ("van Eigen-Partner", "Test van Eigen-Partner")


def test_ada_relative_dates_resolve_like_the_reference_placeholders() -> None:
    assert (ada_date("T-139D"), ada_datetime("T-225D{12:13}")) == (
        "2023-08-15", "2023-05-21T12:13:00+02:00")


def test_every_ada_file_of_the_corpus_converts_or_is_quarantined(tmp_path: Path) -> None:
    corpus = corpus_path()
    folders = sorted({p.parent for p in corpus.rglob("ada_instance/*.xml")})
    for index, folder in enumerate(folders):
        out = tmp_path / str(index)
        main(["convert", str(folder), "--out", str(out), "--quiet"])
        report = json.loads((out / "report.json").read_text(encoding="utf-8"))
        reasons = [q["reason"] for q in report.get("quarantined", [])]
        assert all(reasons), folder


def test_the_pwd32_examples_validate_clean_in_strict_mode(tmp_path: Path) -> None:
    base = corpus_path("nictiz-peri326-fhir")
    for index, use_case in enumerate(sorted(base.iterdir())):
        out = tmp_path / str(index)
        main(["convert", str(use_case / "ada_instance"), "--out", str(out), "--quiet"])
        report = json.loads((out / "report.json").read_text(encoding="utf-8"))
        codes = {(Path(q["file"]).stem, q["code"]) for q in report.get("quarantined", [])}
        assert codes <= {("gz-izb-kwa-geen-V3_geen_kaart", "empty-record")}, use_case.name


def test_a_birth_naming_the_woman_is_reported_and_the_document_loads(tmp_path: Path) -> None:
    use_case = corpus_path("nictiz-peri326-fhir",
                           "med_mij_uitbreiding_verloskunde_beschikbaarstellen")
    main(["convert", str(use_case / "ada_instance"), "--out", str(tmp_path), "--quiet"])
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["quarantined"] == []
    refused = [i for i in report["issues"] if i["issue"] == "birth-names-mother"]
    assert [i["count"] for i in refused] == [1]
    assert refused[0]["example"].startswith("gz-izv-tes-casus9999.xml#")
    assert refused[0]["example"].endswith("/bevalling/uitdrijvingsfase")
