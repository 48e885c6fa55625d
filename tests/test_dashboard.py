"""The dashboard in-process: build it, set values, click, assert on widget state."""

from __future__ import annotations

import base64
import io
import re
import zipfile
from datetime import UTC, datetime

import pandas as pd
import pytest
from helpers.dashatlas import HOSTILE, HOSTILE_PUBLISHER, build_dash_atlas, query_file
from helpers.pictures import encode, photo

from bioclip_nb.dashboard import Dashboard
from bioclip_nb.dashboard.wording import WHY
from bioclip_nb.layout import BIOCLIP2

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def dash_root(tmp_path_factory, host, tiny_bioclip):
    root = tmp_path_factory.mktemp("dash")
    build_dash_atlas(root, host.base, BIOCLIP2)
    return root


@pytest.fixture
def dash(dash_root, tiny_bioclip, tmp_path):
    from bioclip_nb.config import Settings
    atlas = next(dash_root.glob("atlas-hf-hub*"))
    d = Dashboard.from_settings(atlas=atlas, settings=Settings(home=tmp_path / "home"), device="cpu")
    assert isinstance(d, Dashboard)
    d.widget  # build the views
    # The tiny random BioCLIP puts every drawing within 0.99 of the others: folding would fold
    # them all. Folding has its own tests, on an atlas with real copies.
    d.controls.fold.value = False
    yield d
    d.wait()


def _upload_and_search(d, path):
    d.controls.upload.value = ({"name": path.name, "type": "image/jpeg", "size": path.stat().st_size,
                                "content": memoryview(path.read_bytes()), "last_modified": NOW},)
    d.controls.search.click()
    d.wait()


def test_upload_predicts_at_once_and_search_fills_gallery(dash, dash_root):
    q = query_file(dash_root, "Vulpes")
    dash.controls.upload.value = ({"name": q.name, "type": "image/jpeg", "size": q.stat().st_size,
                                   "content": memoryview(q.read_bytes()), "last_modified": NOW},)
    assert dash.session.encoding is not None and dash.session.hits is None
    assert dash.tabs["prediction"].image.layout.display is None and dash.tabs["prediction"].image.png.startswith(b"\x89PNG")   # bars drawn
    assert 'alt="Bar chart of the model' in dash.tabs["prediction"].image.value
    assert "encoded" in dash.status.value
    dash.controls.search.click()
    dash.wait()
    hits = dash.session.hits
    gallery = dash.tabs["gallery"]
    assert len(hits) == 10 and gallery.ids == hits["id"].tolist()
    assert gallery.progress.value == 10
    assert sum(gallery.picture(i).ok for i in gallery.ids) >= 8      # local and hosted images arrived
    assert not dash.controls.search.disabled
    assert re.search(r"encode [\d.e-]+ s \(torch\) · search [\d.e-]+ s · metadata [\d.e-]+ s · images [\d.e-]+ s", dash.session.status.message)


def test_missing_images_say_why(dash, dash_root, host):
    dash.controls.top_n.value = 40
    _upload_and_search(dash, query_file(dash_root, "Parus"))
    gallery = dash.tabs["gallery"]
    missing = [WHY[p.status] for p in map(gallery.picture, gallery.ids) if not p.ok]
    assert "Image no longer online" in missing
    blocked = int(dash.session.hits["url"].str.startswith("javascript:", na=False).sum())   # the hostile rows
    assert blocked >= 1
    assert f"{blocked + 1} of 40 images unavailable ({blocked} blocked, 1 not found)" in dash.session.status.message


def test_changing_settings_re_searches_without_re_encoding(dash, dash_root):
    _upload_and_search(dash, query_file(dash_root, "Amanita"))
    encodes, searches = dash.session.encodes, dash.session.searches
    dash.controls.top_n.value = 3
    dash.controls.scope.value = "url"
    dash.wait()
    assert dash.session.encodes == encodes and dash.session.searches == searches + 2
    assert dash.controls.nprobe.disabled      # a flat (exact) index has no search depth
    assert len(dash.session.hits) <= 3 and dash.session.hits["has_url"].all()
    # the same photo uploaded again (under another name) is not re-encoded either
    dash.upload_bytes(query_file(dash_root, "Amanita").read_bytes(), "the-same-again.jpg")
    dash.controls.search.click()
    dash.wait()
    assert dash.session.query.label == "the-same-again.jpg"
    assert dash.session.encodes == encodes
    assert re.search(r"encode [\d.e-]+ s \(cache\) · search", dash.session.status.message)


