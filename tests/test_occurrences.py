"""Where, when and under which licence (#15): GBIF occurrence records through the polite
fetcher, against a stand-in for GBIF's API on 127.0.0.1; the map tab's filters; licences in
the exports; Darwin Core out."""

from __future__ import annotations

import base64
import io
import json
import re
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.copies import build_copies_atlas

from bioclip_nb import Atlas
from bioclip_nb.commands.cli import main
from bioclip_nb.config import Settings
from bioclip_nb.dashboard import Dashboard
from bioclip_nb.images.fetch import FetchLimits, ImageFetcher, open_image_cache
from bioclip_nb.images.policy import HostPolicy
from bioclip_nb.occurrences import Occurrences, PlaceFilter, licence_label, reusable
from bioclip_nb.outputs.darwincore import HIT_TERMS, PHOTO_TERMS
from bioclip_nb.testing.gbifapi import GbifApi, occurrence

NOW = datetime.now(UTC)
DWC_TERMS = set((Path(__file__).parent / "data" / "dwc_occurrence_core_terms.csv").read_text().strip().split(","))
LICENCES = ("http://creativecommons.org/licenses/by/4.0/legalcode", "http://creativecommons.org/licenses/by-nc/4.0/legalcode",
            "http://creativecommons.org/publicdomain/zero/1.0/legalcode")
COUNTRIES = ("US", "DE", "BR")


def records_for(table: pd.DataFrame) -> dict[str, dict]:
    """A GBIF record for every GBIF row of the copies atlas: months, countries and licences in turn;
    every fifth without coordinates."""
    out = {}
    for k, key in enumerate(table.loc[table["source_dataset"] == "gbif", "source_id"]):
        located = k % 5 != 4
        out[key] = occurrence(key, 40.0 + k / 10 if located else None, -83.0 + k / 10 if located else None,
                              f"2021-{k % 12 + 1:02d}-14", COUNTRIES[k % 3], LICENCES[k % 3])
    return out


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    return build_copies_atlas(tmp_path_factory.mktemp("occ-copies"))


@pytest.fixture(scope="module")
def gbif(copies):
    with GbifApi(records_for(copies[1])) as api:
        yield api


def _fetcher(tmp_path: Path, **policy) -> ImageFetcher:
    return ImageFetcher(cache=open_image_cache(tmp_path / "cache"), state_dir=tmp_path / "state",
                        policies={"127.0.0.1": HostPolicy(**policy)} if policy else None,
                        limits=FetchLimits(read_timeout=1.0, total_timeout=2.0))


# --------------------------------------------------------------------------- the records
def test_every_outcome_is_a_status_and_the_policy_holds(tmp_path):
    keys = [str(k) for k in range(7000, 7008)]
    records = {k: occurrence(k, 10.0, 20.0, "2020-05-01", "FR") for k in keys}
    records["7006"] = {"key": 7006}                                   # a record with no fields at all
    faults = {"7001": "404", "7002": "429", "7003": "malformed", "7004": "html", "7005": "slow"}
    hits = pd.DataFrame({"id": range(10), "source_dataset": ["gbif"] * 8 + ["eol", "gbif"],
                         "source_id": keys + ["12", "not-a-number"], "genus": "Vulpes", "species": "vulpes"})
    slow = hits[hits["source_id"] == "7005"]
    with GbifApi(records, faults, hang=3.0) as api:
        occ = Occurrences(_fetcher(tmp_path, min_interval=0.2, max_concurrency=1), api.api)
        table = pd.concat([occ.lookup(hits.drop(slow.index)), occ.lookup(slow)]).sort_index()
        status = table["occurrence_status"].to_dict()
        assert status[0] == "ok" and table.loc[0, "latitude"] == 10.0 and table.loc[0, "month"] == 5
        assert table.loc[0, "license"] == "CC BY 4.0" and "GBIF occurrence 7000" in table.loc[0, "citation"]
        assert status[1] == "record gone from GBIF"
        assert status[2] == "ok" and api.requests_for("7002") == 2        # 429 retried within Retry-After
        assert status[3] == "the host sent malformed JSON" and "not JSON" in status[4]
        assert "too slow" in status[5] or "did not answer" in status[5]
        assert status[6] == "ok" and pd.isna(table.loc[6, "latitude"]) and pd.isna(table.loc[6, "license"])
        assert status[8] == status[9] == "no occurrence record"            # EOL, and a non-GBIF id
        answered = [r for r in api.log if not r.path.endswith("/7005")]   # the slow one was given up on
        starts = sorted(r.start for r in answered)
        assert max(r.concurrent for r in answered) == 1                  # one at a time, as the policy says
        ends = sorted((r.start, r.end) for r in answered)
        gaps = [b[0] - a[1] for a, b in zip(ends, ends[1:])]
        assert min(gaps) >= 0.2 - 0.02, gaps                                # 0.2 s after each answer
        before = len(api.log)
        again = occ.lookup(hits)                                            # cached: ok and gone ask nothing
        asked = {r.path.rsplit("/", 1)[1] for r in api.log[before:]}
        assert asked <= {"7003", "7004", "7005"} and again.loc[0, "latitude"] == 10.0
        assert len(starts) >= 8


