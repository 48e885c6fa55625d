"""What ``bioclip-nb build`` reads: a folder of images, or a table listing images.

A folder: every image file below it. Its taxonomy comes from a ``metadata.csv`` or
``metadata.parquet`` in the folder (a ``file`` column relative to the folder, plus any of the
metadata columns), or else from the folder names:

* seven levels (``Animalia/Chordata/Aves/Passeriformes/Paridae/Parus/major/x.jpg``):
  kingdom .. species epithet;
* a last folder named like a binomial (``Paridae/Parus major/x.jpg``): genus and epithet,
  and the folders above it fill family, order, class... upwards;
* otherwise the folders fill kingdom, phylum, class... downwards (``Fungi/x.jpg``).

A table (``.csv`` or ``.parquet``): a ``file`` column (paths, relative to the table) or a
``url`` column (http/https), plus any metadata columns.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ..layout import RANKS
from ..names import clean

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".avif", ".heic", ".heif", ".tif", ".tiff", ".bmp", ".gif"}
META_COLUMNS = (*RANKS, "common_name", "url", "source_dataset", "source_id", "publisher", "img_type",
                "in_bioclip2_training")
BINOMIAL = re.compile(r"^([A-Z][a-z-]+)[ _]([a-z][a-z-]+)$")


def taxonomy_from_folders(parts: tuple[str, ...]) -> dict[str, str | None]:
    """Ranks from folder names, by the rule in the module docstring."""
    parts = tuple(p for p in parts if p)
    out: dict[str, str | None] = dict.fromkeys(RANKS)
    if len(parts) == len(RANKS):
        return dict(zip(RANKS, parts))
    if parts and (m := BINOMIAL.match(parts[-1])):
        out["genus"], out["species"] = m.group(1), m.group(2)
        above = parts[:-1][-5:]
        for rank, name in zip(RANKS[5 - len(above):5], above):
            out[rank] = name
        return out
    for rank, name in zip(RANKS, parts):
        out[rank] = name
    return out


def scan_source(source: str | Path) -> pd.DataFrame:
    """One row per image: ``file`` (absolute path or URL) and the metadata columns."""
    source = Path(source).expanduser()
    if not source.exists():
        raise FileNotFoundError(f"build source not found: {source}")
    if source.is_file():
        if source.suffix.lower() not in (".csv", ".parquet"):
            raise ValueError(f"{source}: a build source is a folder of images, or a .csv/.parquet table")
        return _from_table(_read_table(source), source.parent, source)
    for name in ("metadata.parquet", "metadata.csv"):
        if (source / name).is_file():
            return _from_table(_read_table(source / name), source, source / name)
    rows = []
    for path in sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
        rel = path.relative_to(source)
        rows.append({"file": str(path), **taxonomy_from_folders(rel.parts[:-1])})
    if not rows:
        raise ValueError(f"no image files found under {source} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return normalise_items(pd.DataFrame(rows))


def _read_table(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path, dtype=str, keep_default_na=False)


def _from_table(df: pd.DataFrame, root: Path, where: Path) -> pd.DataFrame:
    df = df.rename(columns={c: c.strip() for c in df.columns})
    if "file" not in df and "url" not in df:
        raise ValueError(f"{where} needs a 'file' column (image paths) or a 'url' column")
    files = []
    for i, row in df.iterrows():
        f = clean(row.get("file")) if "file" in df else None
        u = clean(row.get("url")) if "url" in df else None
        if f is None and u is None:
            raise ValueError(f"{where}, row {i + 2}: neither file nor url is given")
        if f is None:
            files.append(u)
        elif re.match(r"^https?://", f):
            files.append(f)
        else:
            p = Path(f)
            files.append(str(p if p.is_absolute() else (root / p)))
    out = pd.DataFrame({"file": files})
    for col in META_COLUMNS:
        if col in df:
            out[col] = df[col].to_numpy()
    return normalise_items(out)


def normalise_items(df: pd.DataFrame) -> pd.DataFrame:
    """Every metadata column present, text cleaned (missing = None), flags as booleans."""
    for col in META_COLUMNS:
        if col not in df:
            df[col] = None
        if col != "in_bioclip2_training":
            df[col] = pd.Series([clean(v) for v in df[col]], dtype=object)
    df["in_bioclip2_training"] = [str(v).strip().lower() in ("1", "true", "yes") for v in df["in_bioclip2_training"]]
    return df.reset_index(drop=True)
