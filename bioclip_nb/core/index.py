"""FAISS: memory-mapped opening, scoped search, and looking inside an IVF index.

Ids are FAISS positions, so a scope is a bitmap over ``0 .. ntotal-1`` (bit ``i`` of byte
``i >> 3``, little-endian within the byte, as ``faiss.IDSelectorBitmap`` reads it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from ..errors import AtlasError
from ..layout import INDEX_FILE

#: Read flags: without ``IO_FLAG_SKIP_PRECOMPUTE_TABLE`` FAISS rebuilds the IVF-PQ precomputed
#: table on every open (measured: 4.9 s and +1.23 GB for ``IVF65536,PQ16``).
SKIP_PRECOMPUTE = getattr(faiss, "IO_FLAG_SKIP_PRECOMPUTE_TABLE", 0)


def open_index(path: str | Path, mmap: bool = True, precompute: bool = False) -> faiss.Index:
    """Read an index; memory-mapped (``IO_FLAG_MMAP_IFC``) unless ``mmap=False``.

    Memory-mapping reads nothing up front: pages of the inverted lists are read when a
    search touches them. The IVF-PQ precomputed table is skipped unless ``precompute``.
    """
    path = Path(path)
    if not path.is_file():
        raise AtlasError(f"FAISS index not found: {path} (expected {INDEX_FILE} in the atlas)")
    flags = (faiss.IO_FLAG_MMAP_IFC if mmap else 0) | (0 if precompute else SKIP_PRECOMPUTE)
    try:
        return faiss.read_index(str(path), flags)
    except RuntimeError as exc:
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        raise AtlasError(
            f"{path} is not a FAISS index we can read ({detail}). The file may be truncated or "
            "corrupt: download it again with `bioclip-nb download`, or rebuild the atlas."
        ) from None


def ivf_of(index: faiss.Index) -> faiss.IndexIVF | None:
    """The IVF part of an index, or None for a flat (exhaustive) index."""
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def nlist_of(index: faiss.Index) -> int:
    """Number of IVF cells; 1 for a flat index."""
    ivf = ivf_of(index)
    return int(ivf.nlist) if ivf is not None else 1


def metric_name(index: faiss.Index) -> str:
    """``"l2"`` or ``"ip"``."""
    return "ip" if index.metric_type == faiss.METRIC_INNER_PRODUCT else "l2"


def similarity_from_distance(distance: np.ndarray, metric: str) -> np.ndarray:
    """Cosine similarity from FAISS distances on unit vectors.

    FAISS returns the squared L2 distance for the L2 metric, so ``cos = 1 - d / 2``;
    for inner product the score already is the cosine.
    """
    distance = np.asarray(distance, dtype=np.float32)
    return distance if metric == "ip" else 1.0 - distance / 2.0


def ids_to_bitmap(ids: np.ndarray, ntotal: int) -> np.ndarray:
    """A packed bitmap (``ceil(ntotal/8)`` bytes) with the bits of ``ids`` set."""
    flags = np.zeros(ntotal, dtype=bool)
    ids = np.asarray(ids, dtype=np.int64)
    flags[ids[(ids >= 0) & (ids < ntotal)]] = True
    return np.packbits(flags, bitorder="little")


def bitmap_count(bitmap: np.ndarray) -> int:
    """Number of set bits."""
    return int(np.unpackbits(bitmap, bitorder="little").sum())


def bitmap_contains(bitmap: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Whether each id's bit is set."""
    ids = np.asarray(ids, dtype=np.int64)
    return ((bitmap[ids >> 3] >> (ids & 7)) & 1).astype(bool)


def search_params(index: faiss.Index, nprobe: int, bitmap: np.ndarray | None) -> faiss.SearchParameters:
    """``SearchParametersIVF`` (or plain ``SearchParameters`` for a flat index) with the scope."""
    sel = faiss.IDSelectorBitmap(bitmap) if bitmap is not None else None
    if ivf_of(index) is not None:
        params = faiss.SearchParametersIVF()
        params.nprobe = int(nprobe)
        # Scan every probed list whole: no early stop that could shorten a scoped page.
        params.max_codes = 0
    else:
        params = faiss.SearchParameters()
    if sel is not None:
        params.sel = sel
    return params


