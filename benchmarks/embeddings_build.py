"""Building an atlas from published-format embeddings (``bioclip-nb build --embeddings``):
vectors per second per stage, one Dask worker (baseline) against one per core, and the
extrapolation to BioCLIP 2.5's 233,055,986 vectors.

    python -m benchmarks.embeddings_build [--quick]

The input is what ``TreeOfLife-200M-Embeddings`` publishes, at BioCLIP 2.5's width: 1024-d
float16 rows that are not unit length, sorted by taxonomy, about 250,000 rows per file (the
published 933 files hold 233M), with 1% of the metadata atlas's images missing and 100 rows of
images it does not hold. The metadata atlas is the rehearsal (published schema and shares).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from . import scale
from .common import smoke, table

PUBLISHED_VECTORS = 233_055_986
PUBLISHED_FILES = 933
ROWS_PER_FILE = PUBLISHED_VECTORS // PUBLISHED_FILES
DIM = 1024
LARGE = 10_000_000                 # the full run's second size


class WideVectors:
    """``n`` clustered 1024-d vectors computed on demand (row ``i``: record ``i``), so that 10M of
    them need no 20 GB array beside the parquet files: a cluster centre plus a deterministic
    pseudo-random offset per row."""

    def __init__(self, n: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.shape = (n, DIM)
        self.centres = rng.normal(size=(2_000, DIM)).astype(np.float32)
        self.freqs = rng.uniform(0.5, 50.0, DIM).astype(np.float64)
        self.phases = rng.uniform(0, 2 * np.pi, DIM)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        noise = np.sin(np.outer(rows * 0.6180339887, self.freqs) + self.phases).astype(np.float32)
        return self.centres[(rows * 7919) % len(self.centres)] + 0.7 * noise


def run(quick: bool = False, workdir: Path | None = None) -> dict:
    from bioclip_nb.builder.fromembeddings import ENCODE_ROWS, build_from_embeddings
    from bioclip_nb.builder.writer import choose_index
    from bioclip_nb.layout import BIOCLIP25
    n = 20_000 if smoke() else 300_000 if quick else 1_000_000
    cores = os.cpu_count() or 1
    work = Path(workdir or tempfile.mkdtemp(prefix="bioclip-embbuild-")) / "embeddings-build"
    factory = choose_index(n)[0]
    from bioclip_nb.builder import fromembeddings
    default_cells = fromembeddings.HNSW_ASSIGN_CELLS
    runs = [(n, "1 Dask worker, flat cell assignment (baseline)", 1, False),
            (n, f"{cores} Dask workers, HNSW cell assignment (ours)", cores, True)]
    if not (smoke() or quick):                       # ten times the vectors, ours only, with the same index shape
        runs.append((LARGE, f"{cores} Dask workers, HNSW cell assignment (ours)", cores, True))
    rows, raw, trained = [], [], None
    try:
        for size, label, workers, hnsw in runs:
            fromembeddings.HNSW_ASSIGN_CELLS = 1 if hnsw else 1 << 30
            meta, parquet = _inputs(work, size)
            out = work / f"atlas-{size}-{workers}"
            partial = out.with_name(f".{out.name}.partial")
            shutil.rmtree(partial, ignore_errors=True)
            if trained is not None and size == n:    # the same training: resumed from the first run's
                partial.mkdir(parents=True)
                shutil.copy(trained, partial / "trained.index")
            built = build_from_embeddings(parquet, meta, BIOCLIP25, out, workers=workers, factory=factory,
                                          force=True, progress=False)
            if trained is None:
                trained = work / "trained.index"
                _keep_training(trained, built)
            s = built.seconds
            rows.append([f"{built.rows_read:,}", label, built.factory, s.get("sample", "-"), s.get("train", "-"),
                         s["encode"], s["add"], s["write"], built.rows_read / s["encode"], built.worker_peak_mb])
            raw.append({"rows": built.rows_read, "workers": workers, "hnsw": hnsw, "factory": built.factory,
                        "worker_peak_mb": built.worker_peak_mb, **s})
            shutil.rmtree(out)
    finally:
        fromembeddings.HNSW_ASSIGN_CELLS = default_cells
    md = table(["vectors", "run", "index", "sample s", "train s", "encode s", "add s", "write s", "encode vectors/s",
                "worker peak MB"], rows)
    load = os.getloadavg()[0]
    md += (f"\n\nLoad average when the runs ended: {load:.1f} on {cores} cores (above {cores} means something else "
           "shared the CPU and the rates are low). The second run reuses the first's trained index (as a resumed "
           "build does), so training is timed once at that size. "
           + (f"The {LARGE:,}-vector run keeps the same index shape ({factory}) so that the rates compare; it "
              "trains its own on a sample of the same size. " if len(runs) > 2 else "")
           + "Files of about 250,000 rows each, as the published 933. Worker peak: the largest resident memory a "
           f"worker process reached (each converts and encodes {ENCODE_ROWS:,} rows at a time; whole files at once "
           "took one to 9.5 GB).\n\n" + extrapolation(raw, cores, n))
    return {"name": "embeddings_build", "title": "Building an atlas from published embeddings (1024-d, BioCLIP 2.5's "
            f"width), {n:,}" + (f" and {LARGE:,}" if len(runs) > 2 else "") + " vectors, per stage",
            "markdown": md, "raw": raw}


def _inputs(work: Path, n: int) -> tuple[Path, Path]:
    """The metadata atlas (the rehearsal's schema) and its published-format parquet for ``n``
    vectors, written once and reused."""
    from bioclip_nb.testing.embeddingfiles import write_published_embeddings
    meta = work / f"rehearsal-{n}"
    scale.build(meta, n)
    parquet = work / f"parquet-{n}"
    if not (parquet / "done").is_file():
        shutil.rmtree(parquet, ignore_errors=True)
        write_published_embeddings(meta, WideVectors(n), parquet, files=max(1, round(n / ROWS_PER_FILE)), missing=0.01,
                                   extra=100)
        (parquet / "done").write_text("")
    return meta, parquet


def _keep_training(trained: Path, built) -> None:
    """Keep the first run's trained index for the second (the build deletes its own copy): the
    index at ``built.path`` holds the same quantizer and codebooks, emptied here."""
    import faiss
    index = faiss.read_index(str(built.path / "faiss" / "index.index"))
    index.reset()
    faiss.write_index(index, str(trained))


def extrapolation(raw: list[dict], cores: int, n: int) -> str:
    """233M vectors (IVF65536,PQ16) from this run's rates. A flat cell assignment costs in
    proportion to the cells; an HNSW one about in proportion to their logarithm."""
    import math

    from bioclip_nb.builder.writer import choose_index
    flat = next(r for r in raw if not r["hnsw"])
    ours = max((r for r in raw if r["hnsw"]), key=lambda r: r["rows"])     # the largest run's rates
    nlist = choose_index(n)[1]
    flat_per_worker = flat["rows"] / flat["encode"] / flat["workers"]
    hnsw_per_worker = ours["rows"] / ours["encode"] / ours["workers"]
    flat_rate = flat_per_worker * nlist / 65_536
    hnsw_rate = hnsw_per_worker * math.log2(nlist) / 16
    add_rate, write_rate = ours["rows"] / ours["add"], ours["rows"] / ours["write"]
    train_h = flat["train"] * (4_194_304 * 65_536) / (min(n, max(64 * nlist, 50_000)) * nlist) / 3600
    lines = ["| workers | encode h, flat assignment | encode h, HNSW assignment | add h | write h | total h, HNSW (without training) |",
             "|---|---|---|---|---|---|"]
    fixed = PUBLISHED_VECTORS / add_rate / 3600 + PUBLISHED_VECTORS / write_rate / 3600
    for w in sorted({1, cores, 16, 64}):
        f, h = PUBLISHED_VECTORS / (flat_rate * w) / 3600, PUBLISHED_VECTORS / (hnsw_rate * w) / 3600
        lines.append(f"| {w} | {f:.3g} | {h:.3g} | {PUBLISHED_VECTORS / add_rate / 3600:.3g} | "
                     f"{PUBLISHED_VECTORS / write_rate / 3600:.3g} | {h + fixed:.3g} |")
    return (f"**Extrapolated to 233,055,986 vectors (IVF65536,PQ16).** Per worker, encoding ran at "
            f"{flat_per_worker:,.0f} vectors/s with the flat assignment ({flat['rows']:,} vectors) and "
            f"{hnsw_per_worker:,.0f} with HNSW ({ours['rows']:,} vectors) at {nlist:,} cells; at 65,536 cells that is about "
            f"{flat_rate:,.0f} (flat, x cells) against {hnsw_rate:,.0f} (HNSW, x log cells). Workers multiply it while "
            f"the file system keeps up. Adding and the metadata write at their measured rates ({add_rate:,.0f} and "
            f"{write_rate:,.0f} rows/s, one process). Training 65,536 centroids on a 4.2M-vector sample, scaled from "
            f"this run's k-means (sample x cells), is about {train_h:,.0f} h on this CPU: train once on a GPU node "
            "(faiss-gpu), then resume the build with its trained index.\n\n" + "\n".join(lines))


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m benchmarks.embeddings_build", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1M vectors only")
    p.add_argument("--workdir", type=Path, default=None)
    args = p.parse_args()
    out = run(quick=args.quick, workdir=args.workdir)
    print(out["title"])
    print(out["markdown"])
