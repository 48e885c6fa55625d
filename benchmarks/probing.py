"""Taxon filters on the rehearsal atlas: today's probing (the query's nearest cells, then the
bitmap) against scope-aware probing (the taxon's own cells, nearest first), with queries from
outside the taxon, in one run.

    python -m benchmarks.probing [--dir REHEARSAL] [--quick]

The rehearsal (``python -m benchmarks.scale``) holds four genera at about 10%, 1%, 0.1% and
0.01% of its records, each in cells of its own; the queries are its planted vectors that lie
in other genera's cells.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bioclip_nb import Atlas
from bioclip_nb import index as ivf
from bioclip_nb.config import Settings
from bioclip_nb.core import probing

from . import scale
from .common import table

TOP_N, NPROBE = 10, 16


def _timed(fn, repeat: int = 3) -> tuple[object, float]:
    out, times = None, []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def measure(rehearsal: Path, n_queries: int = 50, home: Path | None = None) -> dict:
    """Full pages, latency and cells scanned per taxon, both ways."""
    info = json.loads((rehearsal / "rehearsal.json").read_text())
    planted = np.load(rehearsal / "planted.npy")
    planted_cells = np.load(rehearsal / "planted_cells.npy")
    plan = scale.cell_plan(info["records"])
    names = scale.genus_names()
    settings = Settings(home=home or Path(tempfile.mkdtemp(prefix="bioclip-probing-")))
    rows = []
    with Atlas.open(rehearsal, settings=settings) as atlas:
        for t, name in enumerate(scale.TEST_TAXA):
            outside = np.flatnonzero(plan["genus"][planted_cells] != t)[:n_queries]
            queries = atlas.check_vectors(planted[outside])
            t0 = time.perf_counter()
            bitmap = atlas.bitmap("all", {"genus": names[t]})
            counts = atlas.cell_counts("all", {"genus": names[t]})
            prepare_s = time.perf_counter() - t0
            held = int(counts.sum())
            (_, ids_today), today_s = _timed(lambda q=queries, b=bitmap: ivf.search(atlas.index, q, TOP_N, NPROBE, b))

            def ours(q=queries, c=counts, b=bitmap):
                p = probing.plan(q, atlas.centroids, c, NPROBE, TOP_N, atlas.metric)
                return probing.search(atlas.index, q, TOP_N, p, b), p
            ((_, ids_ours), the_plan), ours_s = _timed(ours)
            want = min(TOP_N, held)
            rows.append({"taxon": name, "share": held / atlas.count, "records": held, "cells": int(np.count_nonzero(counts)),
                         "queries": len(queries),
                         "full_today": float(((ids_today >= 0).sum(1) >= want).mean()),
                         "full_ours": float(((ids_ours >= 0).sum(1) >= want).mean()),
                         "ms_today": 1000 * today_s / len(queries), "ms_ours": 1000 * ours_s / len(queries),
                         "cells_ours": float(np.median(the_plan.scanned)), "prepare_s": prepare_s})
        count = atlas.count
    return {"records": count, "rows": rows}


def run(quick: bool = False, workdir: Path | None = None) -> dict:
    """The suite's entry: on the quick rehearsal (built here if needed), or the full one."""
    n = scale.quick_records() if quick else scale.PUBLISHED_RECORDS
    rehearsal = (workdir / f"rehearsal-{n}") if (workdir is not None and quick) else scale.default_dir(n)
    scale.build(rehearsal, n)
    m = measure(rehearsal)              # a fresh home: "first use" is really the first
    rows = [[r["taxon"], f"{100 * r['share']:.3g}%", f"{r['records']:,}", r["cells"], f"{r['full_today']:.0%}",
             f"{r['full_ours']:.0%}", r["ms_today"], r["ms_ours"], r["cells_ours"], r["prepare_s"]] for r in m["rows"]]
    md = table(["genus", "share", "records", "cells holding it", "full pages: today", "full pages: scope-aware",
                "ms/query today", "ms/query scope-aware", "cells scanned (median)", "first use s (bitmap + cell counts)"],
               rows)
    md += (f"\n\n{m['records']:,} records, IVF{scale.nlist()},PQ16, top {TOP_N}, nprobe {NPROBE}, queries from outside the genus. "
           "Today's probing scans the query's nearest cells, where the genus has no records; scope-aware probing "
           "scans the genus's own cells, nearest first, until the page is full. The first use of a taxon filter "
           "builds its bitmap and cell counts once; both are cached with the atlas's derived data.")
    return {"title": f"Taxon filters: full pages with queries from outside the taxon ({m['records']:,} records)",
            "markdown": md, "rows": m["rows"], "records": m["records"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.probing", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--dir", type=Path, default=None, help="a rehearsal atlas (default: the one benchmarks.scale builds)")
    args = p.parse_args(argv)
    if args.dir is not None:
        print(json.dumps(measure(args.dir), indent=1))
    else:
        print(run(quick=args.quick)["markdown"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
