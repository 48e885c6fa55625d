"""The exploration plots draw what they claim, on the demo atlas and on a million vectors."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from helpers.atlases import build_synthetic_atlas

from bioclip_nb import Atlas, explore, plots
from bioclip_nb import index as ivf
from bioclip_nb.core import rerank
from bioclip_nb.encoders import Prediction
from bioclip_nb.layout import Rank


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def ivfflat(tmp_path_factory):
    built = build_synthetic_atlas(tmp_path_factory.mktemp("ivfflat") / "a", 20_000, "IVF64,Flat",
                                  published_layout=False, keep_vectors=True)
    return built


def _query_with_miss(atlas, queries, nprobe=1, top_n=10):
    for q in queries:
        hits = atlas.search(q, top_n=top_n, nprobe=nprobe)
        rep = explore.probe_report(atlas, q, nprobe, hits, top_n=top_n)
        if rep.missed_cell is not None:
            return q, hits, rep
    raise AssertionError("no query had a better match in the next cell")


@pytest.mark.slow      # builds the 10,070-drawing demo atlas (about 2 minutes)
def test_cluster_assignment_marks_probed_cells_and_hits(demo_atlas):
    with Atlas.open(demo_atlas) as atlas:
        q = explore.sample_vectors(atlas, 1, seed=3)[0]
        hits = atlas.search(q, top_n=10, nprobe=4)
        rep = explore.probe_report(atlas, q, 4, hits, top_n=10)
    assert rep.probed.sum() == 4 and rep.probed[:4].all() and len(rep.cells) == 12
    assert rep.hits_per_cell[~rep.probed].sum() == 0 and rep.hits_per_cell.sum() == 10
    assert (np.diff(rep.centroid_distance) >= 0).all()
    ax = plots.cluster_assignment(rep)
    bars = list(ax.patches)
    assert len(bars) == 2 * len(rep.cells)
    sizes = [b.get_height() for b in bars[:len(rep.cells)]]
    assert sizes == list(rep.list_sizes)
    probed_colour = bars[0].get_facecolor()
    assert all((b.get_facecolor() == probed_colour) == p for b, p in zip(bars[:len(rep.cells)], rep.probed))
    assert [b.get_height() for b in bars[len(rep.cells):]] == list(rep.hits_per_cell)


def test_missed_cell_is_called_out(ivfflat):
    with Atlas.open(ivfflat.path) as atlas:
        q, hits, rep = _query_with_miss(atlas, ivfflat.vectors[:400:3])
        # the claim is true: searching one cell deeper puts that match at that rank
        deeper = atlas.search(q, top_n=10, nprobe=2)
    assert rep.missed_rank <= 10
    assert deeper["distance"].iloc[rep.missed_rank - 1] == pytest.approx(rep.missed_distance, abs=1e-5)
    ax = plots.cluster_assignment(rep)
    assert any(f"would be #{rep.missed_rank}" in t.get_text() for t in ax.texts)


def test_recall_is_monotone_with_exact_truth(ivfflat):
    with Atlas.open(ivfflat.path) as atlas:
        sweep = explore.recall_sweep(atlas, explore.sample_vectors(atlas, 60), k=10)
    assert sweep.attrs["truth"] == "exact search (full vectors)"
    assert list(sweep["nprobe"]) == [1, 2, 4, 8, 16, 32, 64]
    assert (np.diff(sweep["recall"]) >= -1e-12).all() and (np.diff(sweep["reachable"]) >= -1e-12).all()
    assert sweep["recall"].iloc[-1] == pytest.approx(1.0)   # all cells of a flat-list IVF = exact
    ax = plots.nprobe_recall(sweep, current=8)
    line = ax.get_lines()[0]
    assert list(line.get_ydata()) == list(sweep["recall"]) and "exact search" in ax.get_title()
    assert any(abs(ln.get_xdata()[0] - 8) < 1e-9 for ln in ax.get_lines()[1:] if len(ln.get_xdata()) == 2)


@pytest.mark.slow      # builds the 10,070-drawing demo atlas (about 2 minutes)
def test_recall_on_demo_pq_atlas(demo_atlas):
    with Atlas.open(demo_atlas) as atlas:
        sweep = explore.recall_sweep(atlas, explore.sample_vectors(atlas, 50), k=10)
        queries = explore.sample_vectors(atlas, 50)
        # "reachable" recomputed independently at nprobe 4: the share of the exact top 10 whose
        # cell is among the query's 4 nearest cells
        truth = explore.exact_neighbours(np.load(demo_atlas / "vectors.npy", mmap_mode="r"), queries, 10)
        cells = ivf.list_assignment(atlas.index, atlas.count)      # every id's cell, the slow way
        _, nearest = atlas.index.quantizer.search(queries, 4)
        expected = np.mean([np.isin(cells[t], n).mean() for t, n in zip(truth, nearest)])
        # recall at nprobe 4, PQ codes alone and re-ranked, recomputed independently
        _, pq = ivf.search(atlas.index, queries, 10, 4)
        d, pool = ivf.search(atlas.index, queries, rerank.pool_size(10, atlas.pool_factor), 4)
        exact = rerank.rerank(queries, d, pool, atlas.full_vectors, 10, atlas.metric)[1]
    assert sweep.attrs["truth"] == "exact search (full vectors)"          # the demo keeps its raw vectors
    at4 = sweep.set_index("nprobe").loc[4]
    assert at4["recall"] == pytest.approx(np.mean([len(set(a) & set(t)) / 10 for a, t in zip(pq, truth)]))
    assert at4["recall_reranked"] == pytest.approx(np.mean([len(set(a) & set(t)) / 10 for a, t in zip(exact, truth)]))
    assert (np.diff(sweep["reachable"]) >= -1e-12).all()
    assert sweep.set_index("nprobe").loc[4, "reachable"] == pytest.approx(expected)
    assert sweep["reachable"].iloc[0] < 1                    # one cell does not hold every true neighbour
    ax = plots.nprobe_recall(sweep, current=16)
    assert ax.get_ylim()[0] == 0


@pytest.mark.slow      # builds the 10,070-drawing demo atlas (about 2 minutes)
def test_atlas_map_on_demo(demo_atlas):
    with Atlas.open(demo_atlas) as atlas:
        amap = explore.atlas_map(atlas, rank="kingdom")
        again = explore.atlas_map(atlas, rank="kingdom")       # cached
        q = explore.sample_vectors(atlas, 1, seed=1)[0]
        hits = atlas.search(q, top_n=10, nprobe=4)
        rep = explore.probe_report(atlas, q, 4, hits)
        cells = np.unique(ivf.list_assignment(atlas.index, atlas.count)[hits["id"].to_numpy()])
    assert amap.xy.shape == (atlas.nlist, 2) and np.isfinite(amap.xy).all()
    np.testing.assert_array_equal(amap.xy, again.xy)
    assert {"Animalia", "Plantae", "Fungi"} <= set(filter(None, amap.labels))
    ax = plots.atlas_map(amap, rep.cells[rep.probed], cells, amap.xy[rep.cells[0]])
    offsets = ax.collections[0].get_offsets()
    assert len(offsets) == atlas.nlist
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "Animalia" in labels and "query" in labels and "probed cells" in labels


def test_prediction_bars():
    preds = [Prediction(Rank.SPECIES, "Vulpes vulpes", (), 0.7), Prediction(Rank.SPECIES, None, (), 0.2)]
    ax = plots.prediction_bars(preds)
    assert [round(b.get_width(), 3) for b in ax.patches] == [0.2, 0.7]
    assert "(no species name)" in [t.get_text() for t in ax.get_yticklabels()]
    assert plots.to_png(ax).startswith(b"\x89PNG")


@pytest.mark.slow
def test_plots_on_a_million_vectors(million_atlas):
    with Atlas.open(million_atlas) as atlas:
        assert atlas.count == 1_000_000
        queries = explore.sample_vectors(atlas, 40, seed=5)
        hits = atlas.search(queries[0], top_n=10, nprobe=8)
        rep = explore.probe_report(atlas, queries[0], 8, hits, top_n=10)
        sweep = explore.recall_sweep(atlas, queries, k=10, repeat=1)
        amap = explore.atlas_map(atlas, rank="kingdom")
        # recall at nprobe 8 recomputed independently against the deepest search
        deepest = int(sweep["nprobe"].max())
        _, found = ivf.search(atlas.index, atlas.check_vectors(queries), 10, 8)
        _, truth = ivf.search(atlas.index, atlas.check_vectors(queries), 10, deepest)
        expected = np.mean([len(set(a) & set(t)) / 10 for a, t in zip(found, truth)])
    assert rep.probed.sum() == 8 and rep.hits_per_cell.sum() == 10
    assert sweep.attrs["truth"] == f"deepest search (nprobe {deepest})"
    assert sweep.set_index("nprobe").loc[8, "recall"] == pytest.approx(expected)
    assert sweep["recall"].iloc[0] < sweep["recall"].iloc[-1]     # depth matters at this scale
    assert len(plots.cluster_assignment(rep).patches) == 2 * len(rep.cells)
    assert "deepest search" in plots.nprobe_recall(sweep, current=8).get_title()
    assert len(plots.atlas_map(amap).collections[0].get_offsets()) == atlas.nlist
