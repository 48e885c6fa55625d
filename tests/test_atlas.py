"""Atlas search over a real IVF-PQ index and a real DuckDB file in the published layout."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from bioclip_nb import Atlas, ModelMismatchError
from bioclip_nb.core.index import bitmap_count
from bioclip_nb.core.metadata import SCOPE_SQL
from bioclip_nb.demo.synthetic import HOSTILE_NAME
from bioclip_nb.layout import RESULT_COLUMNS, Scope


@pytest.fixture(scope="module")
def atlas(published_atlas):
    with Atlas.open(published_atlas.path) as a:
        yield a


def test_published_layout_is_inferred(atlas, published_atlas):
    assert atlas.model == "hf-hub:imageomics/bioclip-2"
    assert (atlas.count, atlas.dim, atlas.nlist, atlas.metric) == (50_000, 768, 128, "l2")
    assert atlas.manifest.source.startswith("inferred")
    # the fixture really has the published quirks
    con = duckdb.connect(str(published_atlas.path / "duckdb/metadata.duckdb"), read_only=True)
    types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_name='metadata'").fetchall())
    assert types["kingdom"].startswith("ENUM") and types["family"].startswith("ENUM")
    first_ids = [r[0] for r in con.execute("SELECT id FROM metadata LIMIT 50").fetchall()]
    assert first_ids != sorted(first_ids)  # sorted by taxonomy, not by id
    assert con.execute('SELECT count(*) FROM metadata WHERE "class" IS NULL').fetchone()[0] > 0
    assert con.execute("SELECT count(*) FROM metadata WHERE NOT has_url").fetchone()[0] > 0
    con.close()


def test_self_retrieval(atlas, published_atlas):
    ids = np.arange(0, 50_000, 997)[:40]
    hits = atlas.search(published_atlas.vectors[ids], top_n=5, nprobe=16)
    first = hits[hits["rank"] == 1].sort_values("query")["id"].to_numpy()
    assert (first == ids).all()


def test_hits_have_contract_columns_and_rank_order(atlas, published_atlas):
    hits = atlas.search(published_atlas.vectors[123], top_n=10, nprobe=8)
    assert list(hits.columns) == list(RESULT_COLUMNS)
    assert hits["rank"].tolist() == list(range(1, 11))
    assert (np.diff(hits["distance"]) >= 0).all()
    np.testing.assert_allclose(hits["similarity"], 1 - hits["distance"] / 2, rtol=1e-6)
    timings = hits.attrs["timings"]
    assert set(timings) == {"scope", "search", "metadata"} and all(v > 0 for v in timings.values())


def test_batch_search_numbers_queries(atlas, published_atlas):
    hits = atlas.search(published_atlas.vectors[:3], top_n=4, nprobe=4)
    assert hits["query"].tolist() == [0] * 4 + [1] * 4 + [2] * 4


def test_metadata_rows_match_records(atlas, published_atlas):
    rec = published_atlas.records.set_index("id")
    ids = [7, 3, 49_999, 0, 12_345]
    rows = atlas.lookup(ids)
    assert rows["id"].tolist() == ids  # order kept
    for _, row in rows.iterrows():
        expected = rec.loc[row["id"]]
        assert row["genus"] == expected["genus"]
        assert row["url"] == (expected["url"] if isinstance(expected["url"], str) else None)
        if expected["source_dataset"] == "gbif":
            assert row["occurrence_url"] == f"https://www.gbif.org/occurrence/{expected['source_id']}"
        else:
            assert row["occurrence_url"] is None


def test_null_ranks_stay_missing(atlas, published_atlas):
    no_class = published_atlas.records.index[published_atlas.records["class"].isna()][:5]
    assert len(no_class) == 5                                  # the fixture has them (ray-finned fishes)
    rows = atlas.lookup(no_class)
    assert all(v is None for v in rows["class"])               # None, never the text "None" or NaN
    assert rows["order"].notna().all()                         # the ranks around the gap are kept


def test_hostile_and_unicode_names_round_trip(atlas, published_atlas):
    rec = published_atlas.records
    hostile = rec.index[rec["common_name"] == HOSTILE_NAME]
    unicode_ = rec.index[rec["common_name"] == "Bergfink 🐦"]
    rows = atlas.lookup([hostile[0], unicode_[0]])
    assert rows["common_name"].tolist() == [HOSTILE_NAME, "Bergfink 🐦"]


def test_lookup_refuses_more_than_1000_ids(atlas):
    with pytest.raises(ValueError, match="at most 1000 ids"):
        atlas.metadata.get(np.arange(1001))


def _rare_taxon(records):
    share = records["genus"].value_counts(normalize=True)
    return share[(share < 0.01) & (share > 0.0015)].index[0]


@pytest.mark.parametrize("scope", [s.value for s in Scope])
def test_scope_pages_are_full_and_in_scope(atlas, published_atlas, scope):
    con = duckdb.connect(str(published_atlas.path / "duckdb/metadata.duckdb"), read_only=True)
    cond = SCOPE_SQL[Scope(scope)] or "TRUE"
    allowed = {r[0] for r in con.execute(f"SELECT id FROM metadata WHERE {cond}").fetchall()}
    rng = np.random.default_rng(1)
    queries = published_atlas.vectors[rng.choice(50_000, 60, replace=False)]
    hits = atlas.search(queries, top_n=20, nprobe=16, scope=scope)
    assert hits.groupby("query").size().eq(20).all() and hits["query"].nunique() == 60
    assert set(hits["id"]) <= allowed
    con.close()


def test_rare_taxon_pages_are_full_and_exact(atlas, published_atlas):
    genus = _rare_taxon(published_atlas.records)
    members = published_atlas.records.index[published_atlas.records["genus"] == genus]
    assert len(members) < 500  # under 1% of 50,000
    queries = published_atlas.vectors[members[:30]]
    for scope in ("all", "inat"):
        n_in = len(atlas.metadata.ids_where(f"genus = ? AND {SCOPE_SQL[Scope(scope)] or 'TRUE'}", [genus]))
        top_n = min(10, n_in)
        hits = atlas.search(queries, top_n=top_n, nprobe=atlas.nlist, scope=scope, taxon={"genus": genus})
        assert hits.groupby("query").size().eq(top_n).all()
        assert set(hits["genus"]) == {genus}
        if scope == "inat":
            assert set(hits["publisher"]) == {"iNaturalist.org"} and hits["has_url"].all()


def test_scoped_search_at_low_nprobe_is_still_full(atlas, published_atlas):
    # a 38% scope at nprobe 2: the bitmap keeps pages full without over-fetching
    hits = atlas.search(published_atlas.vectors[:50], top_n=50, nprobe=2, scope="inat")
    assert hits.groupby("query").size().eq(50).all()


def test_bitmaps_are_cached_by_fingerprint(atlas, bioclip_home):
    bm = atlas.bitmap("inat", {"class": "Cla0001"})
    assert bitmap_count(bm) > 0
    cached = list((bioclip_home / "cache" / atlas.fingerprint).glob("*.npy"))
    assert any(p.name == "scope-inat.npy" for p in cached)
    assert any(p.name.startswith("taxon-class-") for p in cached)


def test_scope_counts(atlas, published_atlas):
    rec = published_atlas.records
    counts = atlas.scope_counts()
    assert counts["all"] == 50_000
    assert counts["url"] == rec["url"].notna().sum()
    assert counts["training"] == rec["in_bioclip2_training"].sum()
    assert 0 < counts["inat"] < counts["url"]


def test_unknown_taxon_gives_empty_result(atlas, published_atlas):
    hits = atlas.search(published_atlas.vectors[0], top_n=5, nprobe=4, taxon={"genus": "Nonexistens"})
    assert len(hits) == 0 and list(hits.columns) == list(RESULT_COLUMNS)


@pytest.mark.parametrize("kwargs, message", [
    ({"top_n": 0}, "top_n must be a whole number from 1 to 1000"),
    ({"top_n": 1001}, "top_n must be a whole number from 1 to 1000"),
    ({"nprobe": 0}, "nprobe must be a whole number from 1 to 128"),
    ({"nprobe": 129}, r"nprobe must be a whole number from 1 to 128 \(this atlas has 128 cells\)"),
    ({"scope": "everything"}, "unknown scope 'everything'"),
    ({"taxon": {"tribe": "Bombini"}}, "unknown rank 'tribe'"),
    ({"taxon": ["class"]}, "must look like RANK=NAME"),
])
def test_search_refusals(atlas, published_atlas, kwargs, message):
    with pytest.raises(ValueError, match=message):
        atlas.search(published_atlas.vectors[0], **kwargs)


@pytest.mark.parametrize("vectors, message", [
    (np.zeros(512, np.float32), r"shape \(768,\) or \(n, 768\)"),
    (np.zeros((2, 3, 768), np.float32), r"shape \(768,\) or \(n, 768\)"),
    (np.full(768, np.nan, np.float32), "NaN or infinity"),
    (np.zeros(768, np.float32), "all zeros"),
])
def test_vector_refusals(atlas, vectors, message):
    with pytest.raises(ValueError, match=message):
        atlas.search(vectors)


def test_model_mismatch_is_refused(atlas, published_atlas):
    with pytest.raises(ModelMismatchError, match="built with 'hf-hub:imageomics/bioclip-2'"):
        atlas.search(published_atlas.vectors[0], model="bioclip-nb/pixel-768")


def test_hnsw_quantizer_sidecar(published_atlas, tmp_path, capsys):
    from bioclip_nb.commands.cli import main
    from bioclip_nb.config import Settings
    settings = Settings(home=tmp_path / "home")
    with Atlas.open(published_atlas.path, settings=settings) as flat:
        assert flat.quantizer == "flat"
        queries = published_atlas.vectors[:50]
        before = flat.search(queries, top_n=10, nprobe=8)
    import os
    os.environ["BIOCLIP_NB_HOME"], old = str(settings.home), os.environ["BIOCLIP_NB_HOME"]
    try:
        assert main(["quantizer", "--atlas", str(published_atlas.path)]) == 0
    finally:
        os.environ["BIOCLIP_NB_HOME"] = old
    sidecar = capsys.readouterr().out.strip()
    assert sidecar.startswith(str(settings.cache_dir)) and str(published_atlas.path) not in sidecar
    with Atlas.open(published_atlas.path, settings=settings) as fast:
        assert fast.quantizer == "hnsw" and fast.info()["quantizer"] == "hnsw"
        after = fast.search(queries, top_n=10, nprobe=8)
    same = np.mean([set(a) == set(b) for a, b in zip(before.groupby("query")["id"].apply(set), after.groupby("query")["id"].apply(set))])
    assert same >= 0.95
