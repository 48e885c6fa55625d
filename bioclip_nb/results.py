"""Turning hits into JSON, CSV and tables: one place for every output format."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd

#: Columns shown by ``--format table``.
TABLE_COLUMNS = ("rank", "similarity", "genus", "species", "common_name", "family", "source_dataset", "id")


def _plain(value):
    """A JSON-safe Python value: numpy scalars unwrapped, NaN/NA as None."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(float(value)) else round(float(value), 6)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def hits_to_records(hits: pd.DataFrame) -> list[dict]:
    """Rows as plain dicts, without the ``query`` column."""
    cols = [c for c in hits.columns if c != "query"]
    return [{c: _plain(v) for c, v in zip(cols, row)} for row in hits[cols].itertuples(index=False, name=None)]


def per_query(hits: pd.DataFrame, n_queries: int) -> list[pd.DataFrame]:
    """Split a batch's hits into one frame per query (empty frames for queries with no hit)."""
    if "query" not in hits:
        return [hits]
    groups = dict(tuple(hits.groupby("query", sort=True)))
    return [groups.get(q, hits.iloc[0:0]) for q in range(n_queries)]


def to_json(frames: list[pd.DataFrame]) -> str:
    """One JSON array for one query, a list of arrays for several."""
    arrays = [hits_to_records(f) for f in frames]
    return json.dumps(arrays[0] if len(arrays) == 1 else arrays, ensure_ascii=False, indent=1)


def to_csv(hits: pd.DataFrame) -> str:
    """Every column, one row per hit."""
    buf = io.StringIO()
    hits.to_csv(buf, index=False)
    return buf.getvalue()


def to_table(frames: list[pd.DataFrame], labels: list[str]) -> str:
    """A readable fixed-width table per query."""
    out = []
    for label, frame in zip(labels, frames):
        out.append(f"# {label}: {len(frame)} hits")
        if len(frame):
            view = frame[[c for c in TABLE_COLUMNS if c in frame]].copy()
            view["similarity"] = view["similarity"].map(lambda s: f"{s:.3f}")
            out.append(view.to_string(index=False, na_rep="-"))
    return "\n".join(out) + "\n"
