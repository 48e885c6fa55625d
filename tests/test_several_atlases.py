"""A BioCLIP 2 atlas and a BioCLIP 2.5 atlas in one server and one dashboard: the server lists
them and loads the second model on first use; the model selector switches; a query is encoded by
the model of the atlas it is searched in and never reaches the other's index."""

from __future__ import annotations

import os

import numpy as np
import pytest
import requests
from helpers.dashatlas import build_dash_atlas, query_file
from helpers.servers import cli, server_process
from helpers.voila import CHROMIUM, search_page, settled, voila_server

from bioclip_nb.commands.prepare import prepare_labels
from bioclip_nb.config import Settings
from bioclip_nb.core.locate import atlas_keys
from bioclip_nb.dashboard import Dashboard
from bioclip_nb.dashboard.share import LinkState
from bioclip_nb.layout import BIOCLIP2, BIOCLIP25
from bioclip_nb.service.client import Client, connect


@pytest.fixture(scope="module")
def pair(tmp_path_factory, host, tiny_bioclip, tiny_bioclip25):
    """``(BioCLIP 2 atlas, BioCLIP 2.5 atlas, derived dir with the 2.5 labels)``."""
    root = tmp_path_factory.mktemp("several")
    old, new = build_dash_atlas(root, host.base, BIOCLIP2), build_dash_atlas(root, host.base, BIOCLIP25)
    prepare_labels(BIOCLIP25, root / "derived")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BIOCLIP_NB_DERIVED_DIR", str(root / "derived"))
        yield old, new, root


def test_keys_are_distinct_and_url_safe(tmp_path):
    from bioclip_nb.dashboard.sources import Source, labels
    twins = [Source(k, type("A", (), {"model": BIOCLIP2, "count": 5})(), None, None) for k in ("a", "b")]
    assert labels(twins) == ["BioCLIP 2 (5 images) · a", "BioCLIP 2 (5 images) · b"]
    assert atlas_keys([tmp_path / "My Atlas", tmp_path / "x" / "my-atlas", tmp_path / "BioCLIP 2.5"]) == [
        "my-atlas", "my-atlas-2", "bioclip-2-5"]
    s = Settings.from_env({"BIOCLIP_NB_HOME": str(tmp_path), "BIOCLIP_NB_ATLAS": "/a/one:/b/two"})
    assert (str(s.atlas), [str(p) for p in s.more_atlases]) == ("/a/one", ["/b/two"])


