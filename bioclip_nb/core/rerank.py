"""Re-ranking: PQ codes find the candidates, the full vectors decide the order.

An IVF-PQ search over 16-byte codes ranks only approximately. :func:`rerank` takes a larger
pool of candidates from the probed cells (:func:`pool_size`), scores each with its full vector
(``fullvectors``) and keeps the best ``k``. A candidate without a full vector keeps its PQ
estimate and is marked inexact; it is placed by that estimate corrected by the query's median
gap between exact and PQ distances over the candidates that have both. (The pool is chosen by
the codes, so the estimates that made it in are the optimistic ones: uncorrected, 1% of records
without a vector took over a third of the places on a test atlas.) Distances stay in FAISS's convention (squared L2 on unit
vectors for the L2 metric, the inner product for IP), so the similarity is computed from them
as before and is now the exact cosine.

How large the pool must be depends on how well the atlas's codes rank its vectors, so it is
measured per atlas (:func:`calibrate`): the smallest of :data:`FACTORS` candidates per result
whose re-ranked top 10 holds at least :data:`TARGET` of what the largest pool returns, at the
atlas's default depth. ``bioclip-nb prepare`` measures it (and ``prepare --embeddings`` after
joining); an atlas of up to :data:`CALIBRATE_ON_OPEN` records measures it on first search.
Measured (docs/benchmarks.md): 10 per result on the demo atlas; on 1M-record synthetic
published-layout atlases, 500 where a species varies mostly along a few dozen directions and
1,000 (the most tried) where it varies equally in all 768, which 16-byte codes cannot resolve.
"""

from __future__ import annotations

import numpy as np

from .fullvectors import FullVectors

#: The fewest candidates re-ranked per query.
MIN_POOL = 100
#: Candidates per result to try, smallest first, when calibrating.
FACTORS = (10, 20, 50, 100, 200, 500, 1000)
#: Candidates re-ranked per result where nothing was measured.
POOL_FACTOR = 50
#: The most candidates re-ranked per query.
MAX_POOL = 20_000
#: The share of the largest pool's top 10 a calibrated pool must keep (0.97 of the true ten is
#: the promise; the largest pool's top 10 itself misses some, and the margin covers queries unlike
#: the calibration's). At 0.98 the 1/k-spectrum synthetic atlas got a pool of 200 per result and
#: recall@10 0.96 at nprobe 16; 500 per result reaches 0.97 (docs/benchmarks.md).
TARGET = 0.99
#: Atlases up to this size calibrate on first search (a second or two); larger ones in ``prepare``.
CALIBRATE_ON_OPEN = 2_000_000


def pool_size(k: int, factor: int = POOL_FACTOR) -> int:
    """How many candidates to take from the index for ``k`` re-ranked results."""
    return int(max(k, min(max(MIN_POOL, int(factor) * int(k)), MAX_POOL)))


def rerank(queries: np.ndarray, dist: np.ndarray, ids: np.ndarray, vectors: FullVectors, k: int,
           metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(distances, ids, exact)`` of shape ``(n, k)``: each query's candidates (``ids``, -1 for
    none) re-scored with their full vectors where they have one (``exact``) and re-ordered,
    best first. ``queries`` are unit float32 rows."""
    n = len(queries)
    out_d = np.full((n, k), np.inf if metric == "l2" else -np.inf, dtype=np.float32)
    out_i = np.full((n, k), -1, dtype=np.int64)
    out_e = np.zeros((n, k), dtype=bool)
    for q in range(n):                      # one query's pool at a time: memory stays at one pool
        found = ids[q] >= 0
        cand = ids[q][found]
        estimate = dist[q][found].astype(np.float32)
        cos, exact = vectors.cosines(cand, queries[q])
        score = estimate.copy()
        score[exact] = (np.maximum(2.0 - 2.0 * cos, 0.0) if metric == "l2" else cos)[exact]
        place = score.copy()
        if exact.any() and not exact.all():
            place[~exact] += np.median(score[exact] - estimate[exact])
        order = np.argsort(place if metric == "l2" else -place, kind="stable")[:k]
        m = len(order)
        out_d[q, :m], out_i[q, :m], out_e[q, :m] = score[order], cand[order], exact[order]
    return out_d, out_i, out_e


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """The mean share of each query's true neighbours (``truth``, -1 padded) that ``found`` holds."""
    return float(np.mean([len(set(a[a >= 0]) & set(t[t >= 0])) / max(1, (t >= 0).sum()) for a, t in zip(found, truth)]))


def calibrate(search_pool, queries: np.ndarray, vectors: FullVectors, metric: str, k: int = 10) -> dict:
    """The smallest pool factor (of :data:`FACTORS`) whose re-ranked top ``k`` keeps at least
    :data:`TARGET` of the largest pool's, for ``queries``. ``search_pool(queries, pool)`` gives
    ``(distances, ids)`` of the index's best ``pool`` candidates at the default depth."""
    dist, ids = search_pool(queries, MAX_POOL)
    _, reference, _ = rerank(queries, dist, ids, vectors, k, metric)
    recalls = {}
    chosen = FACTORS[-1]
    for factor in FACTORS:
        pool = pool_size(k, factor)
        _, got, _ = rerank(queries, dist[:, :pool], ids[:, :pool], vectors, k, metric)
        recalls[factor] = recall(got, reference)
        if recalls[factor] >= TARGET:
            chosen = factor
            break
    return {"factor": int(chosen), "target": TARGET, "k": k, "queries": len(queries), "recall": recalls,
            "reference_pool": MAX_POOL}
