"""Working with results (#16): folded copies, marks, provenance, batches, restricted
predictions and links, on real atlases (in-process; the browser side is in test_browser)."""

from __future__ import annotations

import base64
import io
import json
import re
import zipfile
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from helpers.copies import COPIED, SHARED_URL, build_copies_atlas, build_pq_copies_atlas
from helpers.dashatlas import build_dash_atlas, query_file

from bioclip_nb import Atlas, folding
from bioclip_nb import index as ivf
from bioclip_nb.commands.cli import main
from bioclip_nb.config import Settings
from bioclip_nb.dashboard import Dashboard
from bioclip_nb.dashboard.share import UPLOAD_NOTE, LinkState
from bioclip_nb.encoders.within import Within
from bioclip_nb.layout import BIOCLIP2
from bioclip_nb.outputs.provenance import sha256
from bioclip_nb.service.protocol import hits_from_json, hits_to_json

NOW = datetime.now(UTC)
PROVENANCE = ["software", "model", "atlas_fingerprint", "atlas_records", "nprobe", "scope", "taxon_filter",
              "duplicates_folded", "query_kind", "query_input", "query_sha256", "query_predicted", "prediction_within",
              "ranked_by", "searched_at"]


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    path, table = build_copies_atlas(tmp_path_factory.mktemp("copies"))
    return path, table


@pytest.fixture(scope="module")
def copies_atlas(copies):
    with Atlas.open(copies[0]) as atlas:
        yield atlas


def _id_of(atlas: Atlas, table: pd.DataFrame, file: str) -> int:
    source_id = table.loc[table["file"] == file, "source_id"].iloc[0]
    records = atlas.lookup(np.arange(atlas.count))
    return int(records.index[records["source_id"] == source_id][0])


def _vector(atlas: Atlas, record: int) -> np.ndarray:
    return np.load(atlas.path / "vectors.npy")[record]


# --------------------------------------------------------------------------- folding
@pytest.mark.parametrize("file", COPIED)
def test_an_image_under_two_sources_is_one_card(copies_atlas, copies, file):
    atlas, table = copies_atlas, copies[1]
    original = _id_of(atlas, table, file)
    copy = _id_of(atlas, table.assign(file=table["file"].str.replace("_eol.jpg", ".jpg")).iloc[::-1], file)
    assert copy != original
    plain = atlas.search(_vector(atlas, original), top_n=10)
    assert {original, copy} <= set(plain["id"])                  # unfolded, both copies are hits
    folded = atlas.search(_vector(atlas, original), top_n=10, fold=True)
    assert len(folded) == 10 and folded["id"].is_unique and copy not in set(folded["id"])
    best = folded.iloc[0]
    assert int(best["copies"]) == 2 and int(best["id"]) in (original, copy)
    others = folded.attrs["copies"][int(best["id"])]
    assert [c["id"] for c in others] == [copy if int(best["id"]) == original else original]
    assert {c["source_dataset"] for c in others} | {best["source_dataset"]} == {"gbif", "eol"}
    assert (folded["rank"] == np.arange(1, 11)).all()


def test_two_drawings_at_one_url_fold_and_the_page_refills(copies_atlas, copies):
    atlas, table = copies_atlas, copies[1]
    a, b = (_id_of(atlas, table, f) for f in SHARED_URL)
    folded = atlas.search(_vector(atlas, a), top_n=atlas.count, fold=True)
    assert a in set(folded["id"]) and b not in set(folded["id"])
    assert int(folded.loc[folded["id"] == a, "copies"].iloc[0]) == 2
    # 33 records: 3 listed twice and 2 drawings at one URL, so 29 distinct images
    assert len(folded) == atlas.count - len(COPIED) - 1 == 29
    page = atlas.search(_vector(atlas, a), top_n=20, fold=True)
    assert len(page) == 20 and page["id"].is_unique           # refilled to Top N distinct images


