"""Parquet files in the shape ``imageomics/TreeOfLife-200M-Embeddings`` publishes, for an atlas.

One row per image: ``uuid`` (text), the seven ranks, and a float16 vector that is not unit
length (as the ``bioclip-2_float16`` config), sorted by taxonomy rather than by the atlas's
ids, written with page indexes. Like the real data it does not hold the same set of images as
the atlas: some of the atlas's records have no row (``missing``) and some rows are of images
the atlas does not hold (``extra``). Used by the tests and benchmarks of
``bioclip-nb prepare --embeddings``.
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

from ..core.embeddings import arrow_batches
from ..layout import METADATA_FILE, RANKS


@dataclass(frozen=True)
class Written:
    """What :func:`write_published_embeddings` wrote."""

    files: list[Path]
    missing_ids: np.ndarray      # atlas ids that got no row
    extra_rows: int              # rows of images the atlas does not hold
    rows: int


def write_published_embeddings(atlas: Path, vectors: np.ndarray, out: Path, files: int = 4, missing: float = 0.01,
                               extra: int = 100, seed: int = 0, vector_column: str = "embedding",
                               chunk: int = 250_000) -> Written:
    """Write ``vectors`` (row ``i`` is atlas id ``i``) as published-format parquet into ``out``."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    rng = np.random.default_rng(seed)
    con = duckdb.connect(str(Path(atlas) / METADATA_FILE), read_only=True)
    cols = ", ".join(f'"{r}"::VARCHAR AS "{r}"' for r in RANKS)
    table = arrow_batches(con, f"SELECT id, uuid::VARCHAR AS uuid, {cols} FROM metadata ORDER BY id").read_all()
    con.close()
    n = table.num_rows
    dropped = np.sort(rng.choice(n, size=int(round(missing * n)), replace=False))
    keep = np.ones(n, dtype=bool)
    keep[dropped] = False
    table = table.filter(pa.array(keep))
    ids = table.column("id").to_numpy().astype(np.int64)
    table = table.drop_columns(["id"])
    if extra:
        ranks = {r: pa.array([f"Extra{r.title()}"] * extra) for r in RANKS}
        extra_table = pa.table({"uuid": pa.array([str(uuidlib.UUID(bytes=rng.bytes(16), version=4)) for _ in range(extra)]),
                                **ranks})
        table = pa.concat_tables([table, extra_table])
    total = table.num_rows
    order = _taxonomic_order(table)
    table = table.take(pa.array(order))
    source_rows = np.concatenate([ids, np.full(extra, -1)])[order]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, total, files + 1).astype(int)
    written = []
    for f in range(files):
        part = table.slice(bounds[f], bounds[f + 1] - bounds[f])
        rows = source_rows[bounds[f]:bounds[f + 1]]
        vecs = np.empty((len(rows), vectors.shape[1]), dtype=np.float16)
        for start in range(0, len(rows), chunk):
            sel = rows[start:start + chunk]
            block = np.where((sel >= 0)[:, None], np.asarray(vectors[np.maximum(sel, 0)], dtype=np.float32),
                             rng.standard_normal((len(sel), vectors.shape[1])).astype(np.float32))
            scale = rng.uniform(0.5, 2.0, size=(len(sel), 1)).astype(np.float32)    # published: not unit length
            vecs[start:start + chunk] = (block / np.linalg.norm(block, axis=1, keepdims=True) * scale).astype(np.float16)
        flat = pa.array(vecs.ravel(), type=pa.float16())
        column = pa.ListArray.from_arrays(pa.array(np.arange(0, vecs.size + 1, vecs.shape[1], dtype=np.int32)), flat)
        path = out / f"part-{f:05d}.parquet"
        pq.write_table(part.append_column(vector_column, column), path, write_page_index=True, row_group_size=50_000)
        written.append(path)
    return Written(written, dropped, extra, total)


def _taxonomic_order(table) -> np.ndarray:
    import pyarrow.compute as pc
    keys = [(r, "ascending") for r in RANKS] + [("uuid", "ascending")]
    return pc.sort_indices(table, sort_keys=keys).to_numpy()
