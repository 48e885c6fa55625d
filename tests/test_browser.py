"""The served page works: Voilà in a real Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from helpers.voila import CHROMIUM, kernel_memory_mb, search_page, upload, voila_server

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                                     reason="needs Debian's chromium (apt-get install chromium)")]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def demo_server(demo_atlas, tmp_path_factory):
    home = tmp_path_factory.mktemp("voila-home")
    with voila_server(demo_atlas, home) as (base, proc):
        yield base, proc


def _finish(page, errors: list[str], screenshot: str) -> None:
    """Keep a screenshot to look at, check no traceback or page error reached the user, close."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
    assert "Traceback" not in page.content()
    assert not errors, errors
    page.close()


def test_demo_query_finds_its_species_in_the_browser(browser, demo_server, demo_atlas):
    base, _ = demo_server
    queries = pd.read_csv(demo_atlas / "queries" / "index.csv")
    q = queries.iloc[1]
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    search_page(page, base, demo_atlas / "queries" / q["file"])
    assert page.locator(".bnb-tile img.bnb-thumb").count() >= 9      # each thumbnail counted once
    # the scope menu carries record counts (counted in the background on an unprepared atlas)
    assert "(10,070)" in page.get_by_label("Scope").inner_text()
    page.locator(".bnb-tile button:has-text('Details')").first.click()
    page.wait_for_selector(".bnb-taxonomy", timeout=30_000)
    table = page.locator(".bnb-taxonomy").inner_text()
    assert "kingdom" in table and q["kingdom"] in table
    assert f"{q['genus']} {q['species']}" in page.locator(".bnb-caption").first.inner_text()
    _finish(page, errors, "dashboard.png")


def test_bad_upload_shows_a_message_not_a_traceback(browser, demo_server, tmp_path):
    base, _ = demo_server
    bad = tmp_path / "notes.jpg"
    bad.write_text("these are field notes, not a photo")
    page = browser.new_page()
    page.goto(base, timeout=120_000)
    page.wait_for_selector("text=Upload photo", timeout=120_000)
    upload(page, bad)
    page.wait_for_selector(".bnb-status.error", timeout=60_000)
    assert "is a text file" in page.locator(".bnb-status").inner_text()
    assert "Traceback" not in page.content()
    page.close()


def test_four_sessions_search_at_once(browser, demo_server, demo_atlas):
    """Four people at once, each with a different photo: each gets their own full gallery."""
    base, proc = demo_server
    queries = pd.read_csv(demo_atlas / "queries" / "index.csv").iloc[10:14]
    pages = []
    for _ in range(4):
        page = browser.new_context().new_page()
        page.goto(base, timeout=180_000)
        pages.append(page)
    for page in pages:
        page.wait_for_selector("text=Upload photo", timeout=180_000)
    for page, q in zip(pages, queries.itertuples()):
        upload(page, demo_atlas / "queries" / q.file)
    for page in pages:
        page.wait_for_selector(".bnb-status:has-text('encoded')", timeout=60_000)
    for page in pages:
        page.click("button:has-text('Search')")
    for page in pages:
        page.wait_for_function("document.querySelectorAll('.bnb-tile').length == 10 && "
                               "document.querySelectorAll('.bnb-tile img.bnb-thumb, .bnb-tile .bnb-missing').length == 10",
                               timeout=120_000)
    firsts = [page.locator(".bnb-caption .sci").first.inner_text() for page in pages]
    for first, q in zip(firsts, queries.itertuples()):
        assert first == f"{q.genus} {q.species}", (first, q.file)      # its own query's species, not another's
    assert len(set(firsts)) == 4
    memory = kernel_memory_mb(proc)
    assert len(memory) >= 4
    ARTIFACTS.mkdir(exist_ok=True)
    report = {"kernels_mb": memory, "per_kernel_mb_max": max(memory), "total_mb": round(sum(memory), 1)}
    (ARTIFACTS / "voila-memory.json").write_text(json.dumps(report, indent=1))
    print(f"\nmemory per Voila kernel (MB): {memory}")
    for page in pages:
        page.context.close()


