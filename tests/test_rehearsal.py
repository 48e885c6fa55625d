"""The quick rehearsal of the published atlas (3M records, IVF65536,PQ16, the published schema):
correctness at the published shape. Timing lives in benchmarks/, not here."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from bioclip_nb import Atlas

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    from benchmarks import scale
    out = tmp_path_factory.mktemp("rehearsal") / "quick"
    scale.build(out, scale.QUICK_RECORDS)
    return out


def test_the_rehearsal_has_the_published_shape(rehearsal):
    info = json.loads((rehearsal / "rehearsal.json").read_text())
    with Atlas.open(rehearsal) as atlas:
        assert atlas.count == info["records"] == 3_000_000 and atlas.nlist == 65_536 and atlas.dim == 768
        assert type(atlas.index).__name__ == "IndexIVFPQ" and atlas.index.pq.M == 16
        counts = atlas.scope_counts()
    assert counts["inat"] / counts["all"] == pytest.approx(0.58, abs=0.01)
    assert counts["url"] / counts["all"] == pytest.approx(0.9999, abs=0.0002)
    assert counts["training"] / counts["all"] == pytest.approx(0.88, abs=0.01)
    sizes = info["list_sizes"]
    assert sizes["max"] > 5 * sizes["median"]                          # skewed like a real index


def test_planted_vectors_are_found_at_rank_one(rehearsal):
    planted, ids = np.load(rehearsal / "planted.npy"), np.load(rehearsal / "planted_ids.npy")
    with Atlas.open(rehearsal) as atlas:
        hits = atlas.search(planted[:100], top_n=5, nprobe=16)
    first = hits[hits["rank"] == 1].sort_values("query")["id"].to_numpy()
    np.testing.assert_array_equal(first, ids[:100])


def test_lookups_use_the_id_index_and_keep_order(rehearsal):
    with Atlas.open(rehearsal) as atlas:
        ids = np.array([2_999_999, 17, 1_500_000, 17])
        plan = atlas.metadata._cursor().execute("EXPLAIN ANALYZE " + atlas.metadata.lookup_sql(np.unique(ids))).fetchall()[0][1]
        rows = atlas.lookup(ids)
    assert "Index Scan" in plan
    assert rows["id"].tolist() == ids.tolist() and rows["genus"].notna().all()
    assert (rows["url"].notna() == rows["has_url"].astype(bool)).all()        # a URL exactly where the record has one
    assert rows.loc[rows["url"].notna(), "url"].str.startswith("https://").all()


def test_taxon_filters_give_full_pages_at_every_share(rehearsal):
    from benchmarks import scale
    planted, cells = np.load(rehearsal / "planted.npy"), np.load(rehearsal / "planted_cells.npy")
    genus_of_cell = scale.cell_plan(scale.QUICK_RECORDS)["genus"]
    with Atlas.open(rehearsal) as atlas:
        for t, name in enumerate(scale.TEST_TAXA):
            outside = planted[genus_of_cell[cells] != t][:20]
            hits = atlas.search(outside, top_n=10, nprobe=16, taxon={"genus": name})
            assert hits.groupby("query").size().reindex(range(20), fill_value=0).eq(10).all(), name
            assert set(hits["genus"]) == {name}


def test_opening_reads_almost_nothing(rehearsal):
    probe = ("import json, psutil, sys\n"
             "from bioclip_nb import index as ivf\n"
             "before = psutil.Process().memory_info().rss\n"
             f"index = ivf.open_index({str(rehearsal / 'faiss' / 'index.index')!r})\n"
             "print(json.dumps((psutil.Process().memory_info().rss - before) / 2**20))")
    grown = json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout)
    assert grown < 100          # MB (13 measured): lists and centroids stay on disk until a search touches them
