"""The coarse quantizer over 65,536 x 768 centroids: flat (exact) against HNSW.

Build time, milliseconds per query to find the 16 nearest centroids, and the share of queries
whose 16 probed cells are exactly the flat quantizer's.
"""

from __future__ import annotations

import time

import faiss
import numpy as np

from bioclip_nb import synthetic

from .common import table


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
    t0 = time.perf_counter()
    _, truth = flat.search(queries, nprobe)
    flat_ms = 1000 * (time.perf_counter() - t0) / n_queries
    single = []
    for q in queries[:100]:
        t0 = time.perf_counter()
        flat.search(q[None], nprobe)
        single.append(time.perf_counter() - t0)
    flat_ms_one = 1000 * float(np.median(single))
    rows = [["flat (exact)", flat_build, flat_ms_one, flat_ms, 1.0]]
    t0 = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(cents.shape[1], 32)
    hnsw.hnsw.efConstruction = 80
    hnsw.add(cents)
    hnsw_build = time.perf_counter() - t0
    for ef in (32, 64, 128, 256):
        hnsw.hnsw.efSearch = ef
        t0 = time.perf_counter()
        _, got = hnsw.search(queries, nprobe)
        batch_ms = 1000 * (time.perf_counter() - t0) / n_queries
        single = []
        for q in queries[:100]:
            t0 = time.perf_counter()
            hnsw.search(q[None], nprobe)
            single.append(time.perf_counter() - t0)
        same = np.mean([set(a) == set(b) for a, b in zip(got, truth)])
        rows.append([f"HNSW32, efSearch {ef}", hnsw_build, 1000 * float(np.median(single)), batch_ms, same])
    md = table(["quantizer", "build s", "ms per query (one at a time)", "ms per query (batch)",
                f"share with the same {nprobe} cells"], rows)
    return {"name": "quantizer", "title": f"Coarse quantizer over {nlist:,} x 768 centroids, {n_queries} queries",
            "markdown": md, "rows": [dict(zip(["quantizer", "build_s", "ms_one", "ms_batch", "same"], r)) for r in rows], "nlist": nlist}


if __name__ == "__main__":
    print(run()["markdown"])
