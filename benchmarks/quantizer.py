"""The coarse quantizer over 65,536 x 768 centroids: flat (exact) against HNSW.

Build time, milliseconds per query to find the 16 nearest centroids, and the share of queries
whose 16 probed cells are exactly the flat quantizer's.
"""

from __future__ import annotations

import time

import faiss
import numpy as np

from bioclip_nb.demo import synthetic

from .common import table


def _timed(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, float, float]:
    """Ids for all queries, ms per query in one batch, and median ms for 100 single queries."""
    t0 = time.perf_counter()
    _, ids = index.search(queries, k)
    batch_ms = 1000 * (time.perf_counter() - t0) / len(queries)
    single = []
    for q in queries[:100]:
        t0 = time.perf_counter()
        index.search(q[None], k)
        single.append(time.perf_counter() - t0)
    return ids, batch_ms, 1000 * float(np.median(single))


def run(quick: bool = False, workdir=None) -> dict:
    nlist = 4096 if quick else 65_536
    n_queries = 300 if quick else 1000
    tax = synthetic.make_taxonomy(seed=1)
    cents, _ = synthetic.make_vectors(tax, nlist, seed=1)
    queries, _ = synthetic.make_vectors(tax, n_queries, seed=2)
    nprobe = 16
    t0 = time.perf_counter()
    flat = faiss.IndexFlatL2(cents.shape[1])
    flat.add(cents)
    flat_build = time.perf_counter() - t0
    truth, flat_batch, flat_one = _timed(flat, queries, nprobe)
    rows = [["flat (exact)", flat_build, flat_one, flat_batch, 1.0]]
    t0 = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(cents.shape[1], 32)
    hnsw.hnsw.efConstruction = 80
    hnsw.add(cents)
    hnsw_build = time.perf_counter() - t0
    for ef in (32, 64, 128, 256):
        hnsw.hnsw.efSearch = ef
        got, batch_ms, one_ms = _timed(hnsw, queries, nprobe)
        same = np.mean([set(a) == set(b) for a, b in zip(got, truth)])
        rows.append([f"HNSW32, efSearch {ef}", hnsw_build, one_ms, batch_ms, same])
    md = table(["quantizer", "build s", "ms per query (one at a time)", "ms per query (batch)",
                f"share with the same {nprobe} cells"], rows)
    return {"name": "quantizer", "title": f"Coarse quantizer over {nlist:,} x 768 centroids, {n_queries} queries",
            "markdown": md, "rows": [dict(zip(["quantizer", "build_s", "ms_one", "ms_batch", "same"], r)) for r in rows], "nlist": nlist}


if __name__ == "__main__":
    print(run()["markdown"])
