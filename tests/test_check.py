"""``bioclip-nb check``: each line ok or the problem with its fix; exit 1 when something needs fixing."""

from __future__ import annotations

import pytest
from helpers.dashatlas import build_dash_atlas
from helpers.servers import cli, server_process

from bioclip_nb.commands.check import run_checks
from bioclip_nb.config import Settings
from bioclip_nb.layout import BIOCLIP2, INDEX_FILE


def _run(atlas, settings) -> tuple[int, str]:
    lines: list[str] = []
    code = run_checks(atlas, settings, out=lines.append)
    return code, "\n".join(lines)


def test_a_working_setup_is_all_fine(tmp_path, tiny_bioclip):
    atlas = build_dash_atlas(tmp_path / "a", "http://127.0.0.1:9", BIOCLIP2)
    code, text = _run(atlas, Settings(home=tmp_path / "home"))
    assert code == 0, text
    assert "ok    model" in text and "BioCLIP 2 weights and Tree of Life labels are in" in text
    assert f"ok    atlas        {atlas}" in text and "records" in text and "MB" in text
    assert "host policy" in text and "is writable" in text and "torch" in text


def test_each_problem_names_its_fix(tmp_path, tiny_bioclip, empty_hf_cache):
    atlas = build_dash_atlas(tmp_path / "a", "http://127.0.0.1:9", BIOCLIP2)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    settings = Settings(home=tmp_path / "home", state=blocker / "state")
    code, text = _run(atlas, settings)
    assert code == 1
    assert "FIX   model" in text and "this atlas needs it" in text and "HF_HUB_CACHE" in text
    assert "FIX   host policy" in text and "BIOCLIP_NB_STATE_DIR" in text
    (atlas / INDEX_FILE).write_bytes(b"not an index")
    code, text = _run(atlas, settings)
    assert "FIX   atlas" in text and "->" in text


def test_no_atlas_says_how_to_get_one(tmp_path):
    code, text = _run(None, Settings(home=tmp_path / "home"))
    assert code == 1 and "bioclip-nb demo" in text and "bioclip-nb download" in text


@pytest.mark.slow
def test_the_server_line(tmp_path, tiny_bioclip):
    atlas = build_dash_atlas(tmp_path / "a", "http://127.0.0.1:9", BIOCLIP2)
    home = tmp_path / "home"
    with server_process(atlas, home) as (_, record):
        out = cli("check", "--atlas", str(atlas), home=home)
        assert out.returncode == 0, out.stdout
        assert f"ok    server       {record.url}" in out.stdout and "ready" in out.stdout
    assert "none running" in cli("check", "--atlas", str(atlas), home=home).stdout
