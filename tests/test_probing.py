"""Scope-aware probing: a taxon filter or a small scope returns a full page for any query."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.atlases import build_synthetic_atlas

from bioclip_nb import Atlas
from bioclip_nb import index as ivf
from bioclip_nb.core import probing
from bioclip_nb.insight.explore import exact_neighbours


@pytest.fixture(scope="module")
def flat_lists(tmp_path_factory):
    """40,000 vectors, IVF256,Flat (raw vectors in the lists: distances are exact), published layout."""
    return build_synthetic_atlas(tmp_path_factory.mktemp("probing") / "atlas", 40_000, "IVF256,Flat", seed=3)


@pytest.fixture(scope="module")
def opened(flat_lists):
    with Atlas.open(flat_lists.path) as atlas:
        yield atlas


def _small_genus(records, low=0.004, high=0.01):
    share = records["genus"].value_counts(normalize=True)
    return share[(share > low) & (share < high)].index[0]


def _outside_queries(built, genus, n=50, seed=0):
    """Query vectors of many other species (none of the genus)."""
    rng = np.random.default_rng(seed)
    others = built.records.index[built.records["genus"] != genus].to_numpy()
    return built.vectors[rng.choice(others, n, replace=False)]


def test_a_small_genus_gives_every_query_a_full_page(opened, flat_lists):
    genus = _small_genus(flat_lists.records)
    in_genus = int((flat_lists.records["genus"] == genus).sum())
    queries = _outside_queries(flat_lists, genus)
    today = ivf.search(opened.index, opened.check_vectors(queries), 10, 16, opened.bitmap("all", {"genus": genus}))[1]
    short_today = int(((today >= 0).sum(axis=1) < 10).sum())
    hits = opened.search(queries, top_n=10, nprobe=16, taxon={"genus": genus})
    pages = hits.groupby("query").size()
    assert len(pages) == 50 and pages.eq(min(10, in_genus)).all()     # every page full ...
    assert set(hits["genus"]) == {genus}                              # ... with members only
    assert short_today > 0, "the fixture should show today's short pages"
    ncells = int(np.count_nonzero(opened.cell_counts("all", {"genus": genus})))
    assert (hits.groupby("query")["cells_scanned"].first() == min(16, ncells)).all()


def test_scanning_all_of_a_tiny_scopes_cells_is_exact(opened, flat_lists):
    genus = _small_genus(flat_lists.records)
    members = flat_lists.records.index[flat_lists.records["genus"] == genus].to_numpy()
    counts = opened.cell_counts("all", {"genus": genus})
    assert counts.sum() == len(members)
    ncells = int(np.count_nonzero(counts))
    queries = _outside_queries(flat_lists, genus, n=20, seed=1)
    hits = opened.search(queries, top_n=10, nprobe=ncells, taxon={"genus": genus})   # all of its cells
    allowed = np.zeros(len(flat_lists.vectors), bool)
    allowed[members] = True
    truth = exact_neighbours(flat_lists.vectors, opened.check_vectors(queries), 10, allowed)
    for q, group in hits.groupby("query"):
        assert group["id"].tolist() == truth[q].tolist()              # the exact nearest members, in order
        assert group["cells_scanned"].iloc[0] == ncells


def test_a_tiny_provenance_scope_fills_pages(opened, flat_lists):
    genus = _small_genus(flat_lists.records)
    n_in = ivf.bitmap_count(opened.bitmap("inat", {"genus": genus}))      # iNaturalist photos of one genus
    assert 0 < n_in < 200
    hits = opened.search(_outside_queries(flat_lists, genus, n=30), top_n=10, nprobe=4, scope="inat",
                         taxon={"genus": genus})
    assert hits.groupby("query").size().eq(min(10, n_in)).all()
    assert hits["has_url"].all() and set(hits["publisher"]) == {"iNaturalist.org"}


def test_a_large_scope_is_the_ordinary_search(opened, flat_lists):
    queries = flat_lists.vectors[:20]
    hits = opened.search(queries, top_n=10, nprobe=8, scope="url")
    dist, ids = ivf.search(opened.index, opened.check_vectors(queries), 10, 8, opened.bitmap("url"))
    assert hits.groupby("query")["id"].apply(list).tolist() == [list(r) for r in ids]
    assert (hits["cells_scanned"] == 8).all()


def test_cell_counts_are_cached_with_the_derived_data(opened, bioclip_home):
    counts = opened.cell_counts("inat")
    assert counts.sum() == ivf.bitmap_count(opened.bitmap("inat")) and len(counts) == opened.nlist
    assert list((bioclip_home / "cache" / opened.fingerprint).glob("cells-*.npy"))
    assert opened.cell_counts("all") is None


def test_the_plan_takes_cells_nearest_first_until_the_page_is_full():
    centroids = np.array([[0, 0], [1, 0], [2, 0], [3, 0], [10, 0]], dtype=np.float32)
    counts = np.array([0, 2, 0, 5, 100])
    q = np.array([[0.1, 0.0]], dtype=np.float32)
    plan = probing.plan(q, centroids, counts, nprobe=1, top_n=6)
    assert plan.cells[0, :plan.scanned[0]].tolist() == [1, 3]            # 2 + 5 >= 6; empty cells skipped
    plan = probing.plan(q, centroids, counts, nprobe=1, top_n=200)
    assert plan.cells[0].tolist() == [1, 3, 4]                           # the whole scope: 107 < 200
    plan = probing.plan(q, centroids, counts, nprobe=3, top_n=1)
    assert plan.cells[0].tolist() == [1, 3, 4]                           # at least nprobe cells
    d = plan.distances[0]
    assert np.all(np.diff(d) > 0) and d[0] == pytest.approx(0.81)       # squared L2 to the centroids


@pytest.mark.parametrize("rank", ["genus", "family"])
def test_taxon_pages_are_full_on_the_published_layout(published_atlas, rank):
    """The issue's case on the published-layout fixture (IVF-PQ): a small taxon, 50 queries
    from other species, top 10 at the default depth: every page full, every hit in the taxon."""
    records = published_atlas.records
    share = records[rank].value_counts(normalize=True)
    name = share[(share > 0.002) & (share < 0.01)].index[0]
    outside = records.index[records[rank] != name].to_numpy()
    queries = published_atlas.vectors[np.random.default_rng(4).choice(outside, 50, replace=False)]
    with Atlas.open(published_atlas.path) as atlas:
        hits = atlas.search(queries, top_n=10, nprobe=16, taxon={rank: name})
    assert hits.groupby("query").size().reindex(range(50), fill_value=0).eq(10).all()
    assert set(hits[rank]) == {name}


def test_cell_counts_kept_in_memory_are_bounded(opened, flat_lists, monkeypatch):
    import bioclip_nb.core.derived as derived
    monkeypatch.setattr(derived, "MEMORY_BYTES", 3 * opened.nlist * 8)     # room for three
    kept = []
    for genus in flat_lists.records["genus"].unique()[:8]:
        opened.cell_counts("all", {"genus": genus})
        kept.append(len(opened.data._memory["cells"]))
    assert max(kept) == 3 and kept[-1] == 3                                  # it filled up, then held
