"""Writing the hit columns (``prepare``): DuckDB's sort by id against one column at a time.

    python -m benchmarks.hitwrite [--quick]

The published rows are in taxonomic order, not id order. The writer until December 2026
(the baseline) read every column in one query sorted by id; at 234M records DuckDB's sort
spilled 39 GB beside the metadata file before a byte was written. Ours reads one column at a
time in table order and places each value by id in memory (``hitcolumns.write``), in passes of
ids when a column is larger than ``PASS_BYTES``. Both write through the same encoder, each in a
fresh process (its peak memory is its own); the disk they take beyond the files is sampled as
they run. Then, on the columns ours wrote, search latency with and without them.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from bioclip_nb import Atlas
from bioclip_nb.config import Settings
from bioclip_nb.core import hitcolumns
from bioclip_nb.core.embeddings import arrow_batches
from bioclip_nb.core.quantizer import build_sidecar

from . import scale
from .common import smoke, table


def write_sorted(store, out: Path) -> dict:
    """The baseline: every hit column in one DuckDB query sorted by id, written as it streams."""
    import pyarrow as pa

    def con():
        return store._cursor()
    n = store.count()
    hitcolumns._spill_into(con(), out / hitcolumns.SPILL_DIRECTORY)
    exprs = store.raw_hit_expressions()
    work = out / hitcolumns.DIRECTORY
    work.mkdir(parents=True)
    kinds, values, _ = hitcolumns.plan(con, exprs, n, work)
    select = ", ".join(f'{expr} AS "{name}"' for name, (expr, _) in exprs.items())
    with ExitStack() as stack:
        files = {name: stack.enter_context(hitcolumns._ColumnFiles(work, name, kinds[name]["kind"])) for name in exprs}
        start = 0
        for batch in arrow_batches(con(), f"SELECT id, {select} FROM metadata ORDER BY id", hitcolumns.BATCH):
            stop = start + batch.num_rows
            for name in exprs:
                pair = pa.record_batch([batch.column(0), batch.column(name)], names=["id", "v"])
                files[name].add(start, stop, [pair], values.get(name))
            start = stop
    return {"rows": n, "columns": kinds}


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def one(how: str, atlas_path: Path, home: Path, out: Path) -> dict:
    """Write the columns one way in this process: seconds, peak memory, disk beyond the files."""
    peak = {"spill": 0}
    spill = out / hitcolumns.SPILL_DIRECTORY
    done = threading.Event()

    def watch():
        while not done.wait(0.5):
            peak["spill"] = max(peak["spill"], _size(spill) + _size(atlas_path / "duckdb" / "metadata.duckdb.tmp"))
    with Atlas.open(atlas_path, settings=Settings(home=home)) as atlas:
        store = atlas.metadata
        out.mkdir(parents=True, exist_ok=True)
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        t0 = time.perf_counter()
        if how == "sorted":
            write_sorted(store, out)
        else:
            hitcolumns.write(store, out)
        seconds = time.perf_counter() - t0
        done.set()
        watcher.join()
    return {"how": how, "seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "spill_bytes": peak["spill"], "files_bytes": _size(out / hitcolumns.DIRECTORY)}


def _in_process(how: str, atlas_path: Path, home: Path, out: Path) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.hitwrite", "--one", how, "--atlas", str(atlas_path),
           "--home", str(home), "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parent.parent)
    return json.loads(done.stdout.strip().splitlines()[-1])


def searches(atlas_path: Path, home: Path, queries: int) -> dict:
    """p50/p90 of PQ-only searches (HNSW coarse quantizer) with DuckDB lookups and with the
    hit columns in ``home``'s derived data."""
    with Atlas.open(atlas_path, settings=Settings(home=home)) as atlas:
        if atlas.quantizer != "hnsw" and atlas.nlist >= 1024:
            build_sidecar(atlas.index, atlas.cache_dir)
    planted = np.load(atlas_path / "planted.npy")[:queries]
    out = {}
    with Atlas.open(atlas_path, settings=Settings(home=home)) as atlas:
        nprobe = min(16, atlas.nlist)
        columns = atlas.metadata.hit_columns
        for label, mapped in (("duckdb", None), ("hit_columns", columns)):
            atlas.metadata.hit_columns = mapped
            for q in planted:                                    # pages warm for both
                atlas.search(q, top_n=10, nprobe=nprobe, exact=False)
            ms = []
            for q in planted:
                t0 = time.perf_counter()
                atlas.search(q, top_n=10, nprobe=nprobe, exact=False)
                ms.append(1000 * (time.perf_counter() - t0))
            out[label] = (statistics.median(ms), float(np.percentile(ms, 90)))
        out["mapped"] = columns is not None
    return out


