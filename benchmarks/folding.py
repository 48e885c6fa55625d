"""Folding copies of one image: how many of the top 20 fold, and what folding costs, on the
demo atlas (raw vectors kept) and the 234M rehearsal (PQ codes only, like the published one).

    python -m benchmarks.folding [--quick]

Baseline: the same queries searched without folding, in the same run. The demo's queries are
its held-out photos encoded with its model; the rehearsal's are its planted vectors.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bioclip_nb import Atlas, load_encoder
from bioclip_nb.config import Settings
from bioclip_nb.layout import PIXEL_MODEL, QUERIES_DIR

from . import demo_baseline, scale
from .common import smoke, table

TOP_N, NPROBE = 20, 16


def measure(atlas_path: Path, queries: np.ndarray, label: str, home: Path | None = None) -> dict:
    """Fold rate in the unfolded top 20, and per-query latency with and without folding (each
    query searched once untimed first, so neither way pays for reading its cells from disk)."""
    settings = Settings(home=home or Path(tempfile.mkdtemp(prefix="bioclip-fold-")))
    with Atlas.open(atlas_path, settings=settings) as atlas:
        nprobe = min(NPROBE, atlas.nlist)
        atlas.search(queries[:2], top_n=TOP_N, nprobe=nprobe, fold=True)         # warm the pages both use
        plain_ms, folded_ms, folded_hits, with_copy, short = [], [], 0, 0, 0
        for q in queries:
            atlas.search(q, top_n=TOP_N, nprobe=nprobe)     # the query's cells and rows in memory for both
            t0 = time.perf_counter()
            plain = atlas.search(q, top_n=TOP_N, nprobe=nprobe)
            t1 = time.perf_counter()
            folded = atlas.search(q, top_n=TOP_N, nprobe=nprobe, fold=True)
            t2 = time.perf_counter()
            plain_ms.append(1000 * (t1 - t0))
            folded_ms.append(1000 * (t2 - t1))
            kept = set(folded["id"])
            folded_away = sum(1 for i in plain["id"] if i not in kept and any(
                i in {c["id"] for c in copies} for copies in folded.attrs["copies"].values()))
            folded_hits += folded_away
            with_copy += bool(folded_away)
            short += len(folded) < min(TOP_N, len(plain))
        n = len(queries)
        return {"atlas": label, "records": atlas.count, "raw_vectors": (atlas.path / "vectors.npy").is_file(),
                "queries": n, "fold_rate": folded_hits / (n * TOP_N), "queries_with_copies": with_copy / n,
                "short_pages": short, "ms_plain": round(statistics.median(plain_ms), 2),
                "ms_folded": round(statistics.median(folded_ms), 2)}


def demo_queries(demo: Path) -> np.ndarray:
    """The demo's held-out photos, encoded as a user's uploads would be."""
    import pandas as pd
    files = pd.read_csv(demo / QUERIES_DIR / "index.csv")["file"]
    encoder = load_encoder(PIXEL_MODEL)
    return encoder.embed([Image.open(demo / QUERIES_DIR / f).convert("RGB") for f in files])


def run(quick: bool = False, workdir: Path | None = None) -> dict:
    """The suite's entry: the demo atlas (built in ``workdir`` if needed) and the rehearsal."""
    demo = demo_baseline.demo_atlas(quick, workdir)
    rows = [measure(demo, demo_queries(demo), "demo")]
    n = scale.quick_records() if quick else scale.PUBLISHED_RECORDS
    rehearsal = (workdir / f"rehearsal-{n}") if quick else scale.default_dir(n)
    scale.build(rehearsal, n)
    rows.append(measure(rehearsal, np.load(rehearsal / "planted.npy")[: (20 if smoke() else 60) if quick else 300], "rehearsal"))
    md = table(["atlas", "records", "vectors compared", "queries", "top-20 hits folded", "queries with a copy",
                "short pages", "ms/query plain", "ms/query folded"],
               [[r["atlas"], f"{r['records']:,}", "raw" if r["raw_vectors"] else "PQ-decoded (identical codes)",
                 r["queries"], f"{100 * r['fold_rate']:.2f}%", f"{100 * r['queries_with_copies']:.1f}%",
                 r["short_pages"], r["ms_plain"], r["ms_folded"]] for r in rows])
    md += (f"\n\nTop {TOP_N}, nprobe {NPROBE}. A hit is folded when an earlier hit has its URL, its source record, or "
           "a vector at cosine 0.995 (raw) or identical codes (PQ). Neither atlas holds real copies: the demo's drawings "
           "are all distinct and the rehearsal's records are synthetic, so these rates say folding does not fold "
           "distinct images there, not how often TreeOfLife-200M repeats an image. The folded search asks for "
           f"{2 * TOP_N + 10} candidates to refill the page; its cost is the extra metadata rows and decoding.")
    return {"title": "Folding copies of one image: fold rate and cost (top 20)", "markdown": md, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.folding", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    out = run(quick=args.quick)
    print(out["markdown"])
    print(json.dumps(out["rows"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
