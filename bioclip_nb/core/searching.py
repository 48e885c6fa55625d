"""How ``Atlas.search`` runs: probe the cells, re-rank with the full vectors, fold copies,
attach the metadata.

The functions take the open :class:`~bioclip_nb.core.atlas.Atlas` (typed by the ``Searchable``
protocol below) whose index, derived data and metadata they use; ``Atlas.search`` validates the
request and calls them.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd

from ..layout import RESULT_COLUMNS
from . import folding, probing, rerank
from . import index as ivf
from .fullvectors import FullVectors
from .metadata import hit_frame


class Searchable(Protocol):
    """What these functions use of ``core.atlas.Atlas`` (named here, not imported: the atlas
    imports this module)."""

    index: object
    nlist: int
    metric: str
    centroids: np.ndarray
    pool_factor: int
    same_image: float

    def cells_in(self, key: str, bitmap: np.ndarray) -> np.ndarray: ...

    def lookup_values(self, ids: np.ndarray) -> dict[str, np.ndarray]: ...

    def hit_vectors(self, ids: np.ndarray, query: np.ndarray, cells) -> np.ndarray: ...


#: A scope holding records in at least this share of the cells is searched the ordinary way first.
LARGE_SCOPE = 0.5


def candidates(atlas: Searchable, queries: np.ndarray, k: int, nprobe: int, bitmap: np.ndarray | None, key: str,
               full: FullVectors | None, want_cells: bool = False):
    """``(distances, ids, exact, cells scanned per query, cells)``: the best ``k`` per query,
    from the PQ codes alone or, with ``full``, re-ranked from a larger pool."""
    pool = k if full is None else rerank.pool_size(k, atlas.pool_factor)
    dist, ids, scanned, cells = probe(atlas, queries, k, nprobe, bitmap, key, want_cells, pool=pool)
    if full is None:
        return dist, ids, np.zeros(ids.shape, dtype=bool), scanned, cells
    dist, ids, known = rerank.rerank(queries, dist, ids, full, k, atlas.metric)
    return dist, ids, known, scanned, cells


def search_folded(atlas: Searchable, queries: np.ndarray, top_n: int, nprobe: int, bitmap: np.ndarray | None, key: str,
                  batch: bool, full: FullVectors | None) -> tuple[pd.DataFrame, np.ndarray, float]:
    """Search with copies folded (``folding.refill``: more candidates until every page holds
    ``top_n`` distinct images). Returns the hits, the cells each query scanned, and when
    searching ended."""
    def more(todo: np.ndarray, asked: int):
        dist, ids, known, scanned, cells = candidates(atlas, queries[todo], asked, nprobe, bitmap, key, full,
                                                      want_cells=True)
        return hits(atlas, dist, ids, True, scanned, known), scanned, cells

    def vectors(ids: np.ndarray, q: int, cells) -> np.ndarray:
        return atlas.hit_vectors(ids, queries[q], nprobe if cells is None else cells)

    found, depth, t_search = folding.refill(len(queries), top_n, more, vectors, atlas.same_image)
    if not batch:
        copies = found.attrs["copies"]
        found = found.drop(columns="query")
        found.attrs["copies"] = copies
    return found, depth, t_search


def probe(atlas: Searchable, queries: np.ndarray, top_n: int, nprobe: int, bitmap: np.ndarray | None,
          key: str, want_cells: bool = False,
          pool: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """``(distances, ids, cells scanned per query, the cells scanned)``: ``pool`` (default
    ``top_n``) candidates per query; the depth is chosen to fill ``top_n``. Unscoped, and for
    scopes that fill most cells, the query's nearest ``nprobe`` cells; a page that comes
    back short, and every smaller scope, scans the scope's own cells nearest first
    (``probing``), as many as a full page needs. The cells are None for an ordinary search
    unless ``want_cells`` (then its one quantizer search is made here and kept)."""
    n = len(queries)
    k = pool or top_n
    flat = atlas.nlist <= 1
    counts = None if bitmap is None or flat else atlas.cells_in(key, bitmap)
    if counts is None or np.count_nonzero(counts) >= LARGE_SCOPE * atlas.nlist:
        if want_cells and not flat:
            nearest = probing.nearest(atlas.index, queries, nprobe)
            dist, ids = probing.search(atlas.index, queries, k, nearest, bitmap)
            scanned, cells = nearest.scanned, nearest.cells
        else:
            dist, ids = ivf.search(atlas.index, queries, k, nprobe, bitmap)
            scanned, cells = np.full(n, 1 if flat else nprobe, dtype=np.int64), None
        if counts is None or ((ids >= 0).sum(axis=1) >= min(top_n, int(counts.sum()))).all():
            return dist, ids, scanned, cells
    plan = probing.plan(queries, atlas.centroids, counts, nprobe, top_n, atlas.metric)
    dist, ids = probing.search(atlas.index, queries, k, plan, bitmap)
    return dist, ids, plan.scanned, plan.cells


def hits(atlas: Searchable, dist: np.ndarray, ids: np.ndarray, batch: bool, scanned: np.ndarray,
         exact: np.ndarray) -> pd.DataFrame:
    """The hits as a frame of ``RESULT_COLUMNS`` (and ``query`` for a batch), metadata attached."""
    qn, rank = np.nonzero(ids >= 0)                   # row-major: already by query, then rank
    found = ids[qn, rank].astype(np.int64)
    distance = dist[qn, rank].astype(np.float32)
    columns = {"query": qn.astype(np.int64)} if batch else {}
    columns.update({"rank": (rank + 1).astype(np.int64), "id": found, "distance": distance,
                    "similarity": ivf.similarity_from_distance(distance, atlas.metric),
                    "exact": exact[qn, rank].astype(bool)})
    columns.update(atlas.lookup_values(found))
    columns["cells_scanned"] = scanned[qn].astype(np.int64)
    order = (["query"] if batch else []) + list(RESULT_COLUMNS)
    return hit_frame({c: columns[c] for c in order})
