"""The hit columns ``prepare`` writes: lookups without DuckDB that give exactly DuckDB's rows.

The published-layout fixture (ENUMs, UUIDs, a NULL URL prefix with the whole URL in the
suffix, a class with no name, hostile and non-ASCII community data) is copied per test, so
tampering stays local.
"""

from __future__ import annotations

import json
import shutil

import duckdb
import numpy as np
import pandas as pd
import pytest

from bioclip_nb import Atlas
from bioclip_nb.commands.check import _derived
from bioclip_nb.commands.prepare import prepare
from bioclip_nb.config import Settings
from bioclip_nb.core import hitcolumns
from bioclip_nb.core.metadata import MetadataStore


@pytest.fixture
def atlas_copy(published_atlas, tmp_path):
    path = tmp_path / "atlas"
    shutil.copytree(published_atlas.path, path)
    return path


def _open(path, home):
    return Atlas.open(path, settings=Settings(home=home))


def test_prepared_hit_columns_give_duckdbs_rows_and_hits(atlas_copy, tmp_path):
    with _open(atlas_copy, tmp_path / "plain") as plain:
        assert plain.metadata.hit_columns is None and not plain.info()["hit_columns"]
        line = _derived(plain)
        assert line.warning and "hit columns" in line.found and "DuckDB" in line.found
        ids = np.r_[np.arange(plain.count), 5, 0, 5]                     # every row, repeats, FAISS order
        want = plain.lookup(ids[::-1])
        q = np.random.default_rng(0).standard_normal((4, plain.dim)).astype(np.float32)
        want_hits = plain.search(q, top_n=10, nprobe=4)
    with _open(atlas_copy, tmp_path / "prepared") as atlas:
        seconds = prepare(atlas, with_map=False, with_quantizer=False, progress=False)
        assert "hit columns" in seconds and atlas.metadata.hit_columns is not None
        pd.testing.assert_frame_equal(atlas.lookup(ids[::-1]), want, check_exact=True)
        pd.testing.assert_frame_equal(atlas.search(q, top_n=10, nprobe=4), want_hits, check_exact=True)
        assert atlas.lookup([atlas.count + 3])["genus"].isna().all()    # beyond the rows: DuckDB says none
    with _open(atlas_copy, tmp_path / "prepared") as again:              # found and checked on open
        assert again.metadata.hit_columns is not None and again.info()["hit_columns"]
        assert "hit columns" not in _derived(again).found        # only the atlas map is left to compute
        row = again.lookup([5]).iloc[0]
        assert row["url"] == want.loc[want["id"] == 5, "url"].iloc[0] and row["url"].startswith("https://")


def test_hit_columns_that_disagree_with_duckdb_are_not_used(atlas_copy, tmp_path):
    with _open(atlas_copy, tmp_path / "home") as atlas:
        hitcolumns.write(atlas.metadata, atlas.cache_dir)
        genus = atlas.cache_dir / hitcolumns.DIRECTORY / "genus.bin"
    spec = json.loads((genus.parent / hitcolumns.RECORD).read_text())["columns"]["genus"]
    names = json.loads((genus.parent / "genus.values.json").read_text())
    codes = np.fromfile(genus, dtype=spec["dtype"])
    codes[0] = codes[0] % len(names) + 1                      # the first record now names another genus
    codes.tofile(genus)
    with _open(atlas_copy, tmp_path / "home") as atlas:
        assert atlas.metadata.hit_columns is None
        assert atlas.lookup([0])["genus"].iloc[0] == _duckdb_genus(atlas_copy, 0)


@pytest.mark.parametrize("change", ["DELETE FROM metadata WHERE id = 7",
                                    "UPDATE metadata SET id = 8 WHERE id = 7"],      # n rows, 0 to n-1, one twice
                         ids=["a gap", "a duplicate"])
def test_a_table_whose_ids_have_gaps_keeps_duckdb_lookups(atlas_copy, tmp_path, change):
    db = atlas_copy / "duckdb" / "metadata.duckdb"
    con = duckdb.connect(str(db))
    con.execute(change)
    con.close()
    store = MetadataStore.open(db)
    try:
        assert hitcolumns.write(store, tmp_path / "derived") is None
        assert not (tmp_path / "derived" / hitcolumns.DIRECTORY).exists()
    finally:
        store.close()


