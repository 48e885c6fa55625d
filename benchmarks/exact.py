"""Exact answers: recall@10 and similarity error, PQ-only against re-ranked with full vectors,
the storage precisions of ``prepare --embeddings``, and what re-ranking costs per search.

    python -m benchmarks.exact [--quick]

Baseline and ours in one run: every row searches the same queries with ``exact=False`` (PQ
codes alone, what upstream does) and with the default (re-ranked). Truth is brute force over the
full vectors. Atlases: the demo (its held-out photos as queries) and a synthetic
published-layout atlas with published-format parquet beside it (float16, not unit length,
taxonomically sorted, 1% of uuids missing, rows of images the atlas lacks), joined with
``prepare_embeddings``; its queries are its vectors moved to cosine about 0.85, as a new photo
of the same organism would be. Latency: the rehearsal atlases (``benchmarks.scale``) with a
full-vector file of their size, warm and with the file's pages dropped before each query.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd

from bioclip_nb import Atlas
from bioclip_nb.config import Settings
from bioclip_nb.core import hitcolumns, rerank, searching
from bioclip_nb.core.embeddings import prepare_embeddings
from bioclip_nb.core.fullvectors import PREPARED_FILE, PRESENT_FILE, RECORD_FILE, FullVectors, encode
from bioclip_nb.core.quantizer import build_sidecar
from bioclip_nb.testing.embeddingfiles import write_published_embeddings

from . import demo_baseline, scale
from .common import smoke, table
from .folding import demo_queries

NPROBES = (1, 4, 16, 64)
K = 10
#: Variation within a species of the published-layout atlases (``synthetic.make_vectors``'s spectrum).
SPECTRA = {0.0: "isotropic", 1.0: "1/k spectrum"}


def moved(vectors: np.ndarray, n: int, seed: int = 0, step: float = 0.6) -> np.ndarray:
    """``n`` of ``vectors`` moved in a random direction (cosine about 0.85 to the original)."""
    rng = np.random.default_rng(seed)
    base = np.asarray(vectors[np.sort(rng.choice(len(vectors), n, replace=False))], dtype=np.float32)
    d = rng.standard_normal(base.shape).astype(np.float32)
    q = base + step * d / np.linalg.norm(d, axis=1, keepdims=True)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def truth_of(q: np.ndarray, vectors: np.ndarray, allowed: np.ndarray | None = None, chunk: int = 200_000) -> np.ndarray:
    """Brute-force top ``K`` ids by cosine."""
    best_s = np.full((len(q), K), -np.inf, np.float32)
    best_i = np.full((len(q), K), -1, np.int64)
    for start in range(0, len(vectors), chunk):
        s = q @ np.asarray(vectors[start:start + chunk], np.float32).T
        if allowed is not None:
            s[:, ~allowed[start:start + chunk]] = -np.inf
        s = np.concatenate([best_s, s], 1)
        i = np.concatenate([best_i, np.broadcast_to(np.arange(start, start + s.shape[1] - K), (len(q), s.shape[1] - K))], 1)
        top = np.argpartition(-s, K - 1, axis=1)[:, :K]
        best_s, best_i = np.take_along_axis(s, top, 1), np.take_along_axis(i, top, 1)
    return best_i


def recall_rows(atlas: Atlas, label: str, q: np.ndarray, truth: np.ndarray, vectors: np.ndarray) -> list[dict]:
    """recall@10 and the largest similarity error at each depth, PQ-only and re-ranked, and the
    share of the true ten that lie in the probed cells (what any re-ranking can reach)."""
    rows = []
    for nprobe in [p for p in NPROBES if p <= atlas.nlist]:
        row = {"atlas": label, "records": atlas.count, "nprobe": nprobe, "pool_factor": atlas.pool_factor,
               "in_probed_cells": in_probed_cells(atlas, q, truth, vectors, nprobe)}
        for name, exact in (("pq", False), ("reranked", None)):
            hits = atlas.search(q, top_n=K, nprobe=nprobe, exact=exact)
            got = hits.groupby("query")["id"].apply(set)
            row[f"recall_{name}"] = float(np.mean([len(got.get(i, set()) & set(t)) / K for i, t in enumerate(truth)]))
            cosine = np.einsum("ij,ij->i", q[hits["query"]], np.asarray(vectors[hits["id"].to_numpy()], np.float32))
            shown = hits["exact"].to_numpy() if name == "reranked" else np.ones(len(hits), bool)
            row[f"sim_err_{name}"] = float(np.abs(hits["similarity"].to_numpy() - cosine)[shown].max())
            if name == "reranked":
                row["exact_share"] = float(hits["exact"].mean())
        rows.append(row)
    return rows


def in_probed_cells(atlas: Atlas, q: np.ndarray, truth: np.ndarray, vectors: np.ndarray, nprobe: int) -> float:
    """The share of each query's true ten whose IVF cell is among the ``nprobe`` it scans."""
    import faiss
    if atlas.nlist <= 1:
        return 1.0
    quantizer = faiss.extract_index_ivf(atlas.index).quantizer
    _, cell = quantizer.search(np.ascontiguousarray(vectors[truth.ravel()], dtype=np.float32), 1)
    _, probed = quantizer.search(q, nprobe)
    cell = cell.reshape(truth.shape)
    return float(np.mean([np.isin(cell[i], probed[i]).mean() for i in range(len(q))]))