def test_hostile_data_never_runs(browser, tmp_path_factory):
    """Payloads that would set window.__pwned (or open a dialog) if the page ran them, in a
    common name, a publisher, a record id and an image URL: shown as text, never run."""
    from helpers.dashatlas import HOSTILE_PUBLISHER, build_dash_atlas, query_file

    from bioclip_nb.layout import PIXEL_MODEL
    from bioclip_nb.testing.imagehost import ImageHost
    root = tmp_path_factory.mktemp("hostile")
    with ImageHost() as host:
        atlas = build_dash_atlas(root, host.base, PIXEL_MODEL)
        with voila_server(atlas, root) as (base, _):
            page = browser.new_page(viewport={"width": 1500, "height": 1200})
            dialogs = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            search_page(page, base, query_file(root, "Carabus"), top_n=10)
            text = page.locator(".bnb-dashboard").inner_text()
            assert '<img src=x onerror="window.__pwned=1;alert(1)">' in text      # the name, as text
            for card in range(page.locator(".bnb-tile").count()):
                page.locator(".bnb-tile button:has-text('Details')").nth(card).click()
                page.wait_for_selector(".bnb-source", timeout=30_000)
                if HOSTILE_PUBLISHER in page.locator(".bnb-source").inner_text():
                    break
            else:
                raise AssertionError("no hostile row among the hits")
            page.locator(".bnb-source").hover()
            page.wait_for_timeout(500)
            hrefs = page.eval_on_selector_all(".bnb-dashboard a", "els => els.map(e => e.getAttribute('href'))")
            assert page.evaluate("window.__pwned") is None and not dialogs
            assert not any(h and h.lower().startswith("javascript:") for h in hrefs)
            page.close()


def test_the_dashboard_served_by_a_bioclip_nb_server(browser, demo_atlas, tmp_path_factory):
    """Two pages whose kernels hold no model: the same search, the same gallery, less memory."""
    from helpers.servers import server_process
    home = tmp_path_factory.mktemp("served-voila")
    queries = pd.read_csv(demo_atlas / "queries" / "index.csv")
    with server_process(demo_atlas, home) as (_, record), \
            voila_server(demo_atlas, home, env={"BIOCLIP_NB_SERVER": record.url}) as (base, proc):
        pages = [browser.new_context(viewport={"width": 1500, "height": 1000}).new_page() for _ in range(2)]
        errors: list[str] = []
        for page in pages:
            page.on("pageerror", lambda e: errors.append(str(e)))
        for page, q in zip(pages, queries.iloc[[1, 20]].itertuples()):
            search_page(page, base, demo_atlas / "queries" / q.file)
            assert f"served by {record.url}" in page.content()
            assert page.locator(".bnb-tile img.bnb-thumb").count() >= 9
            assert f"{q.genus} {q.species}" in page.locator(".bnb-caption").first.inner_text()
            assert "Traceback" not in page.content()
        assert not errors, errors
        memory = kernel_memory_mb(proc)
        ARTIFACTS.mkdir(exist_ok=True)
        pages[0].screenshot(path=str(ARTIFACTS / "dashboard-served.png"), full_page=True)
        (ARTIFACTS / "voila-served-memory.json").write_text(json.dumps({"kernels_mb": memory}, indent=1))
        print(f"\nmemory per server-backed Voila kernel (MB): {memory}")
        assert len(memory) >= 2 and max(memory) < 300, memory     # (the readiness probe opened one more)
        for page in pages:
            page.context.close()


def _download_from(page, selector: str) -> bytes:
    import base64
    href = page.locator(selector).last.get_attribute("href")
    return base64.b64decode(href.split("base64,", 1)[1])


def _captions(page) -> list[str]:
    return page.locator(".bnb-caption").all_inner_texts()