def test_taxon_filter_with_completion(dash, dash_root):
    dash.controls.taxon_rank.value = "genus"
    assert "Parus" in dash.controls.taxon_name.options and not dash.controls.taxon_name.disabled
    dash.controls.taxon_name.value = "Parus"
    _upload_and_search(dash, query_file(dash_root, "Vulpes"))
    assert set(dash.session.hits["genus"]) == {"Parus"}
    dash.controls.taxon_rank.value = "(no filter)"
    dash.wait()
    assert dash.controls.taxon_name.disabled and dash.session.request.taxon == {}


def test_tree_consensus_and_detail(dash, dash_root):
    _upload_and_search(dash, query_file(dash_root, "Perca"))
    assert "results</b>" in dash.tabs["taxonomy"].widget.value and "<ul>" in dash.tabs["taxonomy"].widget.value
    assert "Perca" in dash.session.hits["genus"].tolist()     # perches found, and perches have no class:
    assert "Perca" in dash.tabs["taxonomy"].widget.value and "not given" in dash.tabs["taxonomy"].widget.value
    assert "<th>neighbours' majority</th>" in dash.tabs["consensus"].widget.value
    dash.tabs["gallery"].act({"event": "select", "id": dash.tabs["gallery"].ids[0]})   # Details
    row = dash.session.hit(dash.session.selected)
    assert "<th>genus</th>" in dash.detail.taxonomy.value and str(row["genus"]) in dash.detail.taxonomy.value
    assert "similarity (cosine)" in dash.detail.source.value and "distance (squared L2)" in dash.detail.source.value
    if isinstance(row["occurrence_url"], str):
        assert "gbif.org/occurrence/" in dash.detail.source.value
    assert not dash.detail.more.disabled


def test_more_like_this(dash, dash_root):
    _upload_and_search(dash, query_file(dash_root, "Vulpes"))
    third = int(dash.session.hits["id"].iloc[2])
    dash.select(third)
    dash.detail.more.click()
    dash.wait()
    assert dash.session.query.kind in ("result", "image") and "more like #3" in dash.session.query.label
    assert int(dash.session.hits["id"].iloc[0]) == third   # a result finds itself first


def _download(link_html: str) -> bytes:
    return base64.b64decode(re.search(r"base64,([A-Za-z0-9+/=]+)", link_html).group(1))


def test_exports(dash, dash_root):
    from PIL import Image

    from bioclip_nb.outputs.results import image_filename
    _upload_and_search(dash, query_file(dash_root, "Carabus"))
    hits = dash.session.hits
    dash.tabs["export"].buttons["csv"].click()
    link = dash.tabs["export"].links.value
    assert 'download="bioclip-nb-results.csv"' in link
    df = pd.read_csv(io.StringIO(_download(link).decode()), dtype={"source_id": str})
    assert df["id"].tolist() == hits["id"].tolist() and {"url", "occurrence_url", "uuid", "basisOfRecord"} <= set(df.columns)
    first = hits.iloc[0]
    link0 = first["occurrence_url"] if isinstance(first["occurrence_url"], str) else first["url"]
    expected = (f"{first['genus']} {first['species']}: image published by {first['publisher']} via "
                f"{first['source_dataset'].upper()} ({link0})")
    assert df["attribution"].iloc[0] == expected
    dash.tabs["export"].buttons["zip"].click()
    dash.wait()
    assert dash.tabs["export"].progress.layout.display == "none" and "ZIP ready" in dash.status.value
    with zipfile.ZipFile(io.BytesIO(_download(dash.tabs["export"].links.value))) as zf:
        names = set(zf.namelist())
        inside = pd.read_csv(io.BytesIO(zf.read("hits.csv")), dtype={"source_id": str})
        missing = zf.read("missing-images.txt").decode().splitlines() if "missing-images.txt" in names else []
        for name in (n for n in names if n.startswith("images/")):
            Image.open(io.BytesIO(zf.read(name))).verify()       # every image opens
    pd.testing.assert_frame_equal(inside, df)
    fetched = {i for i, r in dash.session.images.items() if r.ok}
    for row in hits.to_dict("records"):
        name = image_filename(row)
        if int(row["id"]) in fetched:
            assert f"images/{name}" in names
        else:
            assert any(line.startswith(f"{name}: ") for line in missing), name
    assert len(missing) == len(hits) - len(fetched)