def demo_part(quick: bool, workdir: Path) -> list[dict]:
    demo = demo_baseline.demo_atlas(quick, workdir)
    vectors = np.load(demo / "vectors.npy", mmap_mode="r")
    q = demo_queries(demo)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    with Atlas.open(demo, settings=Settings(home=workdir / "home-demo")) as atlas:
        return recall_rows(atlas, "demo", q.astype(np.float32), truth_of(q.astype(np.float32), vectors), vectors)


def published_part(quick: bool, workdir: Path, spectrum: float = 0.0,
                   precisions: tuple[str, ...] = ("int8", "float16")) -> tuple[list[dict], list[dict], list[dict]]:
    """Recall rows, storage rows and recall by pool size on the synthetic published-layout atlas
    (``spectrum``: the shape of the variation within a species, ``synthetic.make_vectors``)."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from helpers.atlases import build_synthetic_atlas
    n = (20_000 if smoke() else 100_000) if quick else 1_000_000
    root = workdir / f"published-{n}-{spectrum:g}"
    shutil.rmtree(root, ignore_errors=True)          # built afresh: an interrupted run leaves half an atlas
    factory = "IVF256,PQ16" if quick else "IVF1024,PQ16"
    built = build_synthetic_atlas(root / "atlas", n, factory, published_layout=True, seed=11, spectrum=spectrum)
    t0 = time.perf_counter()
    written = write_published_embeddings(built.path, built.vectors, root / "parquet", files=8, missing=0.01, extra=n // 100)
    parquet_s = time.perf_counter() - t0
    parquet_bytes = sum(f.stat().st_size for f in written.files)
    present = np.ones(n, bool)
    present[written.missing_ids] = False
    q = moved(built.vectors[present], (30 if smoke() else 100) if quick else 200, seed=3)
    truth = truth_of(q, built.vectors, present)
    variation = SPECTRA[spectrum]
    recall, storage, pools = [], [], []
    for precision in precisions:
        settings = Settings(home=root / f"home-{precision}")
        with Atlas.open(built.path, settings=settings) as atlas:
            report = prepare_embeddings(atlas, root / "parquet", atlas.cache_dir, precision, progress=False)
            atlas.exactness.reload()
            t1 = time.perf_counter()
            pool = atlas.exactness.calibrate()
            calibrate_s = time.perf_counter() - t1
            rows = recall_rows(atlas, f"published layout, {variation} ({precision})", q, truth, built.vectors)
            at16 = next(r for r in rows if r["nprobe"] == 16)
            storage.append({"precision": precision, "variation": variation, "records": n, "prepare_s": report["seconds"],
                            "rows_per_s": report["parquet_rows"] / report["seconds"], "bytes": report["bytes_on_disk"],
                            "bytes_234m": report["bytes_on_disk"] / n * scale.PUBLISHED_RECORDS,
                            "recall16": at16["recall_reranked"], "sim_err": at16["sim_err_reranked"],
                            "without_vector": report["records_without_vector"], "not_in_atlas": report["rows_not_in_atlas"],
                            "pool_factor": pool["factor"], "calibrate_s": calibrate_s,
                            "parquet_bytes": parquet_bytes, "parquet_s": parquet_s})
            if precision == "int8":
                recall += rows
                pools += pool_rows(atlas, variation, q, truth)
    shutil.rmtree(root, ignore_errors=True)
    return recall, storage, pools


def pool_rows(atlas: Atlas, variation: str, q: np.ndarray, truth: np.ndarray) -> list[dict]:
    """recall@10 re-ranked with each pool of ``rerank.FACTORS`` at nprobe 16 and 64: how large
    a pool reaches a recall, the calibrated one aside."""
    calibrated, rows = atlas.exactness.pool_factor, []
    try:
        for factor in rerank.FACTORS:
            atlas.exactness.pool_factor = factor
            row = {"variation": variation, "factor": factor, "pool": rerank.pool_size(K, factor),
                   "calibrated": factor == calibrated}
            for nprobe in (16, 64):
                hits = atlas.search(q, top_n=K, nprobe=nprobe)
                got = hits.groupby("query")["id"].apply(set)
                row[f"recall{nprobe}"] = float(np.mean([len(got.get(i, set()) & set(t)) / K for i, t in enumerate(truth)]))
            rows.append(row)
    finally:
        atlas.exactness.pool_factor = calibrated
    return rows


def write_full_vectors(atlas: Atlas, planted: np.ndarray, planted_ids: np.ndarray, chunk: int = 1_000_000,
                       only: np.ndarray | None = None) -> Path:
    """A complete int8 full-vector file for a rehearsal atlas (random rows, the planted ones real).
    With ``only`` (sorted ids), just those rows are written and the rest of the file is a hole:
    a file of the atlas's real size that takes only the disk of the rows a benchmark reads."""
    out = atlas.cache_dir
    data = np.lib.format.open_memmap(out / PREPARED_FILE, mode="w+", dtype=np.int8, shape=(atlas.count, atlas.dim))
    rng = np.random.default_rng(0)
    if only is None:
        for start in range(0, atlas.count, chunk):
            stop = min(start + chunk, atlas.count)
            data[start:stop] = rng.integers(-127, 128, size=(stop - start, atlas.dim), dtype=np.int8)
    else:
        for start in range(0, len(only), chunk):
            part = only[start:start + chunk]
            data[part] = rng.integers(-127, 128, size=(len(part), atlas.dim), dtype=np.int8)
    data[planted_ids] = encode(planted, "int8")
    data.flush()
    del data
    np.save(out / PRESENT_FILE, np.full((atlas.count + 7) // 8, 255, np.uint8))
    (out / RECORD_FILE).write_text(json.dumps({"complete": True, "precision": "int8", "source": "benchmark rows"}))
    atlas.exactness.reload()
    return out / PREPARED_FILE


def drop_pages(path: Path) -> None:
    """Evict a file's pages from the page cache (no root needed), so the next reads go to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def previous_hits(atlas: Atlas, dist, ids, batch, scanned, exact) -> pd.DataFrame:
    """How hits were assembled until December 2026 (the baseline of the latency rows): a
    DataFrame of the FAISS results, a DataFrame per metadata lookup, a merge and a sort."""
    from bioclip_nb.core import index as ivf
    from bioclip_nb.layout import RESULT_COLUMNS
    qn, rank = np.nonzero(ids >= 0)
    found = ids[qn, rank]
    frame = pd.DataFrame({"query": qn.astype(np.int64), "rank": (rank + 1).astype(np.int64),
                          "id": found.astype(np.int64), "distance": dist[qn, rank].astype(np.float32),
                          "exact": exact[qn, rank].astype(bool), "cells_scanned": scanned[qn].astype(np.int64)})
    frame["similarity"] = ivf.similarity_from_distance(frame["distance"].to_numpy(), atlas.metric)
    out = frame.merge(atlas.lookup(np.unique(found)), on="id", how="left", sort=False)
    out = out.sort_values(["query", "rank"], kind="stable").reset_index(drop=True)
    return out[(["query"] if batch else []) + list(RESULT_COLUMNS)]


def previous_cosines(full, ids, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How a re-rank scored its pool until December 2026 (the baseline of the scoring rows): unit
    float32 copies of every row (``FullVectors.get``), then their dot products with the query."""
    rows, has = full.get(ids)
    out = np.zeros(len(has), dtype=np.float32)
    out[has] = rows[has] @ query
    return out, has


#: How the cold rows read the vector file: ``(random access, pages announced, label)``.
READS = ((False, False, "cold, mapping as opened (before)"),
         (True, False, "cold, random access, page by page"),
         (True, True, "cold, random access, pages announced (ours)"))
#: Queries for the read-around row (seconds each where the disk's read-ahead is large).
SLOW_QUERIES = 10


def latency_rows(n: int, workdir: Path, factors: tuple[int, ...], queries: int) -> list[dict]:
    """p50/p90 of end-to-end searches, PQ-only against re-ranked (warm, and cold vector pages),
    and the PQ-only search with hits assembled as before."""
    path = workdir / f"rehearsal-{n}" if n < scale.PUBLISHED_RECORDS else scale.default_dir(n)
    scale.build(path, n)
    planted, ids = np.load(path / "planted.npy")[:queries], np.load(path / "planted_ids.npy")[:queries]
    rows = []
    with Atlas.open(path, settings=Settings(home=workdir / f"home-rehearsal-{n}-unprepared")) as atlas:
        nprobe = min(16, atlas.nlist)
        for q in planted:                                   # cells and metadata pages warm
            atlas.search(q, top_n=K, nprobe=nprobe, exact=False)
        unprepared = [_timed(lambda q=q: atlas.search(q, top_n=K, nprobe=nprobe, exact=False)) for q in planted]
    home = Settings(home=workdir / f"home-rehearsal-{n}")
    with Atlas.open(path, settings=home) as atlas:          # prepared: the HNSW coarse quantizer, as `prepare` builds
        if atlas.quantizer != "hnsw" and atlas.nlist >= 1024:
            build_sidecar(atlas.index, atlas.cache_dir)
    with Atlas.open(path, settings=home) as atlas:
        nprobe = min(16, atlas.nlist)
        shutil.rmtree(atlas.cache_dir / hitcolumns.DIRECTORY, ignore_errors=True)     # a previous run's
        atlas.metadata.hit_columns = None
        for q in planted:                                   # cells and metadata pages warm for both
            atlas.search(q, top_n=K, nprobe=nprobe, exact=False)
        with mock.patch.object(searching, "hits", previous_hits):
            before = [_timed(lambda q=q: atlas.search(q, top_n=K, nprobe=nprobe, exact=False)) for q in planted]
        duck = [_timed(lambda q=q: atlas.search(q, top_n=K, nprobe=nprobe, exact=False)) for q in planted]
        t0 = time.perf_counter()
        record = hitcolumns.write(atlas.metadata, atlas.cache_dir)
        write_s = time.perf_counter() - t0
        assert record is not None and atlas.attach_hit_columns()
        for q in planted:                                   # the mapped columns' pages warm, as DuckDB's were
            atlas.search(q, top_n=K, nprobe=nprobe, exact=False)
        base = [_timed(lambda q=q: atlas.search(q, top_n=K, nprobe=nprobe, exact=False)) for q in planted]
        prepared = f"{atlas.quantizer} coarse quantizer"
        rows.append(_row(n, "not prepared: flat coarse quantizer, DuckDB lookup", "-", "-", unprepared, base))
        rows.append(_row(n, f"{prepared}, PQ codes only, DuckDB lookup, hits merged as before", "-", "-", before, base))
        rows.append(_row(n, f"{prepared}, PQ codes only, DuckDB lookup (baseline)", "-", "-", duck, base))
        rows.append(_row(n, f"{prepared}, PQ codes only, hit columns memory-mapped (ours)", "-", "-", base, base))
        size = sum(f.stat().st_size for f in (atlas.cache_dir / hitcolumns.DIRECTORY).iterdir())
        rows[-1].update(hit_columns_s=write_s, hit_columns_bytes=size)
        vec_file = write_full_vectors(atlas, np.load(path / "planted.npy"), np.load(path / "planted_ids.npy"))
        full = atlas.full_vectors
        for factor in factors:
            atlas.exactness.pool_factor = factor
            for _ in range(2):                              # the rows in memory: a repeated search
                for q in planted:
                    atlas.search(q, top_n=K, nprobe=nprobe)
            with mock.patch.object(FullVectors, "cosines", previous_cosines):
                unit = [_timed(lambda q=q: atlas.search(q, top_n=K, nprobe=nprobe)) for q in planted]
            rows.append(_row(n, f"{prepared}, re-ranked, int8 full vectors, scored from unit copies (before)",
                             factor, "warm", unit, base))
            warm = [_timed(lambda q=q: atlas.search(q, top_n=K, nprobe=nprobe)) for q in planted]
            rows.append(_row(n, f"{prepared}, re-ranked, int8 full vectors, scored from stored rows (ours)", factor,
                             "warm", warm, base))
            for random_access, prefetch, pages in READS:
                full.data, full._random = np.load(vec_file, mmap_mode="r"), False        # a fresh mapping
                full.random_access, full.prefetch = random_access, prefetch
                cold = []
                for q in planted if random_access else planted[:SLOW_QUERIES]:
                    drop_pages(vec_file)
                    cold.append(_timed(lambda q=q: atlas.search(q, top_n=K, nprobe=nprobe)))
                rows.append(_row(n, f"{prepared}, re-ranked, int8 full vectors, scored from stored rows", factor, pages,
                                 cold, base))
        full.random_access, full.prefetch = True, None                   # the defaults again
        first = atlas.search(planted[:5], top_n=1, nprobe=nprobe)
        rows[-1]["planted_found"] = float(np.mean(first["id"].to_numpy() == ids[:5]))
        vec_file.unlink()
        shutil.rmtree(atlas.cache_dir / hitcolumns.DIRECTORY, ignore_errors=True)
    return rows


def read_ahead(path: Path) -> str:
    """The read-ahead window of the disk holding ``path``, as Linux reports it."""
    st = os.stat(path)
    dev = Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}")
    for queue in (dev / "queue", dev / ".." / "queue"):             # a disk, or a partition of one
        try:
            return f"{int((queue / 'read_ahead_kb').read_text()):,} KB"
        except (OSError, ValueError):
            continue
    return "not reported"


def _timed(fn) -> tuple[float, float]:
    """``(ms end to end, ms of it spent on the hits' metadata)``."""
    t0 = time.perf_counter()
    hits = fn()
    return 1000 * (time.perf_counter() - t0), 1000 * hits.attrs["timings"]["metadata"]


def _row(n: int, how: str, factor, pages: str, timed: list[tuple[float, float]], base: list[tuple[float, float]]) -> dict:
    ms = [t for t, _ in timed]
    p50, p90 = statistics.median(ms), float(np.percentile(ms, 90))
    return {"records": n, "search": how, "pool_factor": factor, "pages": pages, "p50_ms": p50, "p90_ms": p90,
            "metadata_p50_ms": statistics.median(m for _, m in timed),
            "ratio_p50": p50 / statistics.median(t for t, _ in base)}


def run(quick: bool = False, workdir: Path | None = None) -> dict:
    """The suite's entry."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="bioclip-exact-"))
    recall = demo_part(quick, workdir)
    published, storage, pools = published_part(quick, workdir)
    shaped, shaped_storage, shaped_pools = published_part(quick, workdir, spectrum=1.0, precisions=("int8",))
    recall += published + shaped
    storage += shaped_storage
    pools += shaped_pools
    factors = tuple(sorted({10, *(s["pool_factor"] for s in storage)}))
    sizes = (scale.quick_records(),) if quick else (2_000_000, 20_000_000)
    latency = [r for n in sizes for r in latency_rows(n, workdir, factors, (5 if smoke() else 30) if quick else 100)]
    md = "**recall@10 against brute force, PQ codes only (baseline) and re-ranked with full vectors**\n\n"
    md += table(["atlas", "records", "nprobe", "pool per result", "recall@10 PQ", "recall@10 re-ranked",
                 "true ten in probed cells", "max similarity error PQ", "max similarity error re-ranked", "hits exact"],
                [[r["atlas"], f"{r['records']:,}", r["nprobe"], r["pool_factor"], r["recall_pq"], r["recall_reranked"],
                  r["in_probed_cells"], r["sim_err_pq"], r["sim_err_reranked"], f"{100 * r['exact_share']:.1f}%"]
                 for r in recall])
    md += "\n\n**Storing the full vectors (`prepare --embeddings --precision`), recall@10 at nprobe 16**\n\n"
    md += table(["precision", "variation within a species", "records", "prepare s", "parquet rows/s", "disk", "disk at 234M", "recall@10",
                 "max similarity error", "without a vector", "rows not in atlas", "pool per result"],
                [[s["precision"], s["variation"], f"{s['records']:,}", s["prepare_s"], f"{s['rows_per_s']:,.0f}", f"{s['bytes'] / 1e6:.0f} MB",
                  f"{s['bytes_234m'] / 1e9:.0f} GB", s["recall16"], s["sim_err"], f"{s['without_vector']:,}",
                  f"{s['not_in_atlas']:,}", s["pool_factor"]] for s in storage])
    md += "\n\n**recall@10 re-ranked by pool size, published layout, int8 (the calibrated pool marked)**\n\n"
    md += table(["variation within a species", "pool per result", "candidates", "recall@10 nprobe 16",
                 "recall@10 nprobe 64"],
                [[r["variation"], f"{r['factor']}{' (calibrated)' if r['calibrated'] else ''}", f"{r['pool']:,}",
                  r["recall16"], r["recall64"]] for r in pools])
    md += "\n\n**Search latency, end to end (vector in, DataFrame with metadata out), top 10, nprobe 16, ms**\n\n"
    md += table(["records", "search", "pool per result", "vector pages", "p50", "p90", "metadata p50",
                 "p50 / PQ codes only (ours)"],
                [[f"{r['records']:,}", r["search"], r["pool_factor"], r["pages"], r["p50_ms"], r["p90_ms"],
                  r["metadata_p50_ms"], r["ratio_p50"]] for r in latency])
    md += "\n\n**The hit columns (`prepare`), written from the DuckDB file**\n\n"
    md += table(["records", "write s", "disk", "disk at 234M (in proportion)"],
                [[f"{r['records']:,}", r["hit_columns_s"], f"{r['hit_columns_bytes'] / 1e6:.0f} MB",
                  f"{r['hit_columns_bytes'] / r['records'] * scale.PUBLISHED_RECORDS / 1e9:.1f} GB"]
                 for r in latency if "hit_columns_s" in r])
    md += ("\n\nThe demo atlas is a smoke test of the pipeline (drawn specimens, a colour-histogram stand-in encoder), "
           "not evidence of retrieval quality on real photos. The published-layout atlases hold hierarchical synthetic "
           "vectors; within a species they vary either isotropically (every one of 768 directions as much as every "
           "other, the hardest case for 16-byte codes and for IVF cells: a species' near-equal members spread over "
           "many cells) or with a 1/k spectrum (the same total variation, most of it along a few dozen directions, "
           "as image embeddings vary). Neither is BioCLIP 2's real distribution, which this machine cannot download. "
           "'True ten in probed cells' is the ceiling of any re-ranking at that depth: a true neighbour in a cell "
           "the search does not scan cannot be found. The pool is measured per atlas (`Exactness.calibrate`, done by "
           "`prepare`). Latency rows use the "
           "rehearsal atlases (65,536 cells, as published) with random full vectors and, except the 'not prepared' "
           "row, the HNSW coarse quantizer `prepare` builds (a flat one compares each query with all 65,536 "
           "centroids); 'warm' repeats searches whose rows are in memory; 'cold' evicts the vector file's pages "
           "before each query, as a 234M-record file (180 GB as int8) that cannot stay in memory would be read. "
           "'scored from unit copies' is how a re-rank scored its pool until December 2026: a unit-length float32 "
           "copy of every candidate's row, then the dot products; 'stored rows' divides each row's dot product with "
           "the query by the row's norm, one float32 copy in all (`FullVectors.cosines`). "
           "'mapping as opened' reads through numpy's memory map as it comes, so each page fault reads the disk's "
           f"whole read-ahead window around the row (this disk's: {read_ahead(workdir)}; {SLOW_QUERIES} queries only); 'random access' marks "
           "the mapping `MADV_RANDOM` and faults the rows in one at a time; 'announced' also first tells the "
           "kernel every page the re-rank will read (`POSIX_FADV_WILLNEED`), as `FullVectors` does by default. "
           "At 234M records the re-ranked rows need a vector file this disk cannot hold: every cold read misses "
           "the cache whatever the file's size, so the 20M cold rows' extra time over PQ-only is the cost to add "
           "to the 234M PQ-only search. "
           "This machine's disk is virtual, and its host may cache what the guest drops. 'metadata p50' is the part "
           "of a search after FAISS and re-ranking: reading the hits' columns and building the DataFrame. "
           "'hits merged as before' assembles the page as this package did until December 2026 (a DataFrame per "
           "lookup, a merge and a sort); the other rows build it once from the columns. 'DuckDB lookup' reads "
           "them through DuckDB's id index; 'memory-mapped' from the id-ordered hit columns `prepare` writes "
           "(`core/hitcolumns.py`), checked against DuckDB when opened. Re-ranked rows use the mapped columns.")
    return {"title": "Exact answers: re-ranking with full vectors", "markdown": md,
            "recall": recall, "storage": storage, "pools": pools, "latency": latency}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.exact", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--workdir", type=Path, default=None)
    args = p.parse_args(argv)
    out = run(quick=args.quick, workdir=args.workdir)
    print(out["markdown"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
