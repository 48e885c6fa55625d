"""The 234M path measured at 234M: the rehearsal atlas (``benchmarks.scale``), each figure beside
the previous method in the same run.

    python -m benchmarks.rehearsal [--quick] [--records N]

* opening the index: ours (memory-mapped, precomputed table skipped) against memory-mapped
  with the table built on open (the previous method); time, resident memory, and memory after
  the first search, each in a fresh process;
* end-to-end search (vector in, DataFrame with metadata out) at nprobe 16 and 64, with the
  flat coarse quantizer and the HNSW sidecar;
* metadata lookup of 10, 100 and 1,000 ids at several table sizes: the index-backed IN list
  against the previous unnest join;
* scoped pages: full pages at the iNaturalist scope (58%) and the taxon shares;
* the dashboard ready after ``prepare``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import scale
from .common import smoke, table

OPEN_CHILD = r"""
import json, sys, time, psutil, numpy as np
from bioclip_nb import index as ivf
path, precompute = sys.argv[1], sys.argv[2] == "1"
p = psutil.Process(); before = p.memory_info().rss
t0 = time.perf_counter(); index = ivf.open_index(path, precompute=precompute); t1 = time.perf_counter()
opened = p.memory_info().rss
q = np.load(sys.argv[3])[:1]
ivf.search(index, q, 10, 16); t2 = time.perf_counter()
print(json.dumps({"open_s": t1 - t0, "open_mb": (opened - before) / 2**20, "first_search_s": t2 - t1,
                  "after_search_mb": (p.memory_info().rss - before) / 2**20}))
