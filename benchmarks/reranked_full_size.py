"""Re-ranked search at the 234M rehearsal, with a vector file of the real size.

    python -m benchmarks.reranked_full_size [--quick]

A complete int8 vector file for 234,391,308 records is 180 GB, more than this machine's disk
holds. The file written here has the real size and layout, but only the rows the benchmark's
searches read are written (every candidate of every query's largest pool, found first by the
PQ codes alone); the rest is a hole that takes no disk. Each search reads rows at their real
offsets in a 180 GB file, warm and with the file's pages dropped before it. The baseline is
the same search by the PQ codes alone, in the same run. Hit columns as ``prepare`` writes them
(written here if missing: about 11 minutes and 24 GB at 234M).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from bioclip_nb import Atlas
from bioclip_nb.config import Settings
from bioclip_nb.core import hitcolumns, rerank, searching
from bioclip_nb.core.quantizer import build_sidecar

from . import scale
from .common import smoke, table
from .exact import K, _row, _timed, drop_pages, write_full_vectors

#: Candidates per result re-ranked: the smallest pool, the one an atlas not yet calibrated uses,
#: and the 1/k-spectrum synthetic atlas's calibrated one.
FACTORS = (10, rerank.POOL_FACTOR, 500)
NPROBE = 16


def pool_ids(atlas: Atlas, queries: np.ndarray, factor: int) -> np.ndarray:
    """Every id a re-ranked search of ``queries`` with pool ``factor`` reads, sorted."""
    _, ids, _, _ = searching.probe(atlas, queries, K, NPROBE, None, "", pool=rerank.pool_size(K, factor))
    return np.unique(ids[ids >= 0])


def rows_for(n: int, workdir: Path, queries: int) -> tuple[list[dict], dict]:
    """PQ-only and re-ranked latency rows at ``n`` records, and what the vector file took."""
    path = workdir / f"rehearsal-{n}" if n < scale.PUBLISHED_RECORDS else scale.default_dir(n)
    scale.build(path, n)
    planted, planted_ids = np.load(path / "planted.npy")[:queries], np.load(path / "planted_ids.npy")[:queries]
    home = Settings(home=workdir / f"home-rehearsal-{n}")
    with Atlas.open(path, settings=home) as atlas:
        if atlas.quantizer != "hnsw" and atlas.nlist >= 1024:
            build_sidecar(atlas.index, atlas.cache_dir)
    with Atlas.open(path, settings=home) as atlas:
        if atlas.metadata.hit_columns is None:
            hitcolumns.write(atlas.metadata, atlas.cache_dir)
            assert atlas.attach_hit_columns()
        nprobe = min(NPROBE, atlas.nlist)
        for _ in range(2):                                  # codes, centroids and hit columns warm
            for q in planted:
                atlas.search(q, top_n=K, nprobe=nprobe, exact=False)
        base = [_timed(lambda q=q: atlas.search(q, top_n=K, nprobe=nprobe, exact=False)) for q in planted]
        rows = [_row(n, "PQ codes only, hit columns (baseline)", "-", "-", base, base)]
        needed = pool_ids(atlas, planted, max(FACTORS))
        vec_file = write_full_vectors(atlas, planted, planted_ids, only=needed)
        written = {"rows": len(needed), "apparent_bytes": vec_file.stat().st_size,
                   "disk_bytes": vec_file.stat().st_blocks * 512}
        try:
            full = atlas.full_vectors
            assert full is not None and full.count == atlas.count
            for factor in FACTORS:
                atlas.exactness.pool_factor = factor
                assert np.isin(pool_ids(atlas, planted, factor), needed).all()     # no read falls in the hole
                for _ in range(2):
                    for q in planted:
                        atlas.search(q, top_n=K, nprobe=nprobe)
                warm = [_timed(lambda q=q: atlas.search(q, top_n=K, nprobe=nprobe)) for q in planted]
                rows.append(_row(n, "re-ranked, int8 full vectors", factor, "warm", warm, base))
                cold = []
                for q in planted:
                    drop_pages(vec_file)
                    cold.append(_timed(lambda q=q: atlas.search(q, top_n=K, nprobe=nprobe)))
                rows.append(_row(n, "re-ranked, int8 full vectors", factor, "cold, pages announced", cold, base))
            first = atlas.search(planted[:5], top_n=1, nprobe=nprobe)
            written["planted_found"] = float(np.mean(first["id"].to_numpy() == planted_ids[:5]))
        finally:
            vec_file.unlink()
            atlas.exactness.reload()
    return rows, written


def run(quick: bool = False, workdir: Path | None = None) -> dict:
    """The suite's entry."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="bioclip-reranked-"))
    n = scale.quick_records() if quick else scale.PUBLISHED_RECORDS
    rows, written = rows_for(n, workdir, (5 if smoke() else 30) if quick else 100)
    md = f"**Search latency at {n:,} records, end to end, top {K}, nprobe {NPROBE}, HNSW coarse quantizer, ms**\n\n"
    md += table(["search", "pool per result", "vector pages", "p50", "p90", "metadata p50", "p50 / PQ codes only"],
                [[r["search"], r["pool_factor"], r["pages"], r["p50_ms"], r["p90_ms"], r["metadata_p50_ms"],
                  r["ratio_p50"]] for r in rows])
    md += (f"\n\nThe vector file: {written['apparent_bytes'] / 1e9:,.1f} GB as the atlas's real size, "
           f"{written['disk_bytes'] / 1e6:,.0f} MB on disk: the {written['rows']:,} rows the searches read (every "
           f"candidate of every query's pool of {rerank.pool_size(K, max(FACTORS)):,}), written at their offsets; "
           "the rest is a hole. A real file's rows lie scattered over the whole disk extent, these over a small one, "
           "so a disk whose cost grows with seek distance would read them faster than a real file's; this "
           "machine's disk is virtual, and its host may cache what the guest drops. Queries: the rehearsal's "
           f"planted vectors; the top hit is the planted record for {100 * written['planted_found']:.0f}% of the "
           "first five. 'cold' drops the vector file's pages before each search; the PQ codes and hit columns stay "
           "warm, as on a machine whose memory holds the index but not 180 GB of vectors.")
    return {"title": "Re-ranked search at the real size: a vector file of the atlas's size", "markdown": md,
            "rows": rows, "vector_file": written}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.reranked_full_size", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--workdir", type=Path, default=None)
    args = p.parse_args(argv)
    print(run(quick=args.quick, workdir=args.workdir)["markdown"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
