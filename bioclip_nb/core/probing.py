"""Scope-aware probing: a scoped search scans the cells that hold in-scope records, nearest
first, until it has scanned at least ``nprobe`` of them *and* they hold at least ``top_n``
in-scope records.

An IVF index finds a query's nearest cells and scans only those. With a scope or a taxon
filter that is wrong for small scopes: a genus lives in a few cells, usually not the query's
nearest, so the page came back empty. Here the cells come from the scope itself:

* :func:`cell_counts` counts each cell's in-scope records in one pass over the inverted
  lists' ids (the atlas caches it per scope and taxon);
* :func:`plan` orders the in-scope cells by their centroid's distance to the query and takes
  them nearest first, as many as ``nprobe`` and as many more as a full page needs;
* :func:`search` hands those cells to FAISS (``search_preassigned``) with the scope's bitmap.

So a page is full whenever the scope holds ``top_n`` records; a tiny scope scans all of its
cells (exact within the scope's codes); a large one scans the query's nearest cells, as the
ordinary search does.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

from . import index as ivf


def cell_counts(index: faiss.Index, bitmap: np.ndarray) -> np.ndarray:
    """In-scope records per cell (``int64``, one per cell): one pass over the lists' ids."""
    nlist = ivf.nlist_of(index)
    counts = np.zeros(nlist, dtype=np.int64)
    for cell in range(nlist):
        ids = ivf.list_ids(index, cell)
        if len(ids):
            counts[cell] = int(ivf.bitmap_contains(bitmap, ids).sum())
    return counts


def centroid_table(index: faiss.Index) -> np.ndarray:
    """The coarse centroids ``(nlist, d)``: a view of the quantizer's own storage when it is a
    flat or HNSW-flat index (no copy), else reconstructed."""
    quantizer = faiss.downcast_index(ivf.ivf_of(index).quantizer)
    storage = getattr(quantizer, "storage", None)
    flat = faiss.downcast_index(storage) if storage is not None else quantizer
    if isinstance(flat, faiss.IndexFlat):
        return faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * flat.d).reshape(flat.ntotal, flat.d)
    return ivf.centroids(index)


@dataclass(frozen=True)
class Plan:
    """The cells each query scans, nearest first, padded with -1; and their centroid distances."""

    cells: np.ndarray          # (n, width) int64
    distances: np.ndarray      # (n, width) float32
    scanned: np.ndarray        # (n,) how many cells each query scans


def plan(queries: np.ndarray, centroids: np.ndarray, counts: np.ndarray, nprobe: int, top_n: int,
         metric: str = "l2") -> Plan:
    """For each query: the in-scope cells nearest first, at least ``nprobe`` of them and enough
    to hold ``top_n`` in-scope records (or all of them)."""
    cells = np.flatnonzero(counts)
    n = len(queries)
    if len(cells) == 0:
        return Plan(np.full((n, 1), -1, np.int64), np.zeros((n, 1), np.float32), np.zeros(n, np.int64))
    sub = np.asarray(centroids[cells], dtype=np.float32)
    scores = queries @ sub.T                                       # (n, |cells|)
    if metric == "ip":                                              # larger is nearer
        dist, order = scores, np.argsort(-scores, axis=1, kind="stable")
    else:
        dist = (queries * queries).sum(1, keepdims=True) + (sub * sub).sum(1)[None, :] - 2 * scores
        order = np.argsort(dist, axis=1, kind="stable")
    chosen: list[np.ndarray] = []
    for row in range(n):
        ranked = order[row]
        held = np.cumsum(counts[cells[ranked]])
        enough = int(np.searchsorted(held, top_n)) + 1               # cells needed for a full page
        chosen.append(ranked[:min(len(ranked), max(int(nprobe), enough))])
    width = max(len(c) for c in chosen)
    out_cells = np.full((n, width), -1, dtype=np.int64)
    out_dist = np.zeros((n, width), dtype=np.float32)
    for row, pick in enumerate(chosen):
        out_cells[row, :len(pick)] = cells[pick]
        out_dist[row, :len(pick)] = dist[row, pick]
    return Plan(out_cells, out_dist, np.array([len(c) for c in chosen], dtype=np.int64))


def nearest(index: faiss.Index, queries: np.ndarray, nprobe: int) -> Plan:
    """The plan an ordinary search follows: each query's ``nprobe`` nearest cells (one
    quantizer search, so a caller that needs the cells does not search the quantizer twice)."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    coarse, cells = ivf.ivf_of(index).quantizer.search(queries, int(nprobe))
    return Plan(cells.astype(np.int64), coarse.astype(np.float32), np.full(len(queries), int(nprobe), dtype=np.int64))


def search(index: faiss.Index, queries: np.ndarray, k: int, the_plan: Plan,
           bitmap: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``(distances, ids)`` scanning exactly the planned cells, keeping only in-scope ids
    (every id when ``bitmap`` is None)."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    cells = np.ascontiguousarray(the_plan.cells, dtype=np.int64)
    coarse = np.ascontiguousarray(the_plan.distances, dtype=np.float32)
    params = faiss.SearchParametersIVF()
    params.nprobe = int(cells.shape[1])          # the width of the plan (-1 pads are skipped)
    params.max_codes = 0
    if bitmap is not None:
        params.sel = faiss.IDSelectorBitmap(bitmap)
    n = len(queries)
    dist = np.empty((n, k), dtype=np.float32)
    ids = np.empty((n, k), dtype=np.int64)
    # The Python wrapper refuses search parameters here; the C++ method takes them.
    ivf.ivf_of(index).search_preassigned_c(n, faiss.swig_ptr(queries), int(k), faiss.swig_ptr(cells),
                                           faiss.swig_ptr(coarse), faiss.swig_ptr(dist), faiss.swig_ptr(ids),
                                           False, params)
    return dist, ids