def test_folding_off_keeps_every_record(copies_atlas):
    hits = atlas_hits = copies_atlas.search(_vector(copies_atlas, 0), top_n=copies_atlas.count)
    assert len(atlas_hits) == copies_atlas.count and "copies" not in hits


def test_pq_codes_are_decoded_without_a_map_of_every_id(tmp_path):
    path, vectors, planted = build_pq_copies_atlas(tmp_path / "pq")
    with Atlas.open(path) as atlas:
        assert not (path / "vectors.npy").exists()
        hits = atlas.search(vectors[0], top_n=30, nprobe=4)
        decoded = atlas.hit_vectors(hits["id"].to_numpy(), vectors[0], 4)
        reference = ivf.open_index(path / "faiss" / "index.index", mmap=False)
        reference.make_direct_map()
        np.testing.assert_allclose(decoded, reference.reconstruct_batch(hits["id"].to_numpy()), atol=1e-6)
        for copy, original in planted.items():
            folded = atlas.search(vectors[original], top_n=10, nprobe=4, fold=True)
            assert int(folded["copies"].iloc[0]) == 2 and len({copy, original} & set(folded["id"])) == 1
            assert {int(folded["id"].iloc[0]), folded.attrs["copies"][int(folded["id"].iloc[0])][0]["id"]} == {copy, original}
            assert len(folded) == 10 and (folded["copies"].iloc[1:] == 1).all()   # close photos are not copies
        for q in vectors[100:110]:              # no copies near: folding returns the ordinary search's page
            plain = atlas.search(q, top_n=10, nprobe=4)
            folded = atlas.search(q, top_n=10, nprobe=4, fold=True)
            assert folded["id"].tolist() == plain["id"].tolist()
            np.testing.assert_allclose(folded["distance"], plain["distance"], rtol=1e-5)
            assert (folded["cells_scanned"] == 4).all()


def test_fold_rate_counts_copies():
    frame = pd.DataFrame({"id": [1, 2, 3, 4], "url": ["u1", "u1", "u3", None], "source_dataset": ["gbif"] * 4,
                          "source_id": ["a", "b", "c", "c"]})
    assert folding.fold_rate(frame, None) == 0.5


def test_folded_hits_travel_over_the_wire(copies_atlas, copies):
    original = _id_of(copies_atlas, copies[1], COPIED[0])
    hits = copies_atlas.search(_vector(copies_atlas, original), top_n=5, fold=True)
    back = hits_from_json(json.loads(json.dumps(hits_to_json(hits))))
    assert back["copies"].tolist() == hits["copies"].tolist()
    assert {k: [c["id"] for c in v] for k, v in back.attrs["copies"].items()} == \
           {k: [c["id"] for c in v] for k, v in hits.attrs["copies"].items()}


# --------------------------------------------------------------------------- dashboard: cards, marks, exports
def _upload(d: Dashboard, name: str, data: bytes, search: bool = True) -> None:
    d.controls.upload.value = ({"name": name, "type": "image/jpeg", "size": len(data), "content": memoryview(data),
                                "last_modified": NOW},)
    if search:
        d.controls.search.click()
    d.wait()


def _download(link_html: str) -> bytes:
    return base64.b64decode(re.search(r"base64,([A-Za-z0-9+/=]+)", link_html).group(1))


@pytest.fixture
def copies_dash(copies, tmp_path):
    d = Dashboard.from_settings(atlas=copies[0], settings=Settings(home=tmp_path / "home"), device="cpu", link="")
    d.widget
    yield d
    d.wait()


