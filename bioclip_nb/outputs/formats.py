"""Every export format in one registry: the CLI's ``--format`` choices and the buttons of the
dashboard's Export and Batch tabs are read from :data:`FORMATS`.

A format writes *searches* (one or more pages of hits, each with its provenance: CSV, JSON,
Darwin Core, the ZIP of images, the text table), *photos* (a batch of uploaded photos, one row
each: the summary table, the Darwin Core identification sheet), or both. Every file names the
software, model, atlas, settings, query and time of its search (``provenance``).

JSON has one shape everywhere (the CLI, the dashboard, a batch)::

    {"software": "bioclip-nb 0.4.0", "searches": [
        {"label": "fox.jpg", "provenance": {...}, "hits": [{"rank": 1, "id": ..., ...}, ...]}, ...]}

To add a format: write a function here that turns ``Searches`` (or ``PhotoBatch``) into bytes,
and add one :class:`ExportFormat` line to ``FORMATS``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._version import __version__

if TYPE_CHECKING:        # the registry itself is cheap to import (the CLI's --help reads it)
    import pandas as pd

    from ..images.fetch import FetchResult
    from .provenance import Provenance


@dataclass
class Searches:
    """Pages of hits to export, one per query, each with its provenance and a label."""

    frames: list[pd.DataFrame]
    provenance: list[Provenance]
    labels: list[str] = field(default_factory=list)
    images: Mapping[int, FetchResult] = field(default_factory=dict)   # fetched images, by hit id (the ZIP)
    progress: Callable[[int], None] | None = None                     # called after each image (the ZIP)
    cancel: threading.Event | None = None

    @classmethod
    def one(cls, hits: pd.DataFrame, prov: Provenance, label: str = "", **extra) -> Searches:
        """A single page (the dashboard's)."""
        return cls([hits], [prov], [label or prov.query], **extra)

    def stacked(self) -> pd.DataFrame:
        """Every page in one table, each row stamped with its search's provenance (``query``
        numbers the pages when there are several)."""
        import pandas as pd

        from .provenance import stamp
        frames = [f.drop(columns="query", errors="ignore").assign(query=q) for q, f in enumerate(self.frames)]
        out = stamp(pd.concat(frames, ignore_index=True), self.provenance)
        return out if len(self.frames) > 1 else out.drop(columns="query")


@dataclass
class PhotoBatch:
    """Photos searched together (``batch.Photo``), the search's provenance and the model."""

    photos: list
    base: Provenance
    model: str


@dataclass(frozen=True)
class ExportFormat:
    """One format: its key (``--format``), its button, its file, and what writes it."""

    key: str
    label: str
    stem: str                                     # the file's name before ``-marked`` and the suffix
    suffix: str
    mime: str
    help: str
    searches: Callable[[Searches], bytes | None] | None = None
    photos: Callable[[PhotoBatch], bytes] | None = None
    needs_images: bool = False                    # written from fetched images (the ZIP): the dashboard's, in the background
    in_dashboard: bool = True                     # the text table is for a terminal

    def filename(self, marked: bool = False) -> str:
        return f"{self.stem}{'-marked' if marked else ''}{self.suffix}"


def to_json(s: Searches) -> bytes:
    """The one JSON shape (see the module's docstring)."""
    from dataclasses import replace

    from . import results
    from .provenance import describe, ranking

    def provenance(prov: Provenance, frame: pd.DataFrame) -> dict:
        return describe(prov if prov.ranked_by else replace(prov, ranked_by=ranking(frame)))

    body = {"software": f"bioclip-nb {__version__}",
            "searches": [{"label": label, "provenance": provenance(prov, frame), "hits": results.hits_to_records(frame)}
                         for frame, prov, label in zip(s.frames, s.provenance, _labels(s))]}
    return (json.dumps(body, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def _labels(s: Searches) -> list[str]:
    return s.labels if len(s.labels) == len(s.frames) else [p.query for p in s.provenance]


def _csv(s: Searches) -> bytes:
    from . import results
    return results.to_csv(s.stacked()).encode("utf-8")


def _table(s: Searches) -> bytes:
    from . import results
    return results.to_table(s.frames, _labels(s)).encode("utf-8")


def _dwc_hits(s: Searches) -> bytes:
    from . import darwincore
    return darwincore.hits_table(s.stacked()).to_csv(index=False).encode("utf-8")


def _dwc_photos(b: PhotoBatch) -> bytes:
    from . import darwincore
    return darwincore.photos_table(b.photos, b.model, b.base.searched_at).to_csv(index=False).encode("utf-8")


def _zip(s: Searches) -> bytes | None:
    from . import results
    from .provenance import describe
    return results.to_zip(s.stacked(), s.images, progress=s.progress, cancel=s.cancel,
                          provenance=describe(s.provenance[0]) if len(s.provenance) == 1 else None)


def _summary(b: PhotoBatch) -> bytes:
    from . import batch
    return batch.summary_csv(b.photos, b.base).encode("utf-8")


FORMATS: tuple[ExportFormat, ...] = (
    ExportFormat("json", "JSON", "bioclip-nb-results", ".json", "application/json",
                 "one object: each search's provenance and hits", searches=to_json),
    ExportFormat("table", "Table", "bioclip-nb-results", ".txt", "text/plain",
                 "a readable table per query", searches=_table, in_dashboard=False),
    ExportFormat("csv", "CSV", "bioclip-nb-results", ".csv", "text/csv",
                 "every hit with every field, its provenance and an attribution line", searches=_csv),
    ExportFormat("dwc", "Darwin Core CSV", "bioclip-nb-darwin-core", ".csv", "text/csv",
                 "Darwin Core terms; for photos, one row each with the prediction as an unverified identification",
                 searches=_dwc_hits, photos=_dwc_photos),
    ExportFormat("summary", "Table CSV", "bioclip-nb-batch", ".csv", "text/csv",
                 "one row per photo: prediction, neighbour consensus, top hit", photos=_summary),
    ExportFormat("zip", "ZIP of images", "bioclip-nb-results", ".zip", "application/zip",
                 "the images with hits.csv, provenance.json and their attributions", searches=_zip, needs_images=True),
)
BY_KEY: dict[str, ExportFormat] = {f.key: f for f in FORMATS}


def get(key: str) -> ExportFormat:
    """The format ``key``, or a ``ValueError`` naming the formats."""
    try:
        return BY_KEY[key]
    except KeyError:
        raise ValueError(f"unknown format {key!r}: use one of {', '.join(BY_KEY)}") from None


def cli_keys() -> list[str]:
    """The ``--format`` choices."""
    return [f.key for f in FORMATS if not f.needs_images]


def write_searches(key: str, s: Searches) -> bytes | None:
    """Write ``s`` in the format ``key`` (None: the ZIP was cancelled)."""
    fmt = get(key)
    if fmt.searches is None:
        raise ValueError(f"the {fmt.label} format describes photos, one row each")
    return fmt.searches(s)


def write_photos(key: str, b: PhotoBatch) -> bytes:
    """Write a batch of photos, one row each, in the format ``key``."""
    fmt = get(key)
    if fmt.photos is None:
        raise ValueError(f"the {fmt.label} format writes hits, not one row per photo")
    return fmt.photos(b)


def photo_keys() -> list[str]:
    """The formats that write one row per photo (the Batch tab's buttons)."""
    return [f.key for f in FORMATS if f.photos is not None]