def test_hostile_names_are_escaped(dash, dash_root):
    dash.controls.top_n.value = 40
    _upload_and_search(dash, query_file(dash_root, "Carabus"))
    gallery = dash.tabs["gallery"]
    # the cards carry names as data; the page sets them as text (tests/test_browser.py runs it)
    assert any(c["common"] == HOSTILE and HOSTILE in c["alt"] for c in gallery.cards.cards)
    hostile = dash.session.hits[(dash.session.hits["common_name"] == HOSTILE)
                                & (dash.session.hits["publisher"] == HOSTILE_PUBLISHER)]
    assert len(hostile), "the fixture's hostile rows are among the hits"
    dash.select(int(hostile["id"].iloc[0]))
    dash.wait()
    shown = dash.detail.taxonomy.value + dash.detail.source.value
    assert "<script>" not in shown and "<img" not in shown and "&lt;img" in shown      # names as text
    assert "javascript:" not in shown and 'onmouseover="' not in shown                  # no link from bad data
    assert "<script>" not in dash.tabs["consensus"].widget.value and "<script>" not in dash.tabs["taxonomy"].widget.value
    picture = gallery.picture(int(hostile["id"].iloc[0]))
    assert not picture.ok and WHY[picture.status] == "Address not allowed"               # never fetched


@pytest.mark.parametrize("data, words", [
    (b"", "is empty"),
    (b"just some notes, not a photo", "is a text file"),
    (encode(photo(), "JPEG")[:500], "truncated or corrupt"),
    (b"%PDF-1.4 fake", "PDF document"),
])
def test_bad_uploads_give_messages_and_keep_the_app_usable(dash, dash_root, data, words):
    _upload_and_search(dash, query_file(dash_root, "Vulpes"))
    before = dash.session.hits.copy()
    dash.upload_bytes(data, "bad.jpg")
    assert words in dash.status.value and "error" in dash.status.value and "Traceback" not in dash.status.value
    pd.testing.assert_frame_equal(dash.session.hits, before)     # nothing lost
    assert not dash.controls.search.disabled
    dash.controls.search.click()                                  # still works
    dash.wait()
    assert len(dash.session.hits) == 10


def test_text_query(dash):
    dash.controls.text.value = "Vulpes vulpes"
    dash.controls.text_button.click()
    dash.wait()
    assert dash.session.query.kind == "text" and len(dash.session.hits) == 10


def test_url_query_through_fetcher_rules(dash, dash_root, host, tmp_path):
    from bioclip_nb.config import Settings
    dash.controls.url.value = host.url("/img/77.jpg")
    dash.controls.url_button.click()             # a typed URL may not reach this machine ...
    assert "127.0.0.1, this machine itself (loopback)" in dash.status.value and dash.session.encoding is None
    allowed = Settings(home=tmp_path / "home", allow_hosts=("127.0.0.0/8",))   # ... unless an admin allows it
    dash = Dashboard.from_settings(atlas=next(dash_root.glob("atlas-hf-hub*")), settings=allowed, device="cpu")
    dash.widget
    dash.controls.url.value = host.url("/img/77.jpg")
    dash.controls.url_button.click()
    assert dash.session.query.kind == "url" and dash.session.encoding is not None
    dash.controls.url.value = host.url("/404/nothing.jpg")
    dash.controls.url_button.click()
    assert "Could not use that URL" in dash.status.value
    dash.controls.url.value = "file:///etc/passwd"
    dash.controls.url_button.click()
    assert "only http and https" in dash.status.value


