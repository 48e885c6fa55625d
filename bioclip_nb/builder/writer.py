"""Write atlases in the published schema: the FAISS index, the DuckDB metadata, the manifest.

Used by ``bioclip-nb build``, the demo and synthetic atlases, and the test fixtures, so every
atlas bioclip-nb makes has the same layout and quirks as the published one: ENUM taxonomy
columns, rows sorted by taxonomy (not by id), URLs split into ``url_prefixes`` + suffix.

Index rule (documented in the README): fewer than 1,000 vectors get an exact ``Flat`` index;
otherwise IVF with ``nlist`` the power of two nearest ``4·sqrt(N)`` (at least 8, at most
65,536 and at most N/39 so every cell trains on 39 points), with ``PQ16`` codes from 10,000
vectors up and uncompressed (``Flat``) lists below.
"""

from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path
from urllib.parse import urlsplit

import duckdb
import faiss
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..core import index as ivf
from ..layout import ATLAS_URL_SCHEME, FORMAT_VERSION, INDEX_FILE, MANIFEST_FILE, METADATA_FILE, RANKS, Manifest
from ..names import clean

#: Columns stored as ENUM types, as in the published file.
ENUM_COLUMNS = ("kingdom", "phylum", "class", "order", "family", "source_dataset", "publisher", "img_type",
                "basisOfRecord")
TEXT_COLUMNS = ("genus", "species", "common_name", "source_dataset", "source_id", "publisher",
                "img_type", "basisOfRecord")


