"""How the index found the results: which cells were probed, what deeper search would give,
and a map of the atlas's cells. The numbers here; the pictures in ``plots``.

Derived data that is costly for large atlases (the id -> cell map, the map coordinates) is
cached in the atlas's cache directory.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import faiss
import numpy as np
import pandas as pd

from ..cache import save_array_quietly, write_quietly
from ..core import index as ivf
from ..core import rerank
from ..core.atlas import Atlas
from ..core.fullvectors import normalise

#: Up to this many records, the recall sweep's truth is brute force over the full vectors;
#: above it, the deepest search re-ranked with them (a scan of 234M vectors per query is not
#: something the Plots tab can wait for).
BRUTE_FORCE_LIMIT = 5_000_000


@dataclass(frozen=True)
class ProbeReport:
    """Where one query went."""

    cells: np.ndarray             # nearest cells, closest first
    centroid_distance: np.ndarray
    list_sizes: np.ndarray
    probed: np.ndarray            # bool per cell
    hits_per_cell: np.ndarray     # how many of the final hits came from each cell
    nprobe: int
    top_n: int
    missed_cell: int | None = None        # nearest unprobed cell whose best hit would have entered the top N
    missed_rank: int | None = None        # the rank it would have taken
    missed_distance: float | None = None


def cells_holding(atlas: Atlas, ids: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """For each id, which of ``cells`` holds it (-1 if none of them does): reads only those
    cells' lists, never a map of every id (0.94 GB at 234M records)."""
    ids = np.asarray(ids, dtype=np.int64)
    out = np.full(len(ids), -1, dtype=np.int64)
    for cell in np.asarray(cells, dtype=np.int64):
        if cell < 0:
            continue
        members = ivf.list_ids(atlas.index, int(cell))
        out[(out < 0) & np.isin(ids, members)] = cell
    return out


def probe_report(atlas: Atlas, query: np.ndarray, nprobe: int, hits: pd.DataFrame, top_n: int | None = None,
                 ncells: int | None = None, scope: str = "all", taxon=None) -> ProbeReport:
    """The ``ncells`` nearest cells (default ``nprobe + 8``) of a query, the probed ones, the hits
    per cell, and whether the nearest unprobed cell held a better hit than the last one shown."""
    q = atlas.check_vectors(query)
    p = ivf.probe(atlas.index, q[0], nprobe, ncells or nprobe + 8)
    hit_cells = cells_holding(atlas, hits["id"].to_numpy(dtype=np.int64), p.cells) if len(hits) else np.zeros(0, int)
    per_cell = np.array([(hit_cells == c).sum() for c in p.cells])
    probed = np.arange(len(p.cells)) < p.nprobe
    missed = (None, None, None)
    if p.nprobe < len(p.cells):
        cell = int(p.cells[p.nprobe])
        members = ivf.list_ids(atlas.index, cell)
        bitmap = atlas.bitmap(scope, taxon)
        if bitmap is not None and len(members):
            members = members[ivf.bitmap_contains(bitmap, members)]
        if len(members):
            params = faiss.SearchParametersIVF()
            params.nprobe = p.nprobe + 1           # reaches exactly that one extra cell ...
            params.sel = faiss.IDSelectorBatch(members)   # ... and keeps only its members
            dist, found = atlas.index.search(q, 1, params=params)
            if found[0, 0] >= 0:
                # Rank by similarity (higher is closer for both metrics; raw distances run the
                # other way for inner product).
                sim = float(ivf.similarity_from_distance(dist[0, :1], atlas.metric)[0])
                rank = int((hits["similarity"].to_numpy() >= sim).sum()) + 1
                if rank <= (top_n or len(hits)):      # it would have been shown
                    missed = (cell, rank, float(dist[0, 0]))
    return ProbeReport(p.cells, p.centroid_distance, p.list_sizes, probed, per_cell, p.nprobe, len(hits), *missed)


def nprobe_steps(nlist: int, limit: int = 256) -> list[int]:
    """1, 2, 4, ... up to min(nlist, limit) (always ending there)."""
    top = min(nlist, limit)
    steps = [1]
    while steps[-1] * 2 <= top:
        steps.append(steps[-1] * 2)
    if steps[-1] != top:
        steps.append(top)
    return steps


