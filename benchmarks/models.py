"""Two models side by side: search latency at BioCLIP 2.5's 1024 dimensions against BioCLIP 2's
768 at the same number of vectors and cells, and the memory of one server holding both atlases.

    python -m benchmarks.models [--quick]

Both atlases are synthetic, built alike (``build_synthetic``: clustered unit vectors, the
index ``choose_index`` picks for N, their full vectors kept, so searches re-rank exactly); only
the width differs. Queries are each atlas's own vectors moved to cosine about 0.85. The baseline
is the 768-d atlas. Memory: ``bioclip-nb serve`` processes (no model weights here, so the
encoders are unavailable and only the atlases count), one per line: the 768-d atlas alone, and
both, each measured once started and again after searches in every atlas it holds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bioclip_nb import Atlas
from bioclip_nb.config import Settings
from bioclip_nb.demo import build_synthetic
from bioclip_nb.layout import BIOCLIP2, BIOCLIP25, MODELS, VECTORS_FILE

from .common import smoke, table
from .exact import moved

DEPTHS = (16, 64)


def atlases(n: int, workdir: Path) -> dict[str, Path]:
    """The two synthetic atlases of ``n`` vectors (reused when present)."""
    out = {}
    for model in (BIOCLIP2, BIOCLIP25):
        path = workdir / f"models-{MODELS[model].dim}d-{n}"
        if not (path / VECTORS_FILE).is_file():
            build_synthetic(path, n, force=True, progress=False, model=model, keep_vectors=True)
        out[model] = path
    return out


def latency(path: Path, workdir: Path, queries: int) -> list[list]:
    """Median and 95th-percentile ms of ``Atlas.search`` (top 10), by depth, PQ codes only and re-ranked."""
    rows = []
    with Atlas.open(path, settings=Settings(home=workdir / "home")) as atlas:
        q = moved(np.load(path / VECTORS_FILE, mmap_mode="r"), queries, seed=3)
        for nprobe in DEPTHS:
            for exact in (False, True):
                times = []
                atlas.search(q[0], top_n=10, nprobe=nprobe, exact=exact)      # warm
                for v in q:
                    t0 = time.perf_counter()
                    atlas.search(v, top_n=10, nprobe=nprobe, exact=exact)
                    times.append((time.perf_counter() - t0) * 1000)
                times.sort()
                rows.append([MODELS[atlas.model].display_name, atlas.dim, f"{atlas.count:,}", atlas.nlist, nprobe,
                             "re-ranked (exact)" if exact else "PQ codes only", statistics.median(times),
                             times[int(0.95 * (len(times) - 1))]])
    return rows


def resident(pid: int) -> tuple[float, float]:
    """``(anonymous MB, file-backed MB)`` resident in process ``pid`` (Linux ``/proc``): the
    memory it holds, and the pages of memory-mapped files it has touched (page cache: shared,
    and given back under pressure)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    kb = {k: int(fields[k].split()[0]) for k in ("RssAnon", "RssFile", "RssShmem")}
    return kb["RssAnon"] / 1024, (kb["RssFile"] + kb["RssShmem"]) / 1024


def server_memory(paths: list[Path], workdir: Path, searches: int) -> list[float]:
    """Anonymous and file-backed MB of one server once started, then after ``searches`` searches
    in each atlas (the first re-ranked search of an atlas measures its pool on 128 queries)."""
    import os

    from bioclip_nb.service.client import connect
    from bioclip_nb.service.run import start_background, stop
    home = workdir / f"serve-{len(paths)}"
    settings = Settings(home=home)
    os.environ["HF_HUB_OFFLINE"] = "1"                  # no weights here: fail the model load at once
    record = start_background(paths, settings, device="cpu", idle_minutes=5, wait=600)
    try:
        time.sleep(1.0)
        started = resident(record.pid)
        listed = connect(record.url, record.token).client.atlases()
        for i, entry in enumerate(listed):
            conn = connect(record.url, record.token, atlas=entry["key"])
            vectors = np.load(Path(entry["path"]) / VECTORS_FILE, mmap_mode="r")
            for v in moved(vectors, searches, seed=5 + i):
                conn.atlas.search(v, top_n=10, nprobe=DEPTHS[0])
            conn.close()
        searched = resident(record.pid)
    finally:
        stop(settings)
    return [*started, *searched]


def run(quick: bool = False, workdir: Path | None = None) -> dict:
    n = 20_000 if smoke() else 200_000 if quick else 1_000_000
    queries = 20 if smoke() else 200
    workdir = Path(workdir or tempfile.mkdtemp(prefix="bioclip-models-"))
    paths = atlases(n, workdir)
    rows = latency(paths[BIOCLIP2], workdir, queries) + latency(paths[BIOCLIP25], workdir, queries)
    md = table(["model", "dim", "vectors", "cells", "nprobe", "ranking", "median ms", "p95 ms"], rows)
    ratio = {(r[4], r[5]): None for r in rows}
    for key in ratio:
        a, b = (r[6] for r in rows if (r[4], r[5]) == key)
        ratio[key] = b / a
    md += ("\n\nThe 1024-d search over the 768-d one (median): "
           + ", ".join(f"{r:.2f}x at nprobe {k[0]} {k[1]}" for k, r in ratio.items()) + ".\n\n")
    mem = []
    for label, held in (("BioCLIP 2 atlas alone (baseline)", [paths[BIOCLIP2]]),
                        ("BioCLIP 2 and BioCLIP 2.5 atlases (ours)", [paths[BIOCLIP2], paths[BIOCLIP25]])):
        mem.append([label, *server_memory(held, workdir, 10 if smoke() else 50)])
    md += table(["one server holding", "started: own MB", "started: file pages MB", "after searches: own MB",
                 "after searches: file pages MB"], mem)
    md += ("\n\nOwn memory is what the process holds (anonymous pages). File pages are the memory-mapped index, "
           "metadata and full vectors that searches touched: page cache, shared with other processes and given back "
           "under pressure. The first re-ranked search of an atlas of up to 2M records measures its re-ranking pool "
           "on 128 queries, which reads most of its full-vector file once. "
           "No model is loaded here: a real server adds each model's weights once it is first used (BioCLIP 2, "
           "about 1.7 GB in float32; BioCLIP 2.5 Huge, about 3.9 GB).")
    return {"name": "models", "title": f"Two models: search latency at 1024-d and 768-d ({n:,} vectors each), "
            "and one server holding both", "markdown": md, "raw": {"latency": rows, "memory": mem}}


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m benchmarks.models", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="200,000 vectors per atlas")
    p.add_argument("--workdir", type=Path, default=None)
    args = p.parse_args()
    out = run(quick=args.quick, workdir=args.workdir)
    print(out["title"])
    print(out["markdown"])
