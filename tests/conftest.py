"""Shared fixtures: an isolated BIOCLIP_NB_HOME and real atlases built at small scale."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("agg")
sys.path.insert(0, str(Path(__file__).parent))

from helpers.atlases import BuiltAtlas, build_synthetic_atlas  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def bioclip_home(tmp_path_factory) -> Path:
    """Every test run gets its own BIOCLIP_NB_HOME, so caches never leak between runs."""
    home = tmp_path_factory.mktemp("bioclip-home")
    os.environ["BIOCLIP_NB_HOME"] = str(home)
    os.environ.pop("BIOCLIP_NB_ATLAS", None)
    os.environ["HF_HUB_OFFLINE"] = "1"
    return home


@pytest.fixture(scope="session")
def published_atlas(tmp_path_factory) -> BuiltAtlas:
    """50,000 vectors, IVF128,PQ16, L2, in the published layout (no atlas.json) with its quirks."""
    path = tmp_path_factory.mktemp("published") / "bioclip-lite"
    return build_synthetic_atlas(path, 50_000, "IVF128,PQ16", published_layout=True)