def test_a_folded_card_says_how_many_copies_and_opens_to_show_them(copies_dash, copies):
    data = (copies[0].parent / "copies-collection" / COPIED[1]).read_bytes()
    _upload(copies_dash, COPIED[1], data)
    gallery = copies_dash.tabs["gallery"]
    cards = gallery.cards.cards
    assert [c["copies"] for c in cards] == [2] + [1] * (len(cards) - 1)    # the page shows "2 copies" on the first
    assert copies_dash.detail.copies.value.count("<li>") == 1     # the first result is selected: its copy listed
    copies_dash.select(int(copies_dash.session.hits["id"].iloc[1]))
    assert copies_dash.detail.copies.value == ""
    gallery.act({"event": "copies", "id": cards[0]["id"]})      # open the folded card
    copies_dash.wait()
    best = copies_dash.session.hits.iloc[0]
    assert copies_dash.session.selected == int(best["id"])
    listing = copies_dash.detail.copies.value
    other = copies_dash.session.copies(int(best["id"])).iloc[0]
    assert "2 copies of this image" in listing and other["source_id"] in listing
    assert {other["source_dataset"], best["source_dataset"]} == {"gbif", "eol"}


def test_marks_survive_a_re_search_and_export_alone_with_provenance(copies_dash, copies):
    started = datetime.now(UTC).replace(microsecond=0)
    d = copies_dash
    data = (copies[0].parent / "copies-collection" / "Vulpes_vulpes_1.jpg").read_bytes()
    _upload(d, "fox.jpg", data)
    ids = d.session.hits["id"].tolist()
    gallery = d.tabs["gallery"]
    gallery.act({"event": "mark", "id": ids[1], "marked": True})     # the ☆ on the second and fourth cards
    gallery.act({"event": "mark", "id": ids[3], "marked": True})
    assert d.session.marks == {ids[1], ids[3]} and gallery.card(ids[1])["marked"] is True
    d.select(ids[3])
    assert d.detail.mark.value is True
    d.detail.mark.value = False                      # unmarked in the detail panel: the card follows
    assert d.session.marks == {ids[1]} and gallery.card(ids[3])["marked"] is False
    gallery.act({"event": "mark", "id": ids[3], "marked": True})
    d.controls.top_n.value = 15                      # a re-search: the marked hits are still shown
    d.wait()
    assert d.session.marks == {ids[1], ids[3]} and gallery.card(ids[1])["marked"] is True
    d.tabs["export"].marked_only.value = True
    d.tabs["export"].buttons["csv"].click()
    csv = pd.read_csv(io.BytesIO(_download(d.tabs["export"].links.value)), dtype={"source_id": str})
    assert sorted(csv["id"]) == sorted([ids[1], ids[3]])
    atlas = d.session.atlas
    row = csv.iloc[0]
    assert list(csv.columns[-len(PROVENANCE) - 1:-1]) == PROVENANCE      # then the attribution
    assert row["model"] == atlas.model and row["atlas_fingerprint"] == atlas.content_fingerprint
    assert row["atlas_records"] == atlas.count and row["nprobe"] == d.session.request.nprobe
    assert row["scope"] == "all" and row["query_kind"] == "image" and row["query_input"] == "fox.jpg"
    assert row["query_sha256"] == sha256(data) and bool(row["duplicates_folded"]) is True
    assert row["software"].startswith("bioclip-nb ") and started <= datetime.fromisoformat(row["searched_at"]) <= datetime.now(UTC)
    d.tabs["export"].buttons["json"].click()
    body = json.loads(_download(d.tabs["export"].links.value))["searches"][0]
    assert sorted(h["id"] for h in body["hits"]) == sorted([ids[1], ids[3]])
    assert body["provenance"]["query_sha256"] == sha256(data) and body["provenance"]["atlas_records"] == atlas.count
    d.tabs["export"].buttons["zip"].click()
    d.wait()
    with zipfile.ZipFile(io.BytesIO(_download(d.tabs["export"].links.value))) as zf:
        assert len(pd.read_csv(io.BytesIO(zf.read("hits.csv")))) == 2
        assert json.loads(zf.read("provenance.json"))["atlas_fingerprint"] == atlas.content_fingerprint
    other = (copies[0].parent / "copies-collection" / "Parus_major_3.jpg").read_bytes()
    _upload(d, "tit.jpg", other, search=False)       # a new query clears the marks, and says so
    assert d.session.marks == set() and "2 marks of the last results cleared" in d.status.value
    d.tabs["export"].marked_only.value = True
    d.controls.search.click()
    d.wait()
    d.tabs["export"].buttons["csv"].click()
    assert "No hit is marked" in d.status.value


