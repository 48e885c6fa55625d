"""Opening refuses broken atlases with a message that names the file and the fix."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import duckdb
import faiss
import numpy as np
import pytest
from helpers.atlases import build_synthetic_atlas

from bioclip_nb import Atlas, AtlasError


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return build_synthetic_atlas(tmp_path_factory.mktemp("small") / "atlas", 3000, "IVF16,Flat",
                                 published_layout=False, model="bioclip-nb/pixel-768")


@pytest.fixture
def copy(small, tmp_path):
    dest = tmp_path / "atlas"
    shutil.copytree(small.path, dest)
    return dest


def test_own_atlas_reads_manifest(small):
    with Atlas.open(small.path) as a:
        assert a.model == "bioclip-nb/pixel-768" and a.manifest.source == "test fixture"
        assert a.manifest.created


def test_missing_directory(tmp_path):
    with pytest.raises(AtlasError, match=r"atlas directory not found: .*nowhere.*bioclip-nb demo"):
        Atlas.open(tmp_path / "nowhere")


@pytest.mark.parametrize("rel", ["faiss/index.index", "duckdb/metadata.duckdb"])
def test_missing_file(copy, rel):
    (copy / rel).unlink()
    with pytest.raises(AtlasError, match=rf"{rel} is missing.*bioclip-nb download"):
        Atlas.open(copy)


def test_corrupt_index(copy):
    data = (copy / "faiss/index.index").read_bytes()
    (copy / "faiss/index.index").write_bytes(data[: len(data) // 3])
    with pytest.raises(AtlasError, match=r"index.index is not a FAISS index we can read.*truncated or corrupt"):
        Atlas.open(copy)


def test_non_faiss_index(copy):
    (copy / "faiss/index.index").write_text("hello, I am not an index")
    with pytest.raises(AtlasError, match="is not a FAISS index we can read"):
        Atlas.open(copy)


def test_non_duckdb_metadata(copy):
    (copy / "duckdb/metadata.duckdb").write_bytes(b"SQLite format 3\x00" + b"\x00" * 4096)
    with pytest.raises(AtlasError, match=r"metadata.duckdb is not a DuckDB database"):
        Atlas.open(copy)


def _edit_db(path, sql):
    con = duckdb.connect(str(path / "duckdb/metadata.duckdb"))
    con.execute(sql)
    con.close()


def test_missing_table(copy):
    _edit_db(copy, "DROP TABLE url_prefixes")
    with pytest.raises(AtlasError, match="has no table 'url_prefixes'"):
        Atlas.open(copy)


def test_missing_column(copy):
    _edit_db(copy, "DROP INDEX idx_scope; DROP INDEX idx_id; ALTER TABLE metadata DROP COLUMN has_url")
    with pytest.raises(AtlasError, match="lacks column.*has_url"):
        Atlas.open(copy)


def test_metadata_does_not_cover_index(copy):
    _edit_db(copy, "DELETE FROM metadata WHERE id >= 2500")
    with pytest.raises(AtlasError, match=r"3,000 vectors but .* only 2,500 rows"):
        Atlas.open(copy)


def test_ids_out_of_range(copy):
    _edit_db(copy, "UPDATE metadata SET id = id + 100000 WHERE id < 10")
    with pytest.raises(AtlasError, match=r"rows for only 2,990 of the 3,000 ids"):
        Atlas.open(copy)


def test_dimension_not_matching_model(copy):
    index = faiss.IndexFlatL2(512)
    index.add(np.random.default_rng(0).normal(size=(3000, 512)).astype("float32"))
    faiss.write_index(index, str(copy / "faiss/index.index"))
    manifest = json.loads((copy / "atlas.json").read_text())
    manifest["dim"] = 512
    (copy / "atlas.json").write_text(json.dumps(manifest))
    with pytest.raises(AtlasError, match=r"holds 512-d vectors but the atlas's model bioclip-nb/pixel-768 embeds to 768-d"):
        Atlas.open(copy)


def test_manifest_disagreeing_with_index(copy):
    manifest = json.loads((copy / "atlas.json").read_text())
    manifest["dim"] = 512
    (copy / "atlas.json").write_text(json.dumps(manifest))
    with pytest.raises(AtlasError, match="says dim 512 but .* holds 768-d vectors"):
        Atlas.open(copy)


def test_broken_manifest(copy):
    (copy / "atlas.json").write_text("{not json")
    with pytest.raises(AtlasError, match="atlas.json is not valid JSON"):
        Atlas.open(copy)


def test_atlas_path_is_a_file(tmp_path):
    f = tmp_path / "atlas.zip"
    f.write_bytes(b"PK")
    with pytest.raises(AtlasError, match="is a file; an atlas is a directory"):
        Atlas.open(f)


@contextlib.contextmanager
def read_only(path: Path):
    """``path`` read-only for everybody, root included: a read-only bind mount where we may
    mount (root, as CI runs), else permission bits (which bind an unprivileged user)."""
    if os.geteuid() == 0:
        view = path.with_name(path.name + "-ro")
        view.mkdir()
        try:
            subprocess.run(["mount", "--bind", str(path), str(view)], check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            pytest.skip(f"cannot make a read-only mount here ({exc}); run as an unprivileged user instead")
        try:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], check=True, capture_output=True)
            yield view
        finally:
            subprocess.run(["umount", "--lazy", str(view)], check=False)   # a memory-mapped index may still hold it
        return
    for p in [*path.rglob("*"), path]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        yield path
    finally:
        for p in [*path.rglob("*"), path]:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)


def test_read_only_atlas_and_home_still_search(small, tmp_path):
    """The atlas on a read-only disk (a shared copy at OSC) and a read-only home: search works."""
    from bioclip_nb.config import Settings
    shutil.copytree(small.path, tmp_path / "atlas")
    (tmp_path / "home").mkdir()
    with read_only(tmp_path / "atlas") as atlas, read_only(tmp_path / "home") as home:
        with pytest.raises(OSError):
            (atlas / "probe").write_text("x")            # truly read-only, whoever we are
        with pytest.raises(OSError):
            (home / "probe").write_text("x")
        with Atlas.open(atlas, settings=Settings(home=home)) as a:
            assert len(a.search(small.vectors[0], top_n=3, nprobe=4, scope="inat")) == 3
            assert a.scope_counts()["all"] == 3000


def test_unwritable_home_still_searches_and_explores(small, tmp_path):
    """Works as root too: a home that is a file cannot be written by anybody."""
    from bioclip_nb import explore
    from bioclip_nb.config import Settings
    home = tmp_path / "home-is-a-file"
    home.write_text("not a directory")
    with Atlas.open(small.path, settings=Settings(home=home)) as a:
        assert a.scope_counts()["all"] == 3000
        kingdom = small.records["kingdom"].iloc[0]
        hits = a.search(small.vectors[0], top_n=3, nprobe=16, scope="inat", taxon={"kingdom": kingdom})
        assert len(hits) == 3 and set(hits["kingdom"]) == {kingdom}
        rep = explore.probe_report(a, small.vectors[0], 2, hits)
        assert rep.probed.sum() == 2
    assert home.read_text() == "not a directory"


def test_dashboard_with_unwritable_home(small, tmp_path):
    from bioclip_nb.config import Settings
    from bioclip_nb.dashboard import Dashboard
    home = tmp_path / "home-is-a-file"
    home.write_text("x")
    d = Dashboard.from_settings(atlas=small.path, settings=Settings(home=home))
    assert isinstance(d, Dashboard) and d.session.fetcher.cache is None