def test_marks_links_and_batches_in_the_browser(browser, demo_server, demo_atlas):
    """Mark two results and export only them (with provenance); a copied link opened in a
    fresh page repeats the search; a batch of five photos gives five rows."""
    import io
    base, _ = demo_server
    queries = pd.read_csv(demo_atlas / "queries" / "index.csv")
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    search_page(page, base, demo_atlas / "queries" / queries.iloc[3]["file"])
    # marks, and the marked-only export with its provenance
    page.locator(".bnb-tile button:has-text('Mark')").nth(1).click()
    page.locator(".bnb-tile button:has-text('Mark')").nth(3).click()
    page.wait_for_selector(".bnb-status:has-text('2 results marked')", timeout=30_000)
    page.click(".lm-TabBar-tab:has-text('Export'), .p-TabBar-tab:has-text('Export')")
    page.locator("label:has-text('Marked only') input[type=checkbox]").check()
    page.click("button:has-text('Prepare CSV')")
    page.wait_for_selector("a.bnb-download", timeout=30_000)
    csv = pd.read_csv(io.BytesIO(_download_from(page, "a.bnb-download")))
    assert len(csv) == 2 and csv["query_input"].iloc[0] == queries.iloc[3]["file"]
    assert csv["atlas_records"].iloc[0] == 10_070 and csv["query_sha256"].str.len().iloc[0] == 64
    # after an upload, a copied link cannot carry the photo, and the page says so
    page.click("button:has-text('Copy link to this search')")
    page.wait_for_selector(".bnb-share-note:has-text('cannot travel in a link')", timeout=30_000)
    # "More like this" on a result: a query a link can carry
    page.click(".lm-TabBar-tab:has-text('Gallery'), .p-TabBar-tab:has-text('Gallery')")
    page.locator(".bnb-tile button:has-text('Details')").nth(2).click()
    page.wait_for_selector(".bnb-source", timeout=30_000)
    page.click("button:has-text('More like this')")
    page.wait_for_function("location.search.includes('like=')", timeout=60_000)
    page.wait_for_function("document.querySelectorAll('.bnb-tile').length >= 10 && "
                           "!document.querySelector('.bnb-status.working')", timeout=60_000)
    page.locator(".bnb-tile button:has-text('Details')").nth(4).click()
    page.wait_for_function("location.search.includes('sel=')", timeout=30_000)
    page.click("button:has-text('Copy link to this search')")
    link = page.locator(".bnb-share-url").input_value()
    assert link == page.url and "like=" in link
    before, selected = _captions(page), page.locator(".bnb-source").inner_text()
    fresh = browser.new_context(viewport={"width": 1500, "height": 1100}).new_page()
    fresh.goto(link, timeout=120_000)
    fresh.wait_for_function("document.querySelectorAll('.bnb-tile').length >= 10", timeout=120_000)
    fresh.wait_for_selector(".bnb-source", timeout=60_000)
    assert _captions(fresh) == before
    assert fresh.locator(".bnb-source").inner_text().split("atlas id")[1] == selected.split("atlas id")[1]
    ARTIFACTS.mkdir(exist_ok=True)
    fresh.screenshot(path=str(ARTIFACTS / "dashboard-from-link.png"), full_page=True)
    fresh.context.close()
    # a batch of five photos: five rows, each opening its own gallery
    five = [demo_atlas / "queries" / f for f in queries["file"].iloc[5:10]]
    upload(page, five)
    page.wait_for_selector(".bnb-batch", timeout=120_000)
    assert page.locator(".bnb-batch tr").count() == 6
    page.screenshot(path=str(ARTIFACTS / "dashboard-batch.png"), full_page=True)
    top_hit = page.locator(".bnb-batch tr").nth(2).locator("td").nth(4).inner_text()
    page.click(f"button:has-text('2: {five[1].name}')")
    page.wait_for_function("!location.search.includes('like=') && document.querySelectorAll('.bnb-tile').length >= 10 "
                           "&& !document.querySelector('.bnb-status.working')", timeout=60_000)
    assert page.locator(".bnb-caption .sci").first.inner_text() == top_hit      # the row's top hit, in its gallery
    assert "Traceback" not in page.content()
    assert not errors, errors
    page.close()