def test_the_content_fingerprint_is_the_same_for_a_copy_elsewhere(copies, tmp_path):
    import shutil
    moved = tmp_path / "moved"
    shutil.copytree(copies[0], moved)
    with Atlas.open(copies[0]) as a, Atlas.open(moved) as b:
        assert a.fingerprint != b.fingerprint and a.content_fingerprint == b.content_fingerprint


# --------------------------------------------------------------------------- batch
def test_a_batch_of_five_uploads_gives_five_rows_each_opening_its_gallery(copies_dash, copies):
    d = copies_dash
    folder = copies[0].parent / "copies-collection"
    names = ["Parus_major_4.jpg", "Vulpes_vulpes_5.jpg", "Carabus_violaceus_2.jpg", "Amanita_muscaria_4.jpg",
             "Perca_fluviatilis_5.jpg"]
    files = tuple({"name": n, "type": "image/jpeg", "size": (folder / n).stat().st_size,
                   "content": memoryview((folder / n).read_bytes()), "last_modified": NOW} for n in names)
    d.controls.upload.value = files
    d.wait()
    assert d.current_tab == "batch" and len(d.session.batch) == 5
    assert d.tabs["batch"].table.value.count("<tr>") == 6 and len(d.tabs["batch"].opens.children) == 5
    for n in names:
        assert n in d.tabs["batch"].table.value
    d.tabs["batch"].opens.children[1].click()
    d.wait()
    assert d.current_tab == "gallery" and d.session.query.label == names[1]
    assert d.session.hits is not None and len(d.tabs["gallery"].ids) == d.session.request.top_n
    assert d.session.hits["genus"].iloc[0] == "Vulpes"
    d.tabs["batch"].buttons["summary"].click()
    table = pd.read_csv(io.BytesIO(_download(d.tabs["batch"].links.value)))
    assert table["file"].tolist() == names and (table["hits"] == 10).all()
    assert table["top_hit"].str.split().str[0].tolist() == ["Parus", "Vulpes", "Carabus", "Amanita", "Perca"]
    assert table["atlas_fingerprint"].nunique() == 1 and table["query_input"].tolist() == names
    d.tabs["batch"].buttons["dwc"].click()                              # the same batch as a Darwin Core identification sheet
    sheet = pd.read_csv(io.BytesIO(_download(d.tabs["batch"].links.value)))
    assert sheet["associatedMedia"].tolist() == names and (sheet["basisOfRecord"] == "HumanObservation").all()


def test_a_bad_photo_in_a_batch_gets_its_row_and_the_rest_go_on(copies_dash, copies):
    d = copies_dash
    good = (copies[0].parent / "copies-collection" / "Parus_major_4.jpg").read_bytes()
    files = tuple({"name": n, "type": "image/jpeg", "size": len(b), "content": memoryview(b), "last_modified": NOW}
                  for n, b in (("ok.jpg", good), ("broken.jpg", b"\xff\xd8 not a jpeg")))
    d.controls.upload.value = files
    d.wait()
    assert "1 could not be used" in d.status.value and "broken.jpg" in d.tabs["batch"].table.value
    assert d.tabs["batch"].opens.children[1].disabled and not d.tabs["batch"].opens.children[0].disabled