def test_add_occurrences_from_python(copies, gbif, tmp_path):
    from bioclip_nb.occurrences import COLUMNS, add_occurrences
    with Atlas.open(copies[0]) as atlas:
        hits = atlas.search(np.load(copies[0] / "vectors.npy")[0], top_n=6)
    out = add_occurrences(hits, Settings(home=tmp_path / "home", gbif_api=gbif.api))
    assert list(out.columns[-len(COLUMNS):]) == list(COLUMNS) and out["id"].tolist() == hits["id"].tolist()
    gbif_rows = out[out["source_dataset"] == "gbif"]
    assert (gbif_rows["occurrence_status"] == "ok").all() and gbif_rows["event_date"].str.startswith("2021-").all()


def test_licences_and_filters():
    assert licence_label("http://creativecommons.org/licenses/by-nc/4.0/legalcode") == "CC BY-NC 4.0"
    assert licence_label("CC_BY_4_0") == "CC BY 4.0" and licence_label("CC0_1_0") == "CC0 1.0"
    assert reusable("CC BY 4.0") and reusable("http://creativecommons.org/publicdomain/zero/1.0/")
    assert not reusable("CC BY-NC 4.0") and not reusable(None)
    table = pd.DataFrame({"month": [1, 6, None], "country_code": ["US", "DE", None], "license": ["CC BY 4.0", "CC BY-NC 4.0", None],
                          "latitude": [40.0, 50.0, None], "longitude": [-80.0, 10.0, None]}, index=[7, 8, 9])
    assert PlaceFilter(months=(5, 7)).keep(table).tolist() == [False, True, False]
    assert PlaceFilter(country="US").keep(table).tolist() == [True, False, False]
    assert PlaceFilter(reusable_only=True).keep(table).tolist() == [True, False, False]
    assert PlaceFilter(box=(45, 0, 55, 20)).keep(table).tolist() == [False, True, False]
    assert not PlaceFilter().active and PlaceFilter(country="US").describe() == "country US"


