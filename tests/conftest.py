"""Shared fixtures: an isolated BIOCLIP_NB_HOME and real atlases built at small scale."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

# Before anything imports huggingface_hub: never reach a hub, never touch the user's cache.
_HF_CACHE = Path(tempfile.mkdtemp(prefix="bioclip-nb-hf-"))
os.environ["HF_HUB_CACHE"] = str(_HF_CACHE)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.pop("HF_HOME", None)
# `bioclip-nb search` starts a background server when none runs; tests of that ask for it
# (BIOCLIP_NB_AUTOSTART=1), the rest search in-process and leave no server behind.
os.environ["BIOCLIP_NB_AUTOSTART"] = "0"
# GBIF's API is never reached: a closed local port (tests of occurrences start their own stand-in).
os.environ["BIOCLIP_NB_GBIF_API"] = "http://127.0.0.1:9/v1"
# Encoders run in torch unless a test names a runtime (tests/test_runtime.py): a background
# export starting in every test that loads the model would make them race.
os.environ["BIOCLIP_NB_RUNTIME"] = "torch"

import matplotlib  # noqa: E402
import pytest  # noqa: E402

matplotlib.use("agg")
sys.path.insert(0, str(Path(__file__).parent))

from helpers.atlases import BuiltAtlas, build_synthetic_atlas  # noqa: E402
from helpers.tinymodel import install_tiny_bioclip, install_tiny_bioclip25  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def bioclip_home(tmp_path_factory) -> Path:
    """Every test run gets its own BIOCLIP_NB_HOME, so caches never leak between runs."""
    home = tmp_path_factory.mktemp("bioclip-home")
    os.environ["BIOCLIP_NB_HOME"] = str(home)
    os.environ.pop("BIOCLIP_NB_ATLAS", None)
    return home


@pytest.fixture(scope="session")
def published_atlas(tmp_path_factory) -> BuiltAtlas:
    """50,000 vectors, IVF128,PQ16, L2, in the published layout (no atlas.json) with its quirks."""
    path = tmp_path_factory.mktemp("published") / "bioclip-lite"
    return build_synthetic_atlas(path, 50_000, "IVF128,PQ16", published_layout=True)


@pytest.fixture(scope="module")
def host():
    """A real image host on 127.0.0.1 (``bioclip_nb.testing.imagehost``), one per test module."""
    from bioclip_nb.testing.imagehost import ImageHost
    with ImageHost() as h:
        yield h


@pytest.fixture(scope="session")
def tiny_bioclip() -> dict:
    """The offline Hugging Face cache holding a tiny random BioCLIP 2 and Tree of Life labels."""
    return install_tiny_bioclip(_HF_CACHE)


@pytest.fixture(scope="session")
def tiny_bioclip25(tiny_bioclip) -> dict:
    """A tiny random BioCLIP 2.5 Huge (1024-d) in the offline cache, beside the tiny BioCLIP 2
    whose Tree of Life names it shares."""
    return install_tiny_bioclip25(_HF_CACHE)


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch) -> Path:
    """An empty, offline Hugging Face cache (as on a machine that never downloaded the model)."""
    import huggingface_hub.constants as c
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, driven by Playwright (one per test module)."""
    from helpers.voila import CHROMIUM, CHROMIUM_ARGS
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def demo_atlas(tmp_path_factory) -> Path:
    """The real demo atlas (10,070 drawn specimens, stand-in encoder), built once per run."""
    from bioclip_nb.demo import build_demo
    from bioclip_nb.layout import PIXEL_MODEL
    return build_demo(tmp_path_factory.mktemp("demo") / "demo", model=PIXEL_MODEL, progress=False)


@pytest.fixture(scope="session")
def million_atlas(tmp_path_factory) -> Path:
    """A 1,000,000-vector synthetic atlas in 1,024 cells. (``bioclip-nb demo --synthetic`` would
    choose 4,096, whose k-means took eight of CI's minutes for one test; the test needs a million
    records and depth that matters, not that cell count.)"""
    return build_synthetic_atlas(tmp_path_factory.mktemp("million") / "synthetic-1000000", 1_000_000,
                                 "IVF1024,PQ16", published_layout=False).path
