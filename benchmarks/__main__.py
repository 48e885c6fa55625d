"""Run every benchmark, each against its baseline in the same run, and write the report.

    python -m benchmarks            # full: the 234M rehearsal, 1M vectors, 10M metadata rows, 65,536 centroids
    python -m benchmarks --quick    # reduced sizes (tens of minutes), same tables
    python -m benchmarks --smoke    # the smallest sizes that run every line (the test suite runs this)

Writes ``docs/benchmarks.md`` and ``docs/benchmarks.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from . import (
    cards,
    demo_baseline,
    embeddings_build,
    encoder,
    exact,
    extrapolate,
    folding,
    gallery,
    hitwrite,
    models,
    probing,
    quantizer,
    rehearsal,
    reranked_full_size,
    runtime,
    scale,
    scopes,
    search,
    service,
    umap_map,
)
from .common import SMOKE_ENV

SUITE = [("scale", scale), ("rehearsal", rehearsal), ("probing", probing), ("search", search), ("scopes", scopes),
         ("quantizer", quantizer), ("umap", umap_map), ("gallery", gallery), ("cards", cards), ("encoder", encoder),
         ("service", service), ("folding", folding), ("demo", demo_baseline),
         ("exact", exact), ("reranked234", reranked_full_size), ("hitwrite", hitwrite), ("runtime", runtime),
         ("embeddings_build", embeddings_build), ("models", models)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="reduced sizes (tens of minutes)")
    p.add_argument("--smoke", action="store_true",
                   help="the smallest sizes that run every line, so the code never rots (numbers meaningless)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "docs")
    p.add_argument("--only", nargs="*", help="run only these: " + ", ".join(n for n, _ in SUITE))
    p.add_argument("--workdir", type=Path, default=None, help="where to keep the synthetic atlases (reused)")
    args = p.parse_args(argv)
    if args.smoke:
        args.quick = True
    previous = os.environ.get(SMOKE_ENV)
    os.environ[SMOKE_ENV] = "1" if args.smoke else ""      # read by the modules and by the processes they start
    try:
        run_suite(args)
    finally:
        if previous is None:
            os.environ.pop(SMOKE_ENV, None)
        else:
            os.environ[SMOKE_ENV] = previous
    print(args.out / "benchmarks.md")
    return 0


def run_suite(args: argparse.Namespace) -> None:
    """Run the benchmarks ``args`` name, writing the report after each."""
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bioclip-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results, timings = {}, {}
    for name, module in SUITE:
        if args.only and name not in args.only:
            continue
        t0 = time.perf_counter()
        print(f"== {name}", file=sys.stderr, flush=True)
        results[name] = module.run(quick=args.quick) if name in ("gallery", "encoder", "runtime") else module.run(quick=args.quick, workdir=workdir)
        timings[name] = time.perf_counter() - t0
        print(results[name]["markdown"], file=sys.stderr, flush=True)
        write(args.out, results, timings, args.quick, partial=bool(args.only))   # each result kept as it comes


def write(out: Path, results: dict, timings: dict, quick: bool, partial: bool) -> None:
    """Write the report; a partial run (``--only``) updates the last report's other sections."""
    previous = out / "benchmarks.json"
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    meta = {"date": now, "quick": quick, "updated": {},
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"}
    if partial and previous.is_file():
        old = json.loads(previous.read_text())
        meta.update(date=old["meta"]["date"], quick=old["meta"]["quick"],
                    updated={**old["meta"].get("updated", {}), **dict.fromkeys(results, now)})
        results = {**{k: v for k, v in old["results"].items() if k != "extrapolation"}, **results}
        timings = {**old["meta"].get("seconds", {}), **timings}
    results = {name: results[name] for name, _ in SUITE if name in results}
    results["extrapolation"] = extrapolate.run(results)
    out.mkdir(parents=True, exist_ok=True)
    meta["seconds"] = timings
    previous.write_text(json.dumps({"meta": meta, "results": results}, indent=1, default=str))
    (out / "benchmarks.md").write_text(render(results, meta))


def render(results: dict, meta: dict) -> str:
    lines = ["# Benchmarks", "",
             f"Produced by `python -m benchmarks{' --quick' if meta['quick'] else ''}` on {meta['date']} "
             f"({meta['machine']}). Every row is measured in the same run as its baseline.", ""]
    if meta.get("updated"):
        lines += ["Sections run on their own since (`--only`): " + ", ".join(
            f"{results[name]['title'].split(':')[0]} ({when})" for name, when in meta["updated"].items() if name in results)
            + ".", ""]
    for _name, res in results.items():
        lines += [f"## {res['title']}", "", res["markdown"], ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