def test_one_server_two_models(pair, tmp_path):
    old, new, root = pair
    with server_process(old, tmp_path / "home", "--atlas", str(new),
                        env={"BIOCLIP_NB_DERIVED_DIR": str(root / "derived")}) as (_proc, record):
        listed = Client(record.url, record.token).atlases()
        assert [(a["model"], a["model_name"], a["dim"]) for a in listed] == [
            (BIOCLIP2, "BioCLIP 2", 768), (BIOCLIP25, "BioCLIP 2.5 Huge", 1024)]
        assert [a["encoder"] for a in listed] == ["ready", "idle"]          # the second loads on first use
        first, second = connect(record.url, record.token), connect(record.url, record.token, atlas=listed[1]["key"])
        photo = query_file(root, "Vulpes").read_bytes()
        qid_old, enc_old = first.client.encode(photo)
        qid_new, enc_new = second.client.encode(photo)
        assert qid_old == qid_new                                            # one photo, one id ...
        assert (enc_old.embedding.shape, enc_new.embedding.shape) == ((768,), (1024,))   # ... each model's own encoding
        assert enc_new.model_id == BIOCLIP25 and enc_new.predictions
        assert second.client.atlases()[1]["encoder"] == "ready"
        # each atlas searches with its own model's encoding of that id, and only its own records
        assert second.client.search(query_id=qid_new, top_n=3)["id"].max() < second.atlas.count
        with pytest.raises(ValueError, match="768|1024|model"):
            second.atlas.search(enc_old.embedding, model=BIOCLIP2)         # the other model's vector: refused
        # a record image is the record of the atlas named in the path
        a, b = first.fetcher.fetch(None, key=0), second.fetcher.fetch(None, key=0)
        assert a.status == b.status
        # the body cap holds below an atlas's key as it does at the top
        def predict(size: int) -> int:
            body = b'{"embedding": [' + b"0," * (size // 2) + b'0]}'
            return requests.post(f"{record.url}/v1/atlases/{listed[1]['key']}/predict", data=body,
                                 headers={"Authorization": f"Bearer {record.token}", "Content-Type": "application/json"}).status_code
        assert (predict(128 * 1024), predict(400 * 1024)) == (422, 413)    # /predict's own cap (256 KB), not the default
        with pytest.raises(LookupError, match="no atlas 'no-such-atlas'.*holds: atlas-"):
            connect(record.url, record.token, atlas="no-such-atlas")
        # `search --atlas` naming the server's second atlas searches through it, under its key
        found = cli("search", str(query_file(root, "Vulpes")), "--atlas", str(new), "--top-n", "3", home=tmp_path / "home")
        assert found.returncode == 0 and "in-process" not in found.stderr, found.stderr
        assert BIOCLIP25 in found.stdout and BIOCLIP2 + '"' not in found.stdout      # its provenance names 2.5 only
        status = cli("status", home=tmp_path / "home")
        assert f"at /v1/atlases/{listed[1]['key']}" in status.stdout and "BioCLIP 2.5 Huge" in status.stdout
        first.close(), second.close()


def test_a_dashboard_reuses_a_server_only_when_it_holds_the_same_atlases(pair, tmp_path):
    from bioclip_nb.service.commands import server_for_dashboard
    old, new, root = pair
    home = tmp_path / "home"
    with server_process(old, home) as (_proc, record):
        assert server_for_dashboard("auto", [old], Settings(home=home)) == record.url
        with pytest.raises(OSError, match="serves .*bioclip-2, not .*bioclip-2, .*bioclip-2.5"):
            server_for_dashboard("auto", [old, new], Settings(home=home))


def test_the_model_selector_switches_atlas_and_model(pair, tmp_path):
    old, new, root = pair
    d = Dashboard.from_settings(settings=Settings(home=tmp_path, atlas=old, more_atlases=(new,)), device="cpu", link="")
    d.widget
    menu = d.switcher.menu
    assert d.switcher.widget.layout.display is None and [label for label, _ in menu.options] == [
        "BioCLIP 2 (40 images)", "BioCLIP 2.5 Huge (40 images)"]
    d.upload_bytes(query_file(root, "Vulpes").read_bytes(), "fox.jpg")
    d.search()
    d.wait(60)
    before = d.session.hits.copy()
    assert d.session.encoding.embedding.shape == (768,) and "BioCLIP 2<" in d.header.value.replace(" ·", "<")
    menu.value = 1                                   # the person picks BioCLIP 2.5
    d.wait(60)
    s = d.session
    assert (s.atlas.path, s.atlas.model, s.encoding.model_id, s.encoding.embedding.shape) == (new, BIOCLIP25, BIOCLIP25, (1024,))
    assert s.hits is not None and len(s.hits) and "went wrong" not in s.status.message
    assert "BioCLIP 2.5 Huge" in d.header.value and f"atlas={d.switcher.key}" in d.links.link_state().to_query()
    assert not np.array_equal(s.hits["similarity"].to_numpy(), before["similarity"].to_numpy())
    encodes = s.encodes
    menu.value = 0                                   # back: that photo's BioCLIP 2 encoding is remembered
    d.wait(60)
    assert s.encodes == encodes and s.encoding.model_id == BIOCLIP2
    assert s.hits["id"].tolist() == before["id"].tolist()
    # a text query follows too; a record of one atlas cannot
    d.controls.text.value = "red fox"
    d.use_text()
    menu.value = 1
    assert s.query.kind == "text" and s.encoding.model_id == BIOCLIP25
    s.use_record(3)
    assert "record of the other atlas" in s.switch(d.sources[0]) and s.query is None and s.atlas.model == BIOCLIP2
    assert s.switch(d.sources[1]) == ""


def test_a_link_names_its_atlas(pair, tmp_path):
    old, new, root = pair
    settings = Settings(home=tmp_path, atlas=old, more_atlases=(new,))
    key = atlas_keys([old, new])[1]
    d = Dashboard.from_settings(settings=settings, device="cpu", link=LinkState(text="red fox", atlas=key).to_query())
    d.widget
    d.wait(60)
    assert d.session.atlas.model == BIOCLIP25 and d.switcher.menu.value == 1 and len(d.session.hits)
    bad = Dashboard.from_settings(settings=settings, device="cpu", link="q=red+fox&atlas=elsewhere")
    bad.widget
    assert bad.session.hits is None and "does not hold" in bad.session.status.message


@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium (apt-get install chromium)")
def test_the_selector_in_the_page(pair, tmp_path, browser):
    """In Voilà: the menu lists both models; choosing BioCLIP 2.5 searches the photo again in its
    atlas, the banner names it, and axe-core finds nothing serious in the switched page."""
    from test_accessibility import ARTIFACTS, serious
    old, new, root = pair
    with voila_server(f"{old}{os.pathsep}{new}", tmp_path) as (base, _):
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        search_page(page, base, query_file(root, "Vulpes"))
        assert "BioCLIP 2 " in page.locator("header").inner_text() + " "
        menu = page.get_by_label("Model")
        assert [o.replace("\xa0", " ") for o in menu.locator("option").all_inner_texts()] == [
            "BioCLIP 2 (40 images)", "BioCLIP 2.5 Huge (40 images)"]
        menu.select_option(index=1)
        page.wait_for_function("document.querySelector('header').innerText.includes('BioCLIP 2.5 Huge')", timeout=60_000)
        page.wait_for_function("location.href.includes('atlas=')", timeout=60_000)   # the page's link names the atlas
        settled(page, 10)
        assert "wrong" not in page.locator(".bnb-status").inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "model-selector.png"))
        assert serious(page) == []
        page.locator(".bnb-dashboard .lm-TabBar-tab", has_text="Compare models").click()
        page.wait_for_selector("caption:has-text('Top hits by model')", timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "compare-models.png"))
        assert serious(page) == []
        page.close()