def test_cli_summary_shares_the_batch_code(copies, capsys):
    folder = copies[0].parent / "copies-collection"
    photos = [str(folder / "Parus_major_4.jpg"), str(folder / "Vulpes_vulpes_5.jpg")]
    code = main(["search", *photos, "--atlas", str(copies[0]), "--format", "summary", "--local"])
    out, err = capsys.readouterr()
    assert code == 0, err
    table = pd.read_csv(io.StringIO(out))
    assert table["file"].tolist() == ["Parus_major_4.jpg", "Vulpes_vulpes_5.jpg"]
    assert table["top_hit"].str.split().str[0].tolist() == ["Parus", "Vulpes"] and "atlas_fingerprint" in table


# --------------------------------------------------------------------------- restricted prediction
@pytest.fixture(scope="module")
def bioclip_atlas(tmp_path_factory, tiny_bioclip):
    root = tmp_path_factory.mktemp("restrict")
    return build_dash_atlas(root, "http://127.0.0.1:9", BIOCLIP2), root


def test_a_prediction_restricted_to_a_genus_names_only_its_species(bioclip_atlas, tiny_bioclip, tmp_path):
    path, root = bioclip_atlas
    d = Dashboard.from_settings(atlas=path, settings=Settings(home=tmp_path / "home"), device="cpu", link="")
    d.widget
    d.controls.fold.value = False
    data = query_file(root, "Parus").read_bytes()
    _upload(d, "bird.jpg", data)
    anywhere = [p.name for p in d.session.predictions("species", 5)]
    assert any(not n.startswith("Vulpes ") for n in anywhere)     # unrestricted, other genera come first
    d.controls.taxon_rank.value = "genus"
    d.controls.taxon_name.value = "Vulpes"
    d.wait()
    names = [p.name for p in d.session.predictions("species", 5)]
    assert names and all(n.startswith("Vulpes ") for n in names)
    assert sorted(names) == ["Vulpes lagopus", "Vulpes vulpes"]
    assert abs(sum(p.score for p in d.session.predictions("species", 5)) - 1) < 1e-5
    assert "Restricted to genus Vulpes" in d.tabs["prediction"].within.value
    assert d.session.predictions("genus", 5)[0].name == "Vulpes"
    d.tabs["prediction"].checklist.value = ({"name": "garden.csv", "type": "text/csv", "size": 40, "last_modified": NOW,
                                     "content": memoryview(b"species\nParus major\nBellis perennis\n")},)
    names = [p.name for p in d.session.predictions("species", 5)]
    assert set(names) <= {"Parus major", "Bellis perennis"}
    assert "garden.csv (2 species)" in d.tabs["prediction"].within.value
    d.controls.search.click()
    d.wait()
    d.tabs["export"].buttons["csv"].click()
    row = pd.read_csv(io.BytesIO(_download(d.tabs["export"].links.value))).iloc[0]
    assert row["prediction_within"] == "garden.csv (2 species)" and row["query_predicted"].split(" (")[0] in names
    d.tabs["prediction"].checklist.value = ({"name": "bad.csv", "type": "text/csv", "size": 20, "last_modified": NOW,
                                     "content": memoryview(b"species\nDodo ineptus\n")},)
    assert "Not restricted" in d.tabs["prediction"].within.value and "Dodo ineptus" in d.tabs["prediction"].within.value
    d.tabs["prediction"].clear.click()                       # the checklist goes; the taxon filter still restricts
    assert "Restricted to genus Vulpes" in d.tabs["prediction"].within.value and d.tabs["prediction"].clear.disabled
    d.wait()


def test_checklists_must_name_a_rank(tmp_path):
    bad = tmp_path / "list.csv"
    bad.write_text("name\nVulpes vulpes\n")
    with pytest.raises(ValueError, match="name it after a rank"):
        Within.from_csv(bad)
    good = tmp_path / "genera.csv"
    good.write_text("Genus\nVulpes\nCanis\n")
    w = Within.parse(str(good))
    assert w.rank.value == "genus" and w.names == ("Vulpes", "Canis") and w.label == "genera.csv (2 genera)"
    assert Within.parse("family=Canidae").label == "family Canidae"