"""

DASH_CHILD = r"""
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
from bioclip_nb.config import Settings
from bioclip_nb.dashboard import Dashboard
d = Dashboard.from_settings(atlas=sys.argv[1], settings=Settings(home=Path(sys.argv[2]), derived=Path(sys.argv[3])))
d.widget
print(json.dumps({"ready_s": time.perf_counter() - t0}))
"""


def _child(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def opening(rehearsal: Path) -> list[list]:
    path = str(rehearsal / "faiss" / "index.index")
    planted = str(rehearsal / "planted.npy")
    rows = []
    for label, flag in (("previous: mmap, precomputed table built on open", "1"), ("ours: mmap, table skipped", "0")):
        runs = [_child(OPEN_CHILD, path, flag, planted) for _ in range(1 if smoke() else 3)]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        rows.append([label, med["open_s"], med["open_mb"], med["first_search_s"], med["after_search_mb"]])
    return rows


def _timed_searches(atlas, planted: np.ndarray) -> list[list]:
    rows = []
    for nprobe in (16, 64):
        atlas.search(planted[0], top_n=10, nprobe=nprobe)          # warm
        times = []
        for q in planted:
            t0 = time.perf_counter()
            atlas.search(q, top_n=10, nprobe=nprobe)
            times.append(time.perf_counter() - t0)
        rows.append([atlas.quantizer, nprobe, 1000 * statistics.median(times), 1000 * float(np.percentile(times, 90))])
    return rows


def searching(rehearsal: Path, home: Path) -> list[list]:
    from bioclip_nb import Atlas
    from bioclip_nb.config import Settings
    from bioclip_nb.core.quantizer import SIDECAR, build_sidecar
    planted = np.load(rehearsal / "planted.npy")[:100]
    settings = Settings(home=home)
    with Atlas.open(rehearsal, settings=settings) as atlas:
        (atlas.cache_dir / SIDECAR).unlink(missing_ok=True)
    with Atlas.open(rehearsal, settings=settings) as atlas:
        rows = _timed_searches(atlas, planted)                     # the flat quantizer
        build_sidecar(atlas.index, atlas.cache_dir)
    with Atlas.open(rehearsal, settings=settings) as atlas:
        assert atlas.quantizer == "hnsw"
        rows += _timed_searches(atlas, planted)
    return rows


def lookups(rehearsals: dict[int, Path]) -> list[list]:
    import duckdb

    from bioclip_nb.core.metadata import MetadataStore

    from .common import best_of
    rows = []
    rng = np.random.default_rng(7)
    for n, path in sorted(rehearsals.items()):
        store = MetadataStore.open(path / "duckdb" / "metadata.duckdb")
        con = duckdb.connect(str(path / "duckdb" / "metadata.duckdb"), read_only=True)
        for k in (10, 100, 1000):
            ids = rng.choice(n, k, replace=False)
            ours = best_of(lambda ids=ids, store=store: store.get(ids), repeat=5)
            join = best_of(lambda ids=ids, con=con: unnest_join(con, ids), repeat=3)
            rows.append([f"{n:,}", k, 1000 * join, 1000 * ours])
        store.close()
        con.close()
    return rows


def unnest_join(con, ids) -> object:
    """The previous lookup: a join against the unnested id list, in list order."""
    sql = ("WITH q AS (SELECT unnest($ids) AS id, generate_subscripts($ids, 1) AS pos) "
           "SELECT q.pos, q.id, m.*, p.prefix || m.identifier_suffix AS url FROM q "
           "LEFT JOIN metadata m ON m.id = q.id LEFT JOIN url_prefixes p ON p.prefix_id = m.url_prefix_id "
           "ORDER BY q.pos")
    return con.execute(sql, {"ids": [int(i) for i in ids]}).df()


def scoped(rehearsal: Path, home: Path) -> list[list]:
    from bioclip_nb import Atlas
    from bioclip_nb import index as ivf
    from bioclip_nb.config import Settings
    planted = np.load(rehearsal / "planted.npy")[:100]
    rows = []
    with Atlas.open(rehearsal, settings=Settings(home=home)) as atlas:
        q = atlas.check_vectors(planted)
        bitmap = atlas.bitmap("inat")
        share = ivf.bitmap_count(bitmap) / atlas.count
        _, today = ivf.search(atlas.index, q, 10, 16, bitmap)
        hits = atlas.search(planted, top_n=10, nprobe=16, scope="inat")
        rows.append(["inat (provenance)", f"{100 * share:.3g}%", f"{((today >= 0).sum(1) == 10).mean():.0%}",
                     f"{hits.groupby('query').size().reindex(range(len(q)), fill_value=0).eq(10).mean():.0%}"])
    return rows


def dashboard_ready(rehearsal: Path, home: Path) -> list[list]:
    derived = home / "derived"
    subprocess.run([sys.executable, "-m", "bioclip_nb.commands.cli", "prepare", "--atlas", str(rehearsal), "--derived-dir",
                    str(derived), "--no-map"], check=True, capture_output=True)
    runs = [_child(DASH_CHILD, str(rehearsal), str(home / f"user{i}"), str(derived))["ready_s"] for i in range(1 if smoke() else 3)]
    return [["dashboard built on the atlas after prepare (fresh process, imports included)", statistics.median(runs)]]


def run(quick: bool = False, workdir: Path | None = None, records: int | None = None) -> dict:
    n = records or (scale.quick_records() if quick else scale.PUBLISHED_RECORDS)
    # the quick rehearsal lives in the run's workdir; full-size ones are cached under $BIOCLIP_NB_HOME
    base = workdir if (workdir is not None and quick) else None
    main_dir = (base / f"rehearsal-{n}") if base is not None else scale.default_dir(n)
    scale.build(main_dir, n)
    sizes = {n: main_dir}
    if not quick:
        for small in (2_000_000, 23_000_000):
            d = (base / f"rehearsal-{small}") if base is not None else scale.default_dir(small)
            scale.build(d, small)
            sizes[small] = d
    home = Path(tempfile.mkdtemp(prefix="bioclip-rehearsal-", dir=workdir))   # its caches: removed at the end
    try:
        parts = [
            ("Opening the index, fresh process, medians of 3", table(
                ["method", "open s", "resident MB after open", "first search s", "resident MB after first search"],
                opening(main_dir))),
            ("End to end: vector in, DataFrame with metadata out (100 planted queries, top 10)", table(
                ["coarse quantizer", "nprobe", "median ms", "90th percentile ms"], searching(main_dir, home / "search"))),
            ("Metadata lookup, best of runs", table(
                ["rows", "ids", "previous: unnest join ms", "ours: index-backed IN list ms"], lookups(sizes))),
            ("Scoped pages at nprobe 16 (taxon shares: see the probing table)", table(
                ["scope", "share", "full pages: today's probing", "full pages: ours"], scoped(main_dir, home / "scoped"))),
            ("The dashboard after prepare", table(["what", "seconds"], dashboard_ready(main_dir, home / "dash"))),
        ]
    finally:
        shutil.rmtree(home, ignore_errors=True)
    md = "\n\n".join(f"**{title}**\n\n{body}" for title, body in parts)
    md = (f"The rehearsal atlas: {n:,} records, IVF{scale.nlist()},PQ16, the published schema and shares "
          f"(`python -m benchmarks.scale{' --quick' if quick else ''}`).\n\n" + md)
    return {"title": f"The published shape at {n:,} records (rehearsal)", "markdown": md, "records": n}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.rehearsal", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--records", type=int, default=None)
    args = p.parse_args(argv)
    print(run(quick=args.quick, records=args.records)["markdown"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