def search(index: faiss.Index, queries: np.ndarray, k: int, nprobe: int,
           bitmap: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(distances, ids)`` of shape ``(n, k)``; id -1 where fewer than k were found."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    params = search_params(index, nprobe, bitmap)
    return index.search(queries, int(k), params=params)


@dataclass(frozen=True)
class Probe:
    """Where one query went in an IVF index."""

    cells: np.ndarray          # nearest cells by centroid distance, closest first
    centroid_distance: np.ndarray
    list_sizes: np.ndarray     # vectors in each of those cells
    nprobe: int                # how many of ``cells`` a search with this setting scans


def probe(index: faiss.Index, query: np.ndarray, nprobe: int, ncells: int | None = None) -> Probe:
    """The ``ncells`` (default ``2 * nprobe``) nearest cells of a query, closest first."""
    ivf = ivf_of(index)
    if ivf is None:
        raise ValueError("a flat index has no cells to probe")
    ncells = min(int(ncells or 2 * nprobe), ivf.nlist)
    q = np.ascontiguousarray(np.asarray(query, dtype=np.float32).reshape(1, -1))
    dist, cells = ivf.quantizer.search(q, ncells)
    sizes = np.array([ivf.invlists.list_size(int(c)) for c in cells[0]], dtype=np.int64)
    return Probe(cells[0].astype(np.int64), dist[0], sizes, min(int(nprobe), ncells))


def list_sizes(index: faiss.Index) -> np.ndarray:
    """The length of every inverted list."""
    ivf = ivf_of(index)
    if ivf is None:
        return np.array([index.ntotal], dtype=np.int64)
    return np.array([ivf.invlists.list_size(i) for i in range(ivf.nlist)], dtype=np.int64)


def list_ids(index: faiss.Index, cell: int, limit: int | None = None) -> np.ndarray:
    """The ids stored in one inverted list (the first ``limit`` of them), as int64."""
    ivf = ivf_of(index)
    if ivf is None:
        raise ValueError("a flat index has no inverted lists")
    size = ivf.invlists.list_size(int(cell))
    if limit is not None:
        size = min(size, int(limit))
    if size == 0:
        return np.zeros(0, dtype=np.int64)
    return faiss.rev_swig_ptr(ivf.invlists.get_ids(int(cell)), size).astype(np.int64, copy=True)


def list_assignment(index: faiss.Index, ntotal: int) -> np.ndarray:  # a reference for tests: costs a map of every id
    """For every id, the cell that holds it (-1 if none): one pass over the lists' ids."""
    ivf = ivf_of(index)
    out = np.full(ntotal, -1, dtype=np.int32)
    if ivf is None:
        out[:] = 0
        return out
    for cell in range(ivf.nlist):
        ids = list_ids(index, cell)
        out[ids[(ids >= 0) & (ids < ntotal)]] = cell
    return out


def centroids(index: faiss.Index) -> np.ndarray:
    """The coarse centroids, ``(nlist, d)`` float32."""
    ivf = ivf_of(index)
    if ivf is None:
        raise ValueError("a flat index has no centroids")
    return ivf.quantizer.reconstruct_n(0, ivf.nlist)


def timed_search(index: faiss.Index, queries: np.ndarray, k: int, nprobe: int,
                 bitmap: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """:func:`search` plus the wall time in seconds."""
    t0 = time.perf_counter()
    d, i = search(index, queries, k, nprobe, bitmap)
    return d, i, time.perf_counter() - t0


def decode(index: faiss.Index, ids: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """The vectors of ``ids`` as the index stores them (PQ codes decoded, plus the cell centroid),
    looked up in ``cells`` (the cells the search scanned) without a map of every id. Rows of
    ids found in none of those cells are NaN."""
    ids = np.asarray(ids, dtype=np.int64).ravel()
    out = np.full((len(ids), index.d), np.nan, dtype=np.float32)
    ivf = ivf_of(index)
    if ivf is None or not len(ids):
        return out
    wanted = {int(i): row for row, i in enumerate(ids)}
    buf = np.empty(index.d, dtype=np.float32)
    for cell in np.asarray(cells, dtype=np.int64).ravel():
        if cell < 0 or not wanted:
            continue
        stored = list_ids(index, int(cell))
        for offset in np.flatnonzero(np.isin(stored, np.fromiter(wanted, dtype=np.int64))):
            ivf.reconstruct_from_offset(int(cell), int(offset), faiss.swig_ptr(buf))
            out[wanted.pop(int(stored[offset]))] = buf
    return out
