"""Exports of a search: a CSV of every hit, and a ZIP of the fetched images with that CSV."""

from __future__ import annotations

import io
import re
import zipfile

import pandas as pd

from .fetch import FetchResult

EXPORT_COLUMNS = ("rank", "id", "similarity", "distance", "kingdom", "phylum", "class", "order", "family", "genus",
                  "species", "common_name", "source_dataset", "source_id", "publisher", "img_type", "url",
                  "occurrence_url", "has_url", "in_bioclip2_training")


def attribution(row: pd.Series) -> str:
    """One line crediting an image: who published it, where it came from, and its link."""
    name = " ".join(str(v) for v in (row.get("genus"), row.get("species")) if isinstance(v, str)) or "unidentified"
    who = row.get("publisher") if isinstance(row.get("publisher"), str) else "unknown publisher"
    src = row.get("source_dataset") if isinstance(row.get("source_dataset"), str) else "unknown source"
    link = row.get("occurrence_url") if isinstance(row.get("occurrence_url"), str) else row.get("url")
    link = link if isinstance(link, str) else "no link"
    return f"{name}: image published by {who} via {src.upper()} ({link})"


def hits_csv(hits: pd.DataFrame) -> bytes:
    """Every hit with every field, URLs, occurrence links and an attribution line."""
    df = hits[[c for c in EXPORT_COLUMNS if c in hits]].copy()
    df["attribution"] = [attribution(r) for _, r in hits.iterrows()]
    return df.to_csv(index=False).encode("utf-8")


def image_filename(row: pd.Series) -> str:
    """``01_Vulpes_vulpes_12345.jpg``: rank, name and id, safe on every file system."""
    name = "_".join(str(v) for v in (row.get("genus"), row.get("species")) if isinstance(v, str)) or "unknown"
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", name)
    return f"{int(row['rank']):02d}_{name}_{int(row['id'])}.jpg"


def hits_zip(hits: pd.DataFrame, images: dict[int, FetchResult]) -> bytes:
    """A ZIP of the fetched images (by hit id) with ``hits.csv`` inside."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("hits.csv", hits_csv(hits))
        missing = []
        for _, row in hits.iterrows():
            result = images.get(int(row["id"]))
            if result is not None and result.ok and result.data:
                zf.writestr(f"images/{image_filename(row)}", result.data)
            else:
                reason = result.message if result is not None else "not fetched"
                missing.append(f"{image_filename(row)}: {reason}")
        if missing:
            zf.writestr("missing-images.txt", "\n".join(missing) + "\n")
    return buf.getvalue()