# --------------------------------------------------------------------------- CLI and Darwin Core
def test_cli_with_occurrences_and_darwin_core(copies, gbif, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("BIOCLIP_NB_GBIF_API", gbif.api)
    monkeypatch.setenv("BIOCLIP_NB_HOME", str(tmp_path / "home"))
    atlas_path = copies[0]
    vectors = np.load(atlas_path / "vectors.npy")
    np.save(tmp_path / "q.npy", vectors[3])
    code = main(["search", "--vectors", str(tmp_path / "q.npy"), "--atlas", str(atlas_path), "--local",
                 "--with-occurrences", "--top-n", "8"])
    out, err = capsys.readouterr()
    assert code == 0, err
    rows = json.loads(out)["searches"][0]["hits"]
    located = [r for r in rows if r["latitude"] is not None]
    assert located and all(r["occurrence_status"] in ("ok", "no occurrence record") for r in rows)
    assert {r["license"] for r in located} <= {"CC BY 4.0", "CC BY-NC 4.0", "CC0 1.0"}
    code = main(["search", "--vectors", str(tmp_path / "q.npy"), "--atlas", str(atlas_path), "--local", "--format", "dwc"])
    out, err = capsys.readouterr()
    dwc = pd.read_csv(io.StringIO(out))
    assert code == 0 and set(dwc.columns) <= DWC_TERMS and list(dwc.columns) == list(HIT_TERMS)
    gbif_rows = dwc[dwc["occurrenceID"].str.startswith("https://www.gbif.org/occurrence/")]
    assert len(gbif_rows) and gbif_rows["eventDate"].notna().all() and gbif_rows["license"].notna().all()
    assert dwc["scientificName"].str.match(r"^[A-Z][a-z]+ [a-z]+$").all()
    folder = atlas_path.parent / "copies-collection"
    photos = [str(folder / "Parus_major_4.jpg"), str(folder / "Vulpes_vulpes_5.jpg")]
    bad = tmp_path / "notes.jpg"
    bad.write_text("field notes, not a photo")
    code = main(["search", *photos, str(bad), "--atlas", str(atlas_path), "--local", "--format", "dwc"])
    out, err = capsys.readouterr()
    sheet = pd.read_csv(io.StringIO(out))
    assert code == 0 and set(sheet.columns) <= DWC_TERMS and list(sheet.columns) == list(PHOTO_TERMS)
    assert sheet["associatedMedia"].tolist() == ["Parus_major_4.jpg", "Vulpes_vulpes_5.jpg", "notes.jpg"]
    assert sheet["identificationRemarks"].iloc[0].startswith("neighbours' consensus Parus major")
    assert "not identified" in sheet["occurrenceRemarks"].iloc[2]
    assert sheet["occurrenceID"].iloc[0].startswith("sha256:")


# --------------------------------------------------------------------------- the dashboard
def _download(link_html: str) -> bytes:
    return base64.b64decode(re.search(r"base64,([A-Za-z0-9+/=]+)", link_html).group(1))


def test_the_where_and_when_tab_narrows_the_gallery_and_the_exports(copies, gbif, tmp_path):
    d = Dashboard.from_settings(atlas=copies[0], settings=Settings(home=tmp_path / "home", gbif_api=gbif.api),
                                device="cpu", link="")
    d.widget
    d.controls.top_n.value = 20
    data = (copies[0].parent / "copies-collection" / "Vulpes_vulpes_1.jpg").read_bytes()
    d.controls.upload.value = ({"name": "fox.jpg", "type": "image/jpeg", "size": len(data), "content": memoryview(data),
                                "last_modified": NOW},)
    d.controls.search.click()
    d.wait()
    table = d.session.places.table
    assert table is not None and len(table) == 20
    hits = d.session.places.annotate(d.session.hits)
    located = hits.dropna(subset=["latitude"])
    assert len(d.tabs["where"].markers.layers) == len(located) > 0
    assert "have a place on the map" in d.tabs["where"].summary.value and d.tabs["where"].season.layout.display is None
    gbif_hit = int(located["id"].iloc[0])
    d.select(gbif_hit)
    assert "licence" in d.detail.place.value and "GBIF occurrence" in d.detail.place.value
    month = int(located["month"].iloc[0])
    d.tabs["where"].months.value = (month, month)                   # one month: the gallery narrows
    expected = set(hits.loc[hits["month"] == month, "id"].astype(int))
    assert len(d.tabs["gallery"].ids) == len(expected) < 20
    assert set(d.tabs["gallery"].ids) == expected and "Showing" in d.status.value
    d.tabs["export"].buttons["csv"].click()
    csv = pd.read_csv(io.BytesIO(_download(d.tabs["export"].links.value)))
    assert set(csv["id"]) == expected and (csv["month"] == month).all()
    assert {"latitude", "longitude", "event_date", "license", "rights_holder", "citation"} <= set(csv.columns)
    d.tabs["export"].buttons["dwc"].click()
    dwc = pd.read_csv(io.BytesIO(_download(d.tabs["export"].links.value)))
    assert set(dwc.columns) <= DWC_TERMS and len(dwc) == len(expected) and (dwc["month"] == month).all()
    d.tabs["where"].months.value = (1, 12)
    d.tabs["where"].reusable.value = True                           # reusable licences only
    kept = set(hits.loc[hits["license"].isin(["CC BY 4.0", "CC0 1.0"]), "id"].astype(int))
    assert set(d.tabs["gallery"].ids) == kept
    d.tabs["export"].buttons["zip"].click()
    d.wait()
    with zipfile.ZipFile(io.BytesIO(_download(d.tabs["export"].links.value))) as zf:
        attribution = zf.read("ATTRIBUTION.txt").decode()
        inside = pd.read_csv(io.BytesIO(zf.read("hits.csv")))
    assert set(inside["id"]) == kept and "licence CC" in attribution
    d.tabs["where"].reusable.value = False
    assert len(d.tabs["gallery"].ids) == 20


def test_a_server_backed_dashboard_gets_the_records_from_the_server(copies, gbif, tmp_path):
    """The kernel asks the server (/v1/occurrences); the server's fetcher asks GBIF, once."""
    from helpers.servers import server_thread

    from bioclip_nb.service.warm import Warm
    warm = Warm(Atlas.open(copies[0]), Settings(home=tmp_path / "server", gbif_api=gbif.api), device="cpu")
    with server_thread(warm, "g" * 32) as url:
        d = Dashboard.from_settings(settings=Settings(home=tmp_path / "kernel", server=url, token="g" * 32), link="")
        d.widget
        data = (copies[0].parent / "copies-collection" / "Parus_major_2.jpg").read_bytes()
        before = len(gbif.log)
        d.upload_bytes(data, "tit.jpg")
        d.search()
        d.wait(120)
        table = d.session.places.table
        assert table is not None and (table["occurrence_status"] == "ok").sum() >= 5
        assert len(d.tabs["where"].markers.layers) == int(table["latitude"].notna().sum())
        asked = len(gbif.log) - before
        assert asked > 0
        d.search()                               # the same search again: the server's cache answers
        d.wait(120)
        assert len(gbif.log) - before == asked
    warm.close()
