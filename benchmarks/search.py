"""Search latency and recall@10 against exact search, nprobe 1..256, on a synthetic atlas.

Ours is ``Atlas.search`` (FAISS search + DuckDB metadata for every hit); the baseline is the
raw ``faiss`` ``index.search``. Also reported: the codes scanned per query and the time per
scanned code, used for the 234M extrapolation.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from bioclip_nb import Atlas
from bioclip_nb import index as ivf
from bioclip_nb.config import Settings
from bioclip_nb.demo import build_synthetic, synthetic
from bioclip_nb.insight.explore import exact_neighbours, nprobe_steps

from .common import smoke, table


def atlas_for(n: int, workdir: Path) -> tuple[Path, np.ndarray]:
    """A synthetic atlas of ``n`` vectors (reused if present) and its raw vectors (regenerated)."""
    path = workdir / f"synthetic-{n}"
    if not (path / "atlas.json").is_file():
        build_synthetic(path, n, force=True, progress=False)
    tax = synthetic.make_taxonomy(seed=0)
    vectors, _ = synthetic.make_vectors(tax, n, seed=0)
    return path, vectors


def run(quick: bool = False, workdir: Path | None = None) -> dict:
    n = (20_000 if smoke() else 100_000) if quick else 1_000_000
    n_queries = (20 if smoke() else 50) if quick else 200
    workdir = Path(workdir or tempfile.mkdtemp())
    path, vectors = atlas_for(n, workdir)
    rng = np.random.default_rng(7)
    qids = rng.choice(n, n_queries, replace=False)
    queries = vectors[qids] + rng.normal(0, 0.02, (n_queries, vectors.shape[1])).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    truth = exact_neighbours(vectors, queries, 10)
    del vectors
    atlas = Atlas.open(path, settings=Settings(home=workdir / "home"))
    sizes = ivf.list_sizes(atlas.index)
    ivf_index = ivf.ivf_of(atlas.index)
    _, probes = ivf_index.quantizer.search(queries, min(256, atlas.nlist))
    rows = []
    for nprobe in nprobe_steps(atlas.nlist):
        raw_t, ours_t = [], []
        for q in queries:                         # one query at a time, as the dashboard does
            t0 = time.perf_counter()
            _, ids = ivf.search(atlas.index, q[None], 10, nprobe)
            raw_t.append(time.perf_counter() - t0)
        found = []
        for q in queries:
            t0 = time.perf_counter()
            hits = atlas.search(q, top_n=10, nprobe=nprobe)
            ours_t.append(time.perf_counter() - t0)
            found.append(hits["id"].to_numpy())
        recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])
        codes = float(np.mean([sizes[p[:nprobe]].sum() for p in probes]))
        raw_ms, ours_ms = 1000 * np.median(raw_t), 1000 * np.median(ours_t)
        rows.append([nprobe, recall, raw_ms, ours_ms, ours_ms / raw_ms, codes, 1e6 * raw_ms / max(codes, 1)])
    atlas.close()
    md = table(["nprobe", "recall@10 (vs exact)", "raw faiss ms", "ours ms (with metadata)", "ours / raw",
                "codes scanned", "ns per code"], rows)
    return {"name": "search", "title": f"Search latency and recall, {n:,} vectors ({type(atlas.index).__name__}, "
            f"nlist {atlas.nlist}), {n_queries} queries one at a time, medians", "markdown": md,
            "rows": [dict(zip(["nprobe", "recall", "raw_ms", "ours_ms", "ratio", "codes", "ns_per_code"], r)) for r in rows],
            "nlist": atlas.nlist, "n": n}


if __name__ == "__main__":
    print(run()["markdown"])
