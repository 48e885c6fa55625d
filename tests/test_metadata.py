"""The metadata file as published: its indexes, ENUMs, NULL prefixes and hostile rows."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest
from helpers.atlases import WHOLE_URL

from bioclip_nb import Atlas, results
from bioclip_nb.core.metadata import MetadataStore, like_prefix
from bioclip_nb.dashboard import html
from bioclip_nb.demo.synthetic import HOSTILE_PUBLISHER, HOSTILE_SOURCE_ID, HOSTILE_URL


@pytest.fixture(scope="module")
def store(published_atlas):
    s = MetadataStore.open(published_atlas.path / "duckdb" / "metadata.duckdb")
    yield s
    s.close()


def test_the_fixture_has_the_published_indexes_and_types(published_atlas):
    con = duckdb.connect(str(published_atlas.path / "duckdb" / "metadata.duckdb"), read_only=True)
    indexes = {r[0] for r in con.execute("SELECT index_name FROM duckdb_indexes()").fetchall()}
    types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_name = 'metadata'").fetchall())
    prefix_cols = [r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                             "WHERE table_name = 'url_prefixes'").fetchall()]
    first = con.execute("SELECT source_dataset::VARCHAR FROM metadata LIMIT 1").fetchone()[0]
    con.close()
    assert {"idx_id", "idx_scope"} <= indexes
    for col in ("source_dataset", "publisher", "img_type", "basisOfRecord", "kingdom"):
        assert types[col].startswith("ENUM"), (col, types[col])
    assert types["uuid"] == "UUID" and prefix_cols == ["prefix_id", "prefix"]
    assert first == "bioscan"          # rows sorted by source dataset first, not by id


def test_lookup_is_answered_by_the_id_index(store):
    ids = np.array([17, 3, 40_000, 5])
    plan = store._cursor().execute("EXPLAIN ANALYZE " + store.lookup_sql(np.unique(ids))).fetchall()[0][1]
    assert "Index Scan" in plan, plan


def test_lookup_keeps_faiss_order_and_ids_without_a_row(store, published_atlas):
    ids = [40_000, 5, 10**8, 5, 12]
    df = store.get(ids)
    assert df["id"].tolist() == ids
    assert df.iloc[2].drop("id").isna().all()              # no row: missing values, not dropped
    rec = published_atlas.records.set_index("id")
    assert df.iloc[0]["genus"] == rec.loc[40_000, "genus"] and df.iloc[4]["genus"] == rec.loc[12, "genus"]
    assert df.iloc[1]["url"] == WHOLE_URL == df.iloc[3]["url"]          # NULL prefix: the whole URL
    assert isinstance(df.iloc[0]["uuid"], str) and len(df.iloc[0]["uuid"]) == 36
    assert {"uuid", "basisOfRecord"} <= set(df.columns)


def test_hostile_community_data_stays_data(store, published_atlas):
    row = store.get([3]).iloc[0]
    assert row["publisher"] == HOSTILE_PUBLISHER and row["source_id"] == HOSTILE_SOURCE_ID
    assert row["url"] == HOSTILE_URL
    hit = row.to_dict() | {"rank": 1, "similarity": 0.5, "distance": 1.0}
    table = html.source_table(hit, "l2")
    assert "javascript:" not in table and "<img" not in table and 'onmouseover="' not in table
    assert "&lt;img" in table                                 # shown, as text
    assert html.link(HOSTILE_URL, "open") == html.MISSING     # only http(s) links are rendered
    attribution = results.attribution(hit)
    assert "javascript:" not in attribution and "https://www.gbif.org/occurrence/7" in attribution
    assert results.safe_url(HOSTILE_URL) is None and results.safe_url(" https://a.org/x ") == "https://a.org/x"


def test_search_still_finds_hostile_rows_as_results(published_atlas):
    with Atlas.open(published_atlas.path) as atlas:
        hits = atlas.search(published_atlas.vectors[3], top_n=5, nprobe=8)
    assert 3 in hits["id"].tolist()


@pytest.mark.parametrize("prefix, matches, misses", [
    ("Fam", ["Fam0001"], []), ("50%", ["50% off"], ["500 off"]), ("a_b", ["a_bc"], ["axbc"]),
    ("c\\d", ["c\\de"], ["cde"]),
])
def test_name_completion_takes_the_prefix_literally(prefix, matches, misses):
    con = duckdb.connect()
    pattern = like_prefix(prefix)
    for name in matches:
        assert con.execute("SELECT ? ILIKE ? ESCAPE '\\'", [name, pattern]).fetchone()[0], (name, pattern)
    for name in misses:
        assert not con.execute("SELECT ? ILIKE ? ESCAPE '\\'", [name, pattern]).fetchone()[0], (name, pattern)