def test_a_folded_card_in_the_browser(browser, tmp_path_factory):
    """An atlas holding one image under GBIF and again under EOL shows it once: '2 copies'."""
    from helpers.copies import COPIED, build_copies_atlas
    root = tmp_path_factory.mktemp("copies-browser")
    atlas, _ = build_copies_atlas(root)
    with voila_server(atlas, root) as (base, _):
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        search_page(page, base, root / "copies-collection" / COPIED[0])
        assert page.locator(".bnb-tile button:has-text('copies')").count() == 1
        page.click(".bnb-tile button:has-text('2 copies')")
        page.wait_for_selector(".bnb-copies-list:has-text('2 copies of this image')", timeout=30_000)
        assert "eol" in page.locator(".bnb-copies-list").inner_text().lower()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-copies.png"), full_page=True)
        page.close()


def test_where_and_when_in_the_browser(browser, tmp_path_factory):
    """One marker per located hit (drawn with no map tiles: this machine has no internet), and
    the month filter narrows the gallery."""
    import re

    from helpers.copies import build_copies_atlas
    from test_occurrences import records_for

    from bioclip_nb.testing.gbifapi import GbifApi
    root = tmp_path_factory.mktemp("where-browser")
    atlas, table = build_copies_atlas(root)
    with GbifApi(records_for(table)) as gbif, \
            voila_server(atlas, root, env={"BIOCLIP_NB_GBIF_API": gbif.api}) as (base, _):
        page = browser.new_page(viewport={"width": 1500, "height": 1200})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        search_page(page, base, root / "copies-collection" / "Vulpes_vulpes_1.jpg")
        page.click(".lm-TabBar-tab:has-text('Where and when'), .p-TabBar-tab:has-text('Where and when')")
        page.wait_for_selector("text=have a place on the map", timeout=60_000)
        located = int(re.search(r"(\d+) of 10 results have a place", page.content()).group(1))
        assert located > 0
        page.wait_for_function(f"document.querySelectorAll('path.leaflet-interactive').length == {located}",
                               timeout=30_000)
        page.locator("path.leaflet-interactive").first.dispatch_event("click")   # a point: its place, date, licence
        page.wait_for_selector(".bnb-place:has-text('licence')", timeout=30_000)
        handle = page.locator(".widget-hslider:has-text('Months') .noUi-handle").first   # the months' lower handle
        handle.focus()
        for _ in range(6):
            page.keyboard.press("ArrowRight")                  # July to December only
        page.wait_for_selector(".bnb-status:has-text('months 7-12')", timeout=30_000)
        shown = int(re.search(r"Showing (\d+) of 10", page.locator(".bnb-status").inner_text()).group(1))
        assert 0 <= shown < 10 and page.locator(".bnb-tile").count() == shown
        _finish(page, errors, "dashboard-where.png")


def test_a_restricted_prediction_in_the_browser(browser, tmp_path_factory, tiny_bioclip):
    """On an atlas built with BioCLIP 2 (tiny random weights under the real model id): a taxon
    filter restricts the prediction, and the Prediction tab says to what."""
    from helpers.dashatlas import build_dash_atlas, query_file

    from bioclip_nb.layout import BIOCLIP2
    root = tmp_path_factory.mktemp("restricted-browser")
    atlas = build_dash_atlas(root, "http://127.0.0.1:9", BIOCLIP2)
    with voila_server(atlas, root) as (base, _):
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        search_page(page, base, query_file(root, "Parus"))
        page.get_by_label("Taxon rank").select_option("genus")
        name = page.locator("input[placeholder='pick or type a name']")
        name.fill("Vulpes")
        name.press("Enter")
        page.click(".lm-TabBar-tab:has-text('Prediction'), .p-TabBar-tab:has-text('Prediction')")
        page.wait_for_selector(".bnb-status:has-text('Restricted to genus Vulpes')", timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "dashboard-restricted.png"), full_page=True)
        assert "Traceback" not in page.content()
        assert not errors, errors
        page.close()