def exact_neighbours(vectors: np.ndarray, queries: np.ndarray, k: int, allowed: np.ndarray | None = None,
                     chunk: int = 200_000) -> np.ndarray:
    """Exact top-k ids by cosine over full vectors (memory-mapped is fine, any precision: rows
    are normalised as read), optionally masked."""
    best_d = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_i = np.full((len(queries), k), -1, dtype=np.int64)
    for start in range(0, len(vectors), chunk):
        block = normalise(vectors[start:start + chunk])
        sims = queries @ block.T
        if allowed is not None:
            sims[:, ~allowed[start:start + chunk]] = -np.inf
        d = np.concatenate([best_d, sims], axis=1)
        i = np.concatenate([best_i, np.broadcast_to(np.arange(start, start + len(block)), sims.shape)], axis=1)
        top = np.argpartition(-d, k - 1, axis=1)[:, :k]
        best_d, best_i = np.take_along_axis(d, top, 1), np.take_along_axis(i, top, 1)
    return best_i


def recall_sweep(atlas: Atlas, queries: np.ndarray, k: int = 10, nprobes: list[int] | None = None,
                 scope: str = "all", taxon=None, repeat: int = 3) -> pd.DataFrame:
    """recall@k and latency for each nprobe, averaged over the queries.

    ``recall`` ranks by the PQ codes alone; where the atlas has full vectors, ``recall_reranked``
    re-ranks a pool of candidates with them (``rerank``), as ``Atlas.search`` does by default.
    The truth (``df.attrs["truth"]``) is brute force over the full vectors when the atlas has
    them and holds at most :data:`BRUTE_FORCE_LIMIT` records, the deepest search re-ranked with
    them on a larger atlas, else the deepest PQ search. ``reachable`` is the share of the true
    top k lying in the probed cells: what search depth alone can recover.
    """
    q = atlas.check_vectors(queries)
    nprobes = nprobes or nprobe_steps(atlas.nlist)
    bitmap = atlas.bitmap(scope, taxon)
    full = atlas.full_vectors
    truth, kind = _truth(atlas, q, k, max(nprobes), bitmap)
    rows = []
    for nprobe in nprobes:
        times, exact_times = [], []
        for _ in range(repeat):
            _, ids, dt = ivf.timed_search(atlas.index, q, k, nprobe, bitmap)
            times.append(dt)
            if full is not None:
                t0 = time.perf_counter()
                d, pool = ivf.search(atlas.index, q, rerank.pool_size(k, atlas.pool_factor), nprobe, bitmap)
                _, exact_ids, _ = rerank.rerank(q, d, pool, full, k, atlas.metric)
                exact_times.append(time.perf_counter() - t0)
        recall = rerank.recall(ids, truth)
        extra = {} if full is None else {
            "recall_reranked": rerank.recall(exact_ids, truth),
            "ms_per_query_reranked": 1000 * float(np.median(exact_times)) / len(q)}
        reachable = recall
        if atlas.nlist > 1:
            _, probed = ivf.ivf_of(atlas.index).quantizer.search(q, nprobe)
            reachable = np.mean([(cells_holding(atlas, t[t >= 0], p) >= 0).mean() if (t >= 0).any() else 1.0
                                 for t, p in zip(truth, probed)])
        rows.append({"nprobe": nprobe, "recall": float(recall), "reachable": float(reachable),
                     "ms_per_query": 1000 * float(np.median(times)) / len(q), **extra})
    df = pd.DataFrame(rows)
    df.attrs.update({"truth": kind, "k": k, "queries": len(q)})
    return df


def _truth(atlas: Atlas, q: np.ndarray, k: int, deepest: int, bitmap: np.ndarray | None) -> tuple[np.ndarray, str]:
    """The true top ``k`` ids of each query, and how they were found (see :func:`recall_sweep`)."""
    full = atlas.full_vectors
    if full is not None and atlas.count <= BRUTE_FORCE_LIMIT:
        allowed = np.unpackbits(bitmap, bitorder="little")[:atlas.count].astype(bool) if bitmap is not None else None
        if full.present is not None:
            present = np.unpackbits(np.asarray(full.present), bitorder="little")[:atlas.count].astype(bool)
            allowed = present if allowed is None else allowed & present
        return exact_neighbours(full.sequential()[:atlas.count], q, k, allowed), "exact search (full vectors)"
    d, pool = ivf.search(atlas.index, q, rerank.pool_size(k, atlas.pool_factor) if full is not None else k, deepest, bitmap)
    if full is None:
        return pool, f"deepest search (nprobe {deepest})"
    return rerank.rerank(q, d, pool, full, k, atlas.metric)[1], f"deepest search (nprobe {deepest}) re-ranked"


