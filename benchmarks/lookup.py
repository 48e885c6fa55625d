"""Metadata lookup of 10, 100 and 1,000 ids from a taxonomy-sorted DuckDB in the published
schema, with its ``idx_id`` index: ours (``WHERE id IN (list)``, answered by the index, prefixes
joined in Python) against the previous method (one query joining an unnested id list, which
DuckDB answers with a hash join over the whole table).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import duckdb
import numpy as np

from bioclip_nb.builder import writer
from bioclip_nb.demo import synthetic
from bioclip_nb.metadata import MetadataStore

from .common import best_of, table


def database(n: int, workdir: Path) -> Path:
    path = workdir / f"metadata-{n}.duckdb"
    if not path.is_file():
        tax = synthetic.make_taxonomy(dim=8, seed=0)
        rng = np.random.default_rng(0)
        species = rng.integers(0, len(tax.table), n)
        writer.write_metadata(path, synthetic.make_records(tax, species))
    return path


def run(quick: bool = False, workdir: Path | None = None) -> dict:
    n = 1_000_000 if quick else 10_000_000
    workdir = Path(workdir or tempfile.mkdtemp())
    path = database(n, workdir)
    store = MetadataStore.open(path)
    con = duckdb.connect(str(path), read_only=True)
    rng = np.random.default_rng(1)
    rows = []
    for k in (10, 100, 1000):
        ids = rng.choice(n, k, replace=False)
        t_ours = best_of(lambda ids=ids: store.get(ids), repeat=5)
        t_join = best_of(lambda ids=ids: unnest_join(con, ids), repeat=5)
        rows.append([k, 1000 * t_join, 1000 * t_ours, t_join / t_ours])
    store.close()
    con.close()
    md = table(["ids", "previous: unnest join, ms", "ours: index-backed IN list, ms", "speed-up"], rows)
    return {"name": "lookup", "title": f"Metadata lookup from a {n:,}-row taxonomy-sorted DuckDB with idx_id (published schema)",
            "markdown": md + "\n\nBoth return rows in FAISS rank order and keep ids that have no row.",
            "rows": [dict(zip(["ids", "join_ms", "ours_ms", "speedup"], r)) for r in rows], "n_rows": n}


def unnest_join(con, ids) -> object:
    """The previous lookup: a join against the unnested id list, in list order."""
    sql = ("WITH q AS (SELECT unnest($ids) AS id, generate_subscripts($ids, 1) AS pos) "
           "SELECT q.pos, q.id, m.*, p.prefix || m.identifier_suffix AS url FROM q "
           "LEFT JOIN metadata m ON m.id = q.id LEFT JOIN url_prefixes p ON p.prefix_id = m.url_prefix_id "
           "ORDER BY q.pos")
    return con.execute(sql, {"ids": [int(i) for i in ids]}).df()


if __name__ == "__main__":
    print(run()["markdown"])
