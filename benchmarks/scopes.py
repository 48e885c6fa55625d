"""Scoped search: share of full pages and latency, bitmap selector (ours) against over-fetching
3x and filtering afterwards (baseline), for scopes holding about 58%, 10%, 1% and 0.1% of the
vectors, of two kinds: provenance-like (random records, as `url`, `inat` and `training` are
unrelated to what the photo shows; queries from anywhere) and taxon filters (unions of whole
genera; queries from inside the taxon, the easy case for over-fetching).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bioclip_nb import Atlas
from bioclip_nb import index as ivf
from bioclip_nb.config import Settings

from .common import smoke, table
from .search import atlas_for

TOP_N, NPROBE = 10, 16


def _scope(genus: np.ndarray, fraction: float, rng) -> np.ndarray:
    counts = pd.Series(genus).value_counts().sample(frac=1.0, random_state=int(rng.integers(1 << 30)))
    chosen, total = [], 0
    for g, c in counts.items():
        if total >= fraction * len(genus):
            break
        if total + c <= fraction * len(genus) * 1.15 or not chosen:
            chosen.append(g)
            total += c
    return np.isin(genus, chosen)


def run(quick: bool = False, workdir: Path | None = None) -> dict:
    n = (20_000 if smoke() else 100_000) if quick else 1_000_000
    n_queries = (20 if smoke() else 50) if quick else 200
    workdir = Path(workdir or tempfile.mkdtemp())
    path, vectors = atlas_for(n, workdir)
    atlas = Atlas.open(path, settings=Settings(home=workdir / "home"))
    genus = atlas.metadata.sample_column(np.arange(n), "genus").to_numpy()
    rng = np.random.default_rng(3)
    rows = []
    for kind, fraction in [(k, f) for k in ("provenance", "taxon") for f in (0.58, 0.10, 0.01, 0.001)]:
        if kind == "taxon":
            mask = _scope(genus, fraction, rng)
            q = vectors[rng.choice(np.flatnonzero(mask), n_queries)]
        else:
            mask = rng.random(n) < fraction
            q = vectors[rng.choice(n, n_queries)]
        ids = np.flatnonzero(mask)
        bitmap = ivf.ids_to_bitmap(ids, n)
        full_ours, full_base, t_ours, t_base = 0, 0, [], []
        for v in q:
            t0 = time.perf_counter()
            _, got = ivf.search(atlas.index, v[None], TOP_N, NPROBE, bitmap)
            t_ours.append(time.perf_counter() - t0)
            full_ours += int((got[0] >= 0).sum() == TOP_N and mask[got[0]].all())
            t0 = time.perf_counter()
            _, got = ivf.search(atlas.index, v[None], 3 * TOP_N, NPROBE)
            kept = [i for i in got[0] if i >= 0 and mask[i]][:TOP_N]
            t_base.append(time.perf_counter() - t0)
            full_base += int(len(kept) == TOP_N)
        rows.append([kind, f"{mask.mean():.2%}", full_base / n_queries, full_ours / n_queries,
                     1000 * np.median(t_base), 1000 * np.median(t_ours)])
    atlas.close()
    md = table(["scope kind", "share", "full pages: over-fetch 3x", "full pages: bitmap (ours)", "over-fetch ms", "bitmap ms"], rows)
    return {"name": "scopes", "title": f"Scoped search, {n:,} vectors, top {TOP_N}, nprobe {NPROBE}, {n_queries} queries per scope",
            "markdown": md, "rows": [dict(zip(["kind", "share", "full_base", "full_ours", "base_ms", "ours_ms"], r)) for r in rows]}


if __name__ == "__main__":
    print(run()["markdown"])
