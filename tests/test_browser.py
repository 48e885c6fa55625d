"""The served page works: Voilà in a real Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from helpers.voila import CHROMIUM, CHROMIUM_ARGS, kernel_memory_mb, upload, voila_server

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                                     reason="needs Debian's chromium (apt-get install chromium)")]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def demo_server(demo_atlas, tmp_path_factory):
    home = tmp_path_factory.mktemp("voila-home")
    with voila_server(demo_atlas, home) as (base, proc):
        yield base, proc


def _search(page, base, query: Path, top_n: int = 10):
    page.goto(base, timeout=120_000)
    page.wait_for_selector("text=Upload photo", timeout=120_000)
    upload(page, query)
    page.wait_for_selector(".bnb-status:has-text('encoded')", timeout=60_000)
    page.click("button:has-text('Search')")
    page.wait_for_function(f"document.querySelectorAll('.bnb-tile').length >= {top_n}", timeout=60_000)
    page.wait_for_function("document.querySelectorAll('.bnb-tile .bnb-thumb, .bnb-tile .bnb-missing').length >= "
                           f"{top_n} && !document.querySelector('.bnb-status.working')", timeout=60_000)


def test_demo_query_finds_its_species_in_the_browser(browser, demo_server, demo_atlas):
    base, _ = demo_server
    queries = pd.read_csv(demo_atlas / "queries" / "index.csv")
    q = queries.iloc[1]
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    _search(page, base, demo_atlas / "queries" / q["file"])
    assert page.locator(".bnb-tile img.bnb-thumb, .bnb-tile .bnb-thumb img").count() + page.locator(".bnb-thumb").count() >= 9
    page.locator(".bnb-tile button:has-text('Details')").first.click()
    page.wait_for_selector(".bnb-taxonomy", timeout=30_000)
    table = page.locator(".bnb-taxonomy").inner_text()
    assert "kingdom" in table and q["kingdom"] in table
    assert f"{q['genus']} {q['species']}" in page.locator(".bnb-caption").first.inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert "Traceback" not in page.content()
    assert not errors, errors
    page.close()


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
    base, proc = demo_server
    queries = pd.read_csv(demo_atlas / "queries" / "index.csv")
    pages = []
    for _ in range(4):
        ctx = browser.new_context()
        page = ctx.new_page()
        page.goto(base, timeout=120_000)
        pages.append(page)
    for page in pages:
        page.wait_for_selector("text=Upload photo", timeout=120_000)
    for i, page in enumerate(pages):
        upload(page, demo_atlas / "queries" / queries["file"].iloc[10 + i])
    for page in pages:
        page.wait_for_selector(".bnb-status:has-text('encoded')", timeout=60_000)
    for page in pages:
        page.click("button:has-text('Search')")
    for page in pages:
        page.wait_for_function("document.querySelectorAll('.bnb-tile .bnb-thumb, .bnb-tile .bnb-missing').length >= 10",
                               timeout=90_000)
    memory = kernel_memory_mb(proc)
    assert len(memory) >= 4
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "voila-memory.json").write_text(json.dumps({"kernels_mb": memory}, indent=1))
    for page in pages:
        page.context.close()


def test_hostile_common_name_shows_as_text(browser, tmp_path_factory):
    from helpers.dashatlas import HOSTILE, build_dash_atlas, query_file

    from bioclip_nb.layout import PIXEL_MODEL
    from bioclip_nb.testing.imagehost import ImageHost
    root = tmp_path_factory.mktemp("hostile")
    with ImageHost() as host:
        atlas = build_dash_atlas(root, host.base, PIXEL_MODEL)
        with voila_server(atlas, root) as (base, _):
            page = browser.new_page(viewport={"width": 1500, "height": 1200})
            _search(page, base, query_file(root, "Carabus"))
            text = page.locator(".bnb-dashboard").inner_text()
            assert "<script>window.__pwned = 1</script>" in text
            assert page.evaluate("typeof window.__pwned") == "undefined"
            page.close()
    assert HOSTILE.startswith("<script>")