def test_search_before_query_explains(dash):
    dash.controls.search.click()
    assert "Nothing to search with yet" in dash.status.value


def test_unexpected_errors_become_words(dash, dash_root, monkeypatch):
    _upload_and_search(dash, query_file(dash_root, "Vulpes"))
    monkeypatch.setattr(dash.session.atlas, "search", lambda *a, **k: 1 / 0)
    dash.controls.search.click()
    assert "Something went wrong (ZeroDivisionError" in dash.status.value
    assert "still usable" in dash.status.value and not dash.controls.search.disabled


def test_missing_atlas_is_a_message(tmp_path):
    out = Dashboard.from_settings(atlas=tmp_path / "nowhere")
    assert "Cannot open the atlas" in out.value and "atlas directory not found" in out.value


def test_missing_weights_is_a_message(dash_root, empty_hf_cache, tmp_path):
    import bioclip_nb.encoders as model
    from bioclip_nb.config import Settings
    model._ENCODERS.clear()
    try:
        atlas = next(dash_root.glob("atlas-hf-hub*"))
        d = Dashboard.from_settings(atlas=atlas, settings=Settings(home=tmp_path / "h"), device="cpu")
        d.widget
        d.upload_bytes(query_file(dash_root).read_bytes(), "fox.jpg")
        assert "not available here" in d.status.value and "HF_HOME" in d.status.value
    finally:
        model._ENCODERS.clear()


def test_notebook_copies_are_identical():
    from pathlib import Path
    root = Path(__file__).parent.parent
    assert (root / "notebooks" / "dashboard.ipynb").read_bytes() == (root / "bioclip_nb" / "notebooks" / "dashboard.ipynb").read_bytes()


@pytest.mark.slow      # builds the 10,070-drawing demo atlas (about 2 minutes)
def test_plots_tab_on_demo(demo_atlas, tmp_path):
    from bioclip_nb.config import Settings
    d = Dashboard.from_settings(atlas=demo_atlas, settings=Settings(home=tmp_path / "home"))
    d.widget
    q = sorted((demo_atlas / "queries").glob("*.jpg"))[0]
    d.upload_bytes(q.read_bytes(), q.name)
    d.controls.nprobe.value = 2
    d.search()
    d.wait()
    assert d.tabs["plots"].stale                      # not drawn until the tab is opened
    d.show_tab("plots")
    assert d.tabs["plots"].cells.png.startswith(b"\x89PNG") and d.tabs["plots"].recall.png.startswith(b"\x89PNG")
    assert "first 2 were scanned" in d.tabs["plots"].note.value
    d.tabs["plots"].map_button.click()
    d.wait()                                  # the map is drawn in the background
    assert d.tabs["plots"].map.png.startswith(b"\x89PNG") and d.tabs["plots"].map.layout.display is None
    assert "Atlas map drawn" in d.status.value


def test_plots_tab_on_flat_atlas_explains(dash, dash_root):
    _upload_and_search(dash, query_file(dash_root, "Vulpes"))
    dash.show_tab("plots")
    assert "exact (flat) index" in dash.tabs["plots"].note.value


def test_prediction_rank_change_failure_is_a_message(dash, dash_root, monkeypatch):
    _upload_and_search(dash, query_file(dash_root, "Vulpes"))
    dash.tabs["prediction"].rank.value = "family"
    assert dash.tabs["prediction"].image.layout.display is None
    monkeypatch.setattr(dash.tabs["prediction"], "show", lambda s: 1 / 0)
    dash.tabs["prediction"].rank.value = "genus"
    assert "Something went wrong (ZeroDivisionError" in dash.status.value


