"""Turning hits into JSON, CSV, tables and ZIPs: one place for every output format.

Every format writes the columns in ``layout.RESULT_COLUMNS`` order; the CSV adds an
attribution line per image.
"""

from __future__ import annotations

import io
import json
import math
import re
import threading
import zipfile
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..layout import ATLAS_URL_SCHEME, RESULT_COLUMNS
from ..names import clean, scientific_name

if TYPE_CHECKING:
    from ..images.fetch import FetchResult

#: Columns shown by ``--format table``.
TABLE_COLUMNS = ("rank", "similarity", "genus", "species", "common_name", "family", "source_dataset", "id")


def plain(value, digits: int | None = 6):
    """A JSON-safe Python value: numpy scalars unwrapped, NaN/NA as None, floats rounded to
    ``digits`` (None: exact, for the server's wire format)."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, (np.floating, float)):
        if math.isnan(float(value)):
            return None
        return float(value) if digits is None else round(float(value), digits)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def hits_to_records(hits: pd.DataFrame) -> list[dict]:
    """Rows as plain dicts, without the ``query`` column."""
    cols = [c for c in hits.columns if c != "query"]
    return [{c: plain(v) for c, v in zip(cols, row)} for row in hits[cols].itertuples(index=False, name=None)]


def per_query(hits: pd.DataFrame, n_queries: int) -> list[pd.DataFrame]:
    """Split a batch's hits into one frame per query (empty frames for queries with no hit)."""
    if "query" not in hits:
        return [hits]
    groups = dict(tuple(hits.groupby("query", sort=True)))
    return [groups.get(q, hits.iloc[0:0]) for q in range(n_queries)]


def ordered(hits: pd.DataFrame) -> pd.DataFrame:
    """The hit columns in ``RESULT_COLUMNS`` order (``query`` first for a batch), then any others."""
    head = [c for c in ("query", *RESULT_COLUMNS) if c in hits]
    return hits[head + [c for c in hits.columns if c not in head]]


def attribution(row: Mapping) -> str:
    """One line crediting an image: who published it, where it came from, and its link."""
    name = scientific_name(row.get("genus"), row.get("species")) or "unidentified"
    who = clean(row.get("publisher")) or "unknown publisher"
    src = clean(row.get("source_dataset")) or "unknown source"
    kept = clean(row.get("url"))
    kept = kept if kept is not None and kept.startswith(ATLAS_URL_SCHEME) else None     # an image kept in the atlas
    link = safe_url(row.get("occurrence_url")) or safe_url(row.get("url")) or kept or "no link"
    return f"{name}: image published by {who} via {src.upper()} ({link})"


def safe_url(value: object) -> str | None:
    """An http(s) URL, or None for anything else (``javascript:``, ``data:``, blanks)."""
    url = clean(value)
    return url if url is not None and url.lower().startswith(("http://", "https://")) else None


def to_csv(hits: pd.DataFrame) -> str:
    """Every hit with every field in one order, and an attribution line per image."""
    df = ordered(hits).copy()
    df["attribution"] = [attribution(r) for r in df.to_dict("records")]
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    return buf.getvalue()


def exactness(hits: pd.DataFrame | None) -> str:
    """Whether ``hits`` were re-ranked with full vectors (exact order and similarity) or ranked by
    the index's compressed codes alone (approximate), in words; '' with no hits or no ``exact``."""
    if hits is None or not len(hits) or "exact" not in hits:
        return ""
    exact = int(hits["exact"].sum())
    if exact == len(hits):
        return "exact: re-ranked with full vectors"
    if exact == 0:
        return "approximate: ranked by compressed PQ codes"
    return f"re-ranked with full vectors; {len(hits) - exact} without one are approximate"


def to_table(frames: list[pd.DataFrame], labels: list[str]) -> str:
    """A readable fixed-width table per query, its heading saying whether it was ranked exactly."""
    out = []
    for label, frame in zip(labels, frames):
        note = exactness(frame)
        out.append(f"# {label}: {len(frame)} hits" + (f" ({note})" if note else ""))
        if len(frame):
            view = frame[[c for c in TABLE_COLUMNS if c in frame]].copy()
            view["similarity"] = view["similarity"].map(lambda s: f"{s:.3f}")
            out.append(view.to_string(index=False, na_rep="-"))
    return "\n".join(out) + "\n"


def image_filename(row: Mapping) -> str:
    """``01_Vulpes_vulpes_12345.jpg``: rank, name and id, safe on every file system."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", scientific_name(row.get("genus"), row.get("species")) or "unknown")
    return f"{int(row['rank']):02d}_{name}_{int(row['id'])}.jpg"


def to_zip(hits: pd.DataFrame, images: Mapping[int, FetchResult],
           progress: Callable[[int], None] | None = None, cancel: threading.Event | None = None,
           provenance: Mapping | None = None) -> bytes | None:
    """A ZIP of the fetched images (by hit id) with ``hits.csv`` inside, ``provenance.json``
    when given, and ``missing-images.txt`` naming each image that could not be included and
    why. ``progress(n)`` is called after each image; None is returned if ``cancel`` is set."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("hits.csv", to_csv(hits))
        if provenance is not None:
            zf.writestr("provenance.json", json.dumps(dict(provenance), ensure_ascii=False, indent=1) + "\n")
        missing = []
        for done, row in enumerate(hits.to_dict("records"), start=1):
            if cancel is not None and cancel.is_set():
                return None
            result = images.get(int(row["id"]))
            if result is not None and result.ok and result.data:
                zf.writestr(f"images/{image_filename(row)}", result.data)
            else:
                reason = result.message if result is not None else "not fetched"
                missing.append(f"{image_filename(row)}: {reason}")
            if progress is not None:
                progress(done)
        if missing:
            zf.writestr("missing-images.txt", "\n".join(missing) + "\n")
        zf.writestr("ATTRIBUTION.txt", attribution_file(hits, images))
    return buf.getvalue()


def attribution_file(hits: pd.DataFrame, images: Mapping[int, FetchResult]) -> str:
    """Each image in the ZIP with its credit line and licence (where GBIF gave one)."""
    lines = ["Images in this archive, who published them, and under which licence. Check each licence "
             "before reusing an image; 'licence not looked up' means ask its publisher.", ""]
    for row in hits.to_dict("records"):
        result = images.get(int(row["id"]))
        licence = clean(row.get("license")) or "licence not looked up"
        holder = clean(row.get("rights_holder"))
        where = f"images/{image_filename(row)}" if result is not None and result.ok else f"{image_filename(row)} (not included)"
        lines.append(f"{where}: {attribution(row)}; licence {licence}" + (f"; rights holder {holder}" if holder else ""))
    return "\n".join(lines) + "\n"