def test_cli_predict_within(bioclip_atlas, tiny_bioclip, capsys, tmp_path):
    path, root = bioclip_atlas
    photo = str(query_file(root, "Parus"))
    code = main(["search", photo, "--atlas", str(path), "--local", "--format", "table", "--predict-within", "genus=Vulpes"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert re.search(r"predicted Vulpes (vulpes|lagopus) \([\d.]+\) within genus Vulpes", out)
    code = main(["search", photo, "--atlas", str(path), "--local", "--format", "summary", "--predict-within", "genus=Vulpes"])
    out, err = capsys.readouterr()
    table = pd.read_csv(io.StringIO(out))
    assert table["prediction"].iloc[0].startswith("Vulpes ") and table["prediction_within"].iloc[0] == "genus Vulpes"
    code = main(["search", photo, "--atlas", str(path), "--local", "--predict-within", "genus=Nothingus"])
    out, err = capsys.readouterr()
    assert code == 1 and "Nothingus" in err and out == ""
    code = main(["search", "--text", "fox", "--atlas", str(path), "--local", "--predict-within", "genus=Vulpes"])
    assert code == 2 and "image queries" in capsys.readouterr().err


# --------------------------------------------------------------------------- links
def test_link_state_round_trip():
    state = LinkState(text="red fox in snow", scope="inat", taxon={"genus": "Vulpes"}, nprobe=32, top_n=20,
                      fold=False, selected=1234)
    query = state.to_query()
    assert LinkState.parse(query) == state and LinkState.parse("?" + query) == state
    assert LinkState.parse("") == LinkState() and not LinkState().has_query
    assert LinkState.parse("like=7&sel=3").like == 7
    with pytest.raises(ValueError, match="taxon"):
        LinkState.parse("taxon=Vulpes")
    with pytest.raises(ValueError, match="nprobe"):
        LinkState.parse("nprobe=many")


def test_a_copied_link_repeats_the_search_in_a_fresh_dashboard(copies, tmp_path):
    settings = Settings(home=tmp_path / "home")
    first = Dashboard.from_settings(atlas=copies[0], settings=settings, device="cpu", link="")
    first.widget
    first.controls.top_n.value = 7
    first.controls.scope.value = "url"
    first.session.use_record(4)            # "more like this" on record 4
    first.after_query()
    first.search()
    first.wait()
    chosen = int(first.session.hits["id"].iloc[2])
    first.select(chosen)
    link = first.share.query
    assert "like=4" in link and "top=7" in link and "scope=url" in link and f"sel={chosen}" in link
    assert first.share.note == ""          # a record travels in a link
    again = Dashboard.from_settings(atlas=copies[0], settings=settings, device="cpu", link=link)
    again.widget
    again.wait()
    assert again.session.hits["id"].tolist() == first.session.hits["id"].tolist()
    assert again.session.selected == chosen and again.controls.top_n.value == 7
    assert again.share.query == link
    first.wait()


def test_after_an_upload_the_link_says_the_photo_cannot_travel(copies_dash, copies):
    d = copies_dash
    _upload(d, "mine.jpg", (copies[0].parent / "copies-collection" / "Parus_major_2.jpg").read_bytes())
    assert d.share.note == UPLOAD_NOTE and "q=" not in d.share.query and "url=" not in d.share.query
    d.share.copies += 1                   # the page's "Copy link" button was pressed
    assert "cannot travel in a link" in d.status.value


def test_a_broken_link_is_a_message_not_a_traceback(copies, tmp_path):
    d = Dashboard.from_settings(atlas=copies[0], settings=Settings(home=tmp_path / "home"), device="cpu",
                                link="nprobe=lots&like=3")
    d.widget
    assert "nprobe should be a whole number" in d.status.value and d.session.hits is None