def test_the_compare_tab_puts_each_models_answer_side_by_side(pair, tmp_path):
    from bioclip_nb.dashboard.comparing import comparison_html
    from bioclip_nb.encoders import load_encoder
    from bioclip_nb.insight.compare import compare
    old, new, root = pair
    one = Dashboard.from_settings(settings=Settings(home=tmp_path, atlas=old), device="cpu", link="")
    one.widget
    assert "compare" not in one.tabs and "Compare models" not in one.tab_bar.titles     # one model: nothing to compare
    d = Dashboard.from_settings(settings=Settings(home=tmp_path, atlas=old, more_atlases=(new,)), device="cpu", link="")
    d.widget
    photo = query_file(root, "Vulpes").read_bytes()
    d.upload_bytes(photo, "fox.jpg")
    d.search()
    d.wait(60)
    d.show_tab("compare")
    tab = d.tabs["compare"]
    c = tab.comparison
    assert [side.model for side in c.sides] == [BIOCLIP2, BIOCLIP25]
    # each side is its model's own search of its own atlas, as done here independently
    import io

    from PIL import Image
    for side, atlas in zip(c.sides, (d.sources[0].atlas, d.sources[1].atlas)):
        enc = load_encoder(atlas.model, device="cpu").encode(Image.open(io.BytesIO(photo)))
        want = d.session.request.run(atlas, enc.embedding, atlas.model)
        assert side.hits["id"].tolist() == want["id"].tolist()
        assert [p.name for p in side.predictions] == [p.name for p in enc.predict("species", 3)]
    assert "BioCLIP 2.5 Huge" in tab.widget.value and "BioCLIP 2 predicts" in tab.widget.value
    assert "wrong" not in d.session.status.message and d.session.atlas.model == BIOCLIP2      # nothing switched
    table = c.table()
    assert list(table.columns) == ["rank", "BioCLIP 2", "BioCLIP 2 similarity", "BioCLIP 2.5 Huge", "BioCLIP 2.5 Huge similarity"]
    shared = set(c.shared_species())
    assert shared == set(c.sides[0].species()) & set(c.sides[1].species())
    assert comparison_html(c).count("★") == 1 + sum(sp in shared for side in c.sides for sp in
                                                    [f"{g} {s}" for g, s in zip(side.hits["genus"], side.hits["species"])])
    # a text compares too (no prediction from a text); the HTML escapes the data's names
    t = compare("red fox", [(src.atlas, src.encoder()) for src in d.sources])
    assert all(side.note == "a text query" and len(side.hits) for side in t.sides)
    assert "<script>" not in comparison_html(t)
