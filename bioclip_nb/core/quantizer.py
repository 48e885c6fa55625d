"""An optional HNSW coarse quantizer, kept as a cached sidecar beside a large atlas.

Finding a query's nearest IVF cells with the flat quantizer compares it with every centroid
(65,536 x 768 for the published index); an HNSW graph over the centroids finds the same
cells for nearly every query in a fraction of the time (see docs/benchmarks.md). The graph
is built once (``bioclip-nb quantizer``), stored under ``$BIOCLIP_NB_HOME/cache/<atlas>/``
(never inside the atlas) and used by default whenever it is present.
"""

from __future__ import annotations

import time
from pathlib import Path

import faiss

from . import index as ivf

SIDECAR = "quantizer-hnsw32.index"
EF_SEARCH = 128


def sidecar_path(cache_dir: Path) -> Path:
    return cache_dir / SIDECAR


def build_sidecar(index: faiss.Index, cache_dir: Path, m: int = 32, ef_construction: int = 80) -> tuple[Path, float]:
    """Build the HNSW graph over the index's centroids and save it; returns (path, seconds)."""
    t0 = time.perf_counter()
    hnsw = hnsw_over_centroids(index, m, ef_construction)
    seconds = time.perf_counter() - t0
    path = sidecar_path(cache_dir)
    tmp = path.with_suffix(".tmp")
    faiss.write_index(hnsw, str(tmp))
    tmp.replace(path)
    return path, seconds


def use_sidecar(index: faiss.Index, path: Path) -> faiss.Index | None:
    """Swap in the HNSW quantizer at ``path`` if there is one that fits this index; return it
    (the caller keeps a reference for as long as the index lives), or None."""
    ivf_index = ivf.ivf_of(index)
    if ivf_index is None or not path.is_file():
        return None
    try:
        hnsw = faiss.read_index(str(path))
    except RuntimeError:
        return None                         # a broken cache file: keep the flat quantizer
    if hnsw.ntotal != ivf_index.nlist or hnsw.d != ivf_index.d:
        return None
    return swap_in(index, hnsw)


def hnsw_over_centroids(index: faiss.Index, m: int = 32, ef_construction: int = 80) -> faiss.Index:
    """An HNSW graph over an IVF index's centroids (what the sidecar holds)."""
    cents = ivf.centroids(index)
    metric = faiss.METRIC_INNER_PRODUCT if index.metric_type == faiss.METRIC_INNER_PRODUCT else faiss.METRIC_L2
    hnsw = faiss.IndexHNSWFlat(cents.shape[1], m, metric)
    hnsw.hnsw.efConstruction = ef_construction
    hnsw.add(cents)
    return hnsw


def swap_in(index: faiss.Index, hnsw: faiss.Index) -> faiss.Index:
    """Make ``hnsw`` the coarse quantizer of ``index`` (the caller keeps ``hnsw`` alive)."""
    ivf_index = ivf.ivf_of(index)
    faiss.downcast_index(hnsw).hnsw.efSearch = EF_SEARCH
    ivf_index.quantizer = hnsw
    ivf_index.own_fields = False
    return hnsw