def sample_vectors(atlas: Atlas, n: int, seed: int = 0) -> np.ndarray:
    """``n`` atlas vectors to use as queries: full ones if the atlas has them for every record,
    else decoded from the index."""
    rng = np.random.default_rng(seed)
    full = atlas.full_vectors
    if full is not None and full.present is None:
        return full.get(np.sort(rng.choice(atlas.count, size=min(n, atlas.count), replace=False)))[0]
    index = ivf.ivf_of(atlas.index)
    if index is None:
        return atlas.index.reconstruct_n(0, atlas.count)[rng.choice(atlas.count, size=min(n, atlas.count), replace=False)]
    sizes = ivf.list_sizes(atlas.index)
    cells = rng.choice(len(sizes), size=n, p=sizes / sizes.sum())
    out = np.empty((n, index.d), dtype=np.float32)
    for row, c in enumerate(cells):
        index.reconstruct_from_offset(int(c), int(rng.integers(sizes[c])), faiss.swig_ptr(out[row]))
    return out


@dataclass(frozen=True)
class AtlasMap:
    """2-D positions of the IVF cells (UMAP of the centroids) with their size and dominant taxon."""

    xy: np.ndarray
    sizes: np.ndarray
    labels: list[str | None]
    rank: str
    seconds: float        # how long the layout took when it was computed


def atlas_map(atlas: Atlas, rank: str = "kingdom", per_cell: int = 20, seed: int = 0) -> AtlasMap:
    """UMAP of the IVF centroids, coloured by each cell's dominant ``rank`` (cached per atlas)."""
    xy_path, meta_path = atlas.derived("map-xy.npy"), atlas.derived(f"map-{rank}.json")
    if xy_path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        return AtlasMap(np.load(xy_path), np.asarray(meta["sizes"]), meta["labels"], rank, meta["seconds"])
    cents = ivf.centroids(atlas.index)
    t0 = time.perf_counter()
    xy = layout_2d(cents, seed)
    seconds = time.perf_counter() - t0
    sizes = ivf.list_sizes(atlas.index)
    labels = dominant_labels(atlas, rank, per_cell)
    save_array_quietly(atlas.cache_dir / "map-xy.npy", xy)
    write_quietly(atlas.cache_dir / f"map-{rank}.json",
                  json.dumps({"sizes": sizes.tolist(), "labels": labels, "seconds": seconds}).encode())
    return AtlasMap(xy, sizes, labels, rank, seconds)


def layout_2d(points: np.ndarray, seed: int = 0) -> np.ndarray:
    """UMAP (cosine) to 2-D; tiny inputs fall back to PCA, which UMAP itself needs above ~15 points."""
    if len(points) < 16:
        centred = points - points.mean(0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        return (centred @ vt[:2].T).astype(np.float32)
    import umap
    reducer = umap.UMAP(n_neighbors=min(15, len(points) - 1), metric="cosine", random_state=seed, n_jobs=1)
    return reducer.fit_transform(points).astype(np.float32)


def dominant_labels(atlas: Atlas, rank: str, per_cell: int = 20) -> list[str | None]:
    """The most common ``rank`` among up to ``per_cell`` ids of each cell."""
    index = ivf.ivf_of(atlas.index)
    ids, owner = [], []
    for cell in range(index.nlist):
        got = ivf.list_ids(atlas.index, cell, limit=per_cell)
        if len(got):
            ids.append(got)
            owner.append(np.full(len(got), cell))
    ids, owner = np.concatenate(ids), np.concatenate(owner)
    values = atlas.metadata.sample_column(ids, rank)
    df = pd.DataFrame({"cell": owner, "v": values.to_numpy()}).dropna()
    top = df.groupby("cell")["v"].agg(lambda s: s.value_counts().index[0])
    return [top.get(c) for c in range(index.nlist)]