def choose_index(n: int) -> tuple[str, int]:
    """``(faiss factory string, nlist)`` for ``n`` vectors, by the rule in the module doc."""
    if n < 1000:
        return "Flat", 1
    nlist = 2 ** round(math.log2(4 * math.sqrt(n)))
    nlist = int(max(8, min(nlist, 65536, 2 ** int(math.log2(max(8, n // 39))))))
    return (f"IVF{nlist},PQ16" if n >= 10_000 else f"IVF{nlist},Flat"), nlist


def train_index(vectors: np.ndarray, factory: str | None = None, metric: str = "l2",
                sample: int | None = None, seed: int = 0) -> faiss.Index:
    """An empty, trained index for unit vectors (training on a random sample)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, d = vectors.shape
    factory = factory or choose_index(n)[0]
    mt = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
    index = faiss.index_factory(d, factory, mt)
    if not index.is_trained:
        nlist = faiss.extract_index_ivf(index).nlist
        size = min(n, sample or max(64 * nlist, 50_000))
        rng = np.random.default_rng(seed)
        train = vectors if size >= n else vectors[np.sort(rng.choice(n, size, replace=False))]
        index.train(train)
    return index


def add_vectors(index: faiss.Index, vectors: np.ndarray, chunk: int = 100_000, progress: bool = False) -> None:
    """Add vectors in chunks (ids are positions)."""
    for start in tqdm(range(0, len(vectors), chunk), disable=not progress, desc="adding", unit="chunk"):
        index.add(np.ascontiguousarray(vectors[start:start + chunk], dtype=np.float32))


def split_urls(urls: pd.Series) -> tuple[pd.DataFrame, pd.Series, list[str | None]]:
    """Split URLs into a prefix table, a prefix id per URL and a suffix starting with ``/``.

    The prefix is ``scheme://host`` (``atlas:`` for files kept inside the atlas). A URL that
    does not split that way keeps a NULL prefix id and the whole URL in the suffix, as some
    rows of the published file do.
    """
    prefixes: dict[str, int] = {}
    ids: list[int | None] = []
    suffixes: list[str | None] = []
    for url in urls:
        url = clean(url)
        if url is None:
            ids.append(None)
            suffixes.append(None)
            continue
        if url.startswith(ATLAS_URL_SCHEME):
            prefix, rest = ATLAS_URL_SCHEME, url[len(ATLAS_URL_SCHEME):]
        else:
            parts = urlsplit(url)
            prefix = f"{parts.scheme}://{parts.netloc}"
            rest = url[len(prefix):] if url.startswith(prefix) and parts.netloc else None
        if rest is None:
            ids.append(None)
            suffixes.append(url)
            continue
        if not rest.startswith("/"):
            rest = "/" + rest
        ids.append(prefixes.setdefault(prefix, len(prefixes)))
        suffixes.append(rest)
    table = pd.DataFrame({"prefix_id": list(prefixes.values()), "prefix": list(prefixes.keys())})
    return table, pd.Series(ids, dtype="UInt16"), suffixes


def write_metadata(path: Path, records: pd.DataFrame) -> None:
    """Write ``metadata`` and ``url_prefixes`` in the published schema.

    ``records`` has ``id`` (the FAISS position), any of the rank columns, ``common_name``,
    ``source_dataset``, ``source_id``, ``publisher``, ``img_type``, ``url`` (full URL or
    None) and optionally ``in_bioclip2_training``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame({"id": records["id"].astype(np.int64)})
    for col in (*RANKS, *TEXT_COLUMNS):
        values = records[col] if col in records else pd.Series([None] * len(records))
        df[col] = pd.Series([clean(v) for v in values], dtype=object)
    prefixes, prefix_ids, suffixes = split_urls(records["url"] if "url" in records else pd.Series([None] * len(df)))
    df["url_prefix_id"] = prefix_ids.to_numpy()
    df["identifier_suffix"] = pd.Series(suffixes, dtype=object)
    df["has_url"] = [s is not None for s in suffixes]
    df["in_bioclip2_training"] = (records["in_bioclip2_training"].astype(bool).to_numpy()
                                  if "in_bioclip2_training" in records else False)
    df["uuid"] = [str(u) for u in _uuids(len(df))]
    con = duckdb.connect(str(path))
    try:
        for col in ENUM_COLUMNS:
            values = sorted({v for v in df[col] if v is not None}) or ["?"]
            con.execute(f'CREATE TYPE "{col}_enum" AS ENUM ({", ".join(_sql_str(v) for v in values)})')
        con.register("records", df)
        create_metadata_table(con)
        # As published: rows sorted by source dataset, then taxonomy (not by id).
        order = ", ".join(f'"{c}"::VARCHAR NULLS LAST' for c in ("source_dataset", *RANKS))
        con.execute(f"""
            INSERT INTO metadata SELECT id, uuid::UUID,
                {", ".join(f'"{c}"' for c in RANKS)},
                common_name, source_dataset, source_id, publisher, img_type, "basisOfRecord",
                url_prefix_id, identifier_suffix, has_url, in_bioclip2_training
            FROM records ORDER BY {order}, id
        """)
        con.unregister("records")
        con.register("prefixes", prefixes)
        con.execute("CREATE TABLE url_prefixes (prefix_id USMALLINT, prefix VARCHAR)")
        con.execute("INSERT INTO url_prefixes SELECT prefix_id, prefix FROM prefixes")
        create_indexes(con)
        con.execute("CHECKPOINT")
    finally:
        con.close()


def create_metadata_table(con: duckdb.DuckDBPyConnection) -> None:
    """The published ``metadata`` table, empty; the ENUM types ``"<column>_enum"`` of
    :data:`ENUM_COLUMNS` must exist on ``con``."""
    types = {c: f'"{c}_enum"' for c in ENUM_COLUMNS}
    con.execute(f"""
        CREATE TABLE metadata (
            id INTEGER, uuid UUID,
            {", ".join(f'"{c}" {types.get(c, "VARCHAR")}' for c in RANKS)},
            common_name VARCHAR, source_dataset {types["source_dataset"]}, source_id VARCHAR,
            publisher {types["publisher"]}, img_type {types["img_type"]}, "basisOfRecord" {types["basisOfRecord"]},
            url_prefix_id USMALLINT, identifier_suffix VARCHAR, has_url BOOLEAN, in_bioclip2_training BOOLEAN)
    """)


def create_indexes(con: duckdb.DuckDBPyConnection) -> None:
    """The published file's two indexes: lookups by id, and the scope columns."""
    con.execute("CREATE INDEX idx_id ON metadata (id)")
    con.execute("CREATE INDEX idx_scope ON metadata (source_dataset, has_url, in_bioclip2_training)")


def write_atlas(out: Path, index: faiss.Index, records: pd.DataFrame, model: str,
                source: str, extra: dict | None = None) -> Manifest:
    """Write a complete atlas into ``out`` (which the caller makes and later renames)."""
    out = Path(out)
    if len(records) != index.ntotal:
        raise ValueError(f"{len(records)} metadata rows for {index.ntotal} vectors")
    (out / INDEX_FILE).parent.mkdir(parents=True, exist_ok=True)
    faiss.write_index(index, str(out / INDEX_FILE))
    write_metadata(out / METADATA_FILE, records)
    manifest = Manifest(
        model=model, dim=int(index.d), metric=ivf.metric_name(index),
        count=int(index.ntotal), nlist=ivf.nlist_of(index),
        format_version=FORMAT_VERSION, created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        source=source, extra=dict(extra or {}),
    )
    (out / MANIFEST_FILE).write_text(manifest.to_json() + "\n", encoding="utf-8")
    return manifest


def _sql_str(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _uuids(n: int) -> list:
    import uuid
    rng = np.random.default_rng(12345)
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    return [uuid.UUID(bytes=bytes(r), version=4) for r in raw]