def run(quick: bool = False, workdir: Path | None = None) -> dict:
    """The suite's entry."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="bioclip-hitwrite-"))
    sizes = (scale.quick_records(),) if quick else (2_000_000, 20_000_000, scale.PUBLISHED_RECORDS)
    rows = []
    for n in sizes:
        path = workdir / f"rehearsal-{n}" if n < scale.PUBLISHED_RECORDS else scale.default_dir(n)
        scale.build(path, n)
        home = workdir / f"home-hitwrite-{n}"
        with Atlas.open(path, settings=Settings(home=home)) as atlas:
            derived = atlas.cache_dir
        shutil.rmtree(derived / hitcolumns.DIRECTORY, ignore_errors=True)
        row = {"records": n}
        scratch = workdir / f"hitwrite-sorted-{n}"
        free = shutil.disk_usage(workdir).free
        if free > n * 300:                      # the sort's spill (about 170 bytes a record) and the files
            shutil.rmtree(scratch, ignore_errors=True)
            row["sorted"] = _in_process("sorted", path, home, scratch)
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            row["sorted"] = {"note": f"needs about {n * 300 / 1e9:.0f} GB free; {free / 1e9:.0f} GB is"}
        row["columns"] = _in_process("columns", path, home, derived)
        row["search"] = searches(path, home, (5 if smoke() else 30) if quick else 100)
        rows.append(row)
    md = "**Writing the hit columns, each way in a fresh process**\n\n"
    md += table(["records", "writer", "seconds", "peak memory MB", "disk beyond the files", "files"],
                [[f"{r['records']:,}", label] + ([w["note"], "-", "-", "-"] if "note" in w else
                 [w["seconds"], f"{w['peak_rss_mb']:,.0f}", f"{w['spill_bytes'] / 1e9:.1f} GB",
                  f"{w['files_bytes'] / 1e9:.2f} GB"])
                 for r in rows for label, w in (("one query sorted by id (before)", r["sorted"]),
                                                ("a column at a time, placed by id (ours)", r["columns"]))])
    md += "\n\n**Search p50 / p90 ms with the columns ours wrote, top 10, nprobe 16, PQ codes only, HNSW coarse quantizer**\n\n"
    md += table(["records", "DuckDB lookup p50", "p90", "hit columns p50", "p90"],
                [[f"{r['records']:,}", *r["search"]["duckdb"], *r["search"]["hit_columns"]] for r in rows])
    md += ("\n\nThe rehearsal atlases (`benchmarks.scale`): the published schema, rows in taxonomic order. 'disk beyond "
           "the files' is the most DuckDB's temporary files held at once (sampled every half second). Where the "
           "baseline's spill and files would not fit on this disk it is not run. The search rows run 100 planted "
           "queries after one warm-up pass.")
    return {"title": "Writing the hit columns: one sorted query against a column at a time", "markdown": md, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.hitwrite", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--one", choices=("sorted", "columns"), help=argparse.SUPPRESS)
    p.add_argument("--atlas", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one, args.atlas, args.home, args.out)))
        return 0
    print(run(quick=args.quick, workdir=args.workdir)["markdown"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