def test_a_search_runs_while_a_zip_is_prepared(dash, dash_root, monkeypatch):
    """The page never freezes: a slow ZIP runs in the background, a search meanwhile fills its
    gallery, and the stale ZIP (of the previous results) never reaches the page."""
    import threading

    from bioclip_nb import results
    _upload_and_search(dash, query_file(dash_root, "Carabus"))
    release = threading.Event()
    real = results.to_zip

    def slow_zip(*args, **kwargs):
        release.wait(20)                          # as long as the test needs
        return real(*args, **kwargs)

    monkeypatch.setattr(results, "to_zip", slow_zip)
    dash.tabs["export"].buttons["zip"].click()                       # returns at once
    assert dash.jobs.running("zip") and dash.tabs["export"].progress.layout.display is None
    q = query_file(dash_root, "Vulpes")
    dash.controls.upload.value = ({"name": q.name, "type": "image/jpeg", "size": q.stat().st_size,
                                   "content": memoryview(q.read_bytes()), "last_modified": NOW},)
    dash.controls.search.click()                  # the search is answered while the ZIP job waits
    dash.jobs.wait(name="gallery")
    assert dash.jobs.running("zip")               # still preparing ...
    assert len(dash.tabs["gallery"].ids) == 10 and dash.tabs["gallery"].progress.value == 10   # ... and the gallery is full
    release.set()
    dash.wait()
    assert "bioclip-nb-results.zip" not in dash.tabs["export"].links.value   # a cancelled job's result never shows


def test_selecting_a_result_does_not_wait_for_the_full_image(dash, dash_root, host):
    _upload_and_search(dash, query_file(dash_root, "Vulpes"))
    hosted = dash.session.hits[dash.session.hits["url"].str.startswith("http", na=False)]
    if not len(hosted):
        pytest.skip("no hosted image among these hits")
    hit = int(hosted["id"].iloc[0])
    dash.select(hit)                               # returns before the full image is fetched
    assert dash.session.selected == hit and "<th>genus</th>" in dash.detail.taxonomy.value
    dash.wait()
    assert dash.detail.result_image.layout.display is None and len(dash.detail.result_image.value) > 1000
    assert 'alt="#' in dash.detail.result_image.value


def test_live_widgets_stay_flat_over_many_searches(dash, dash_root):
    from ipywidgets.widgets.widget import _instances
    _upload_and_search(dash, query_file(dash_root, "Parus"))
    after_first = len(_instances)
    for i in range(30):
        dash.controls.top_n.value = 5 + (i % 3) * 5          # 5, 10, 15 cards: each a fresh page
        dash.wait()
    dash.controls.top_n.value = 10
    dash.wait()
    assert len(_instances) <= after_first + 5, (after_first, len(_instances))


def test_a_bare_library_error_is_shown_and_logged(dash, dash_root, monkeypatch, caplog):
    _upload_and_search(dash, query_file(dash_root, "Vulpes"))

    def broken(*a, **k):
        raise ValueError("index 12 is out of bounds for axis 0")      # a bug, not a user mistake

    monkeypatch.setattr(dash.session, "search", broken)
    with caplog.at_level("WARNING", logger="bioclip_nb.dashboard"):
        dash.controls.search.click()
    assert "out of bounds" in dash.status.value
    assert any("Traceback" in r.getMessage() and "out of bounds" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="bioclip_nb.dashboard"):
        dash.upload_bytes(b"not a photo at all", "notes.jpg")     # a user's mistake: a message, no log
    assert "text file" in dash.status.value and not caplog.records


def test_a_photo_only_model_says_so_before_anyone_types(dash_root, host, tmp_path):
    """The stand-in embeds photos only and predicts nothing (``layout.MODELS``): its text box is
    disabled and says why, and the Prediction tab names the model as the reason."""
    from bioclip_nb.config import Settings
    from bioclip_nb.layout import PIXEL_MODEL
    atlas = build_dash_atlas(dash_root, host.base, PIXEL_MODEL)
    d = Dashboard.from_settings(atlas=atlas, settings=Settings(home=tmp_path / "home"), device="cpu")
    d.widget
    assert d.controls.text.disabled and d.controls.text_button.disabled
    assert "cannot search by text" in d.controls.text.placeholder
    d.upload_bytes(query_file(dash_root, "Vulpes").read_bytes(), "fox.jpg")
    assert "does not predict taxa" in d.tabs["prediction"].note.value
    d.wait()