def _duckdb_genus(path, record_id):
    con = duckdb.connect(str(path / "duckdb" / "metadata.duckdb"), read_only=True)
    try:
        return con.execute("SELECT genus::VARCHAR FROM metadata WHERE id = ?", [record_id]).fetchone()[0]
    finally:
        con.close()


def test_truncated_hit_columns_are_refused_and_the_atlas_still_opens(atlas_copy, tmp_path):
    with _open(atlas_copy, tmp_path / "home") as atlas:
        hitcolumns.write(atlas.metadata, atlas.cache_dir)
        want = atlas.lookup([atlas.count - 1])
    suffix = tmp_path / "home" / "cache"
    offsets = next(suffix.rglob("identifier_suffix.offsets.bin"))
    offsets.write_bytes(offsets.read_bytes()[:-8 * 100])          # an interrupted copy: the last rows missing
    with _open(atlas_copy, tmp_path / "home") as atlas:
        assert atlas.metadata.hit_columns is None
        pd.testing.assert_frame_equal(atlas.lookup([atlas.count - 1]), want)


def test_duckdb_spills_into_the_derived_data_not_beside_the_metadata_file(atlas_copy, tmp_path):
    # At 234M records a sort by id spilled 39 GB into metadata.duckdb.tmp beside the published
    # file, whose folder may be read-only (a shared copy) and was this machine's fullest disk.
    with _open(atlas_copy, tmp_path / "home") as atlas:
        (before,) = atlas.metadata._cursor().execute("SELECT current_setting('memory_limit')").fetchone()
        hitcolumns.write(atlas.metadata, atlas.cache_dir)
        setting, after = atlas.metadata._cursor().execute(
            "SELECT current_setting('temp_directory'), current_setting('memory_limit')").fetchone()
        assert setting == str(atlas.cache_dir / hitcolumns.SPILL_DIRECTORY)
        assert after == before                      # the writer's smaller limit is not left behind
        assert (atlas.cache_dir / hitcolumns.SPILL_DIRECTORY).is_dir()
        assert not (atlas_copy / "duckdb" / "metadata.duckdb.tmp").exists()


def test_prepare_short_of_disk_for_the_hit_columns_says_so_and_writes_nothing(atlas_copy, tmp_path, monkeypatch, capsys):
    from bioclip_nb.commands.cli import main
    monkeypatch.setattr(hitcolumns, "WRITE_BYTES_PER_RECORD", 10 ** 15)     # a petabyte a record: no disk has it
    home = tmp_path / "home"
    monkeypatch.setenv("BIOCLIP_NB_HOME", str(home))
    code = main(["prepare", "--atlas", str(atlas_copy), "--no-map"])
    err = capsys.readouterr().err
    assert code == 1 and "hit columns" in err and "GB" in err and "--no-hit-columns" in err
    assert "Traceback" not in err
    assert not list(home.rglob(hitcolumns.DIRECTORY)) and not list(home.rglob(f".{hitcolumns.DIRECTORY}.partial"))


def test_columns_written_in_many_small_passes_are_byte_for_byte_those_of_one(atlas_copy, tmp_path, monkeypatch):
    # A column larger than PASS_BYTES is written in passes of ids (each a DuckDB query whose rows
    # come back in table order, which is taxonomic, not by id); the files must not show it.
    with _open(atlas_copy, tmp_path / "home") as atlas:
        whole = hitcolumns.write(atlas.metadata, tmp_path / "one")
        monkeypatch.setattr(hitcolumns, "PASS_BYTES", 40 * atlas.count)     # text and uuids: 2 or 3 passes
        pieces = hitcolumns.write(atlas.metadata, tmp_path / "many")
    assert whole == pieces and atlas.count > 20
    one, many = tmp_path / "one" / hitcolumns.DIRECTORY, tmp_path / "many" / hitcolumns.DIRECTORY
    names = sorted(p.name for p in one.iterdir())
    assert names == sorted(p.name for p in many.iterdir()) and any(n.endswith(".offsets.bin") for n in names)
    for name in names:
        assert (one / name).read_bytes() == (many / name).read_bytes(), name
