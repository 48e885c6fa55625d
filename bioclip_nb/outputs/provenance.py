"""How a result was obtained, written into every export.

A result table is evidence only if one can say later which software, model, atlas and
settings produced it. :class:`Provenance` records that once per query; :func:`columns` gives
the flat fields every exported row carries (so rows stay self-describing when CSVs from
several searches are concatenated), and :func:`describe` the same as one JSON object.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from .._version import __version__
from ..layout import taxon_text

if TYPE_CHECKING:
    from ..request import SearchRequest

CHUNK = 2**20


@dataclass(frozen=True)
class Provenance:
    """One search: what was asked, of which atlas, with which settings, when."""

    model: str
    atlas_fingerprint: str
    atlas_records: int
    nprobe: int
    scope: str
    taxon_filter: str = ""                 # "class=Aves; genus=Parus", empty for none
    folded: bool = False
    query_kind: str = ""                   # image, text, url, result, vectors
    query: str = ""                        # the text, the URL, the file name, "more like <id>"
    query_sha256: str = ""                 # of an uploaded or read image's bytes
    predicted: str = ""                    # the model's top prediction for the query, with its score
    prediction_within: str = ""            # what the prediction was restricted to, if anything
    ranked_by: str = ""                    # "full vectors (...)" or "PQ codes"; from the hits when empty
    searched_at: str = field(default_factory=lambda: now())
    software: str = field(default_factory=lambda: f"bioclip-nb {__version__}")


def now() -> str:
    """The current time, UTC, to the second (ISO 8601)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def sha256(data: bytes) -> str:
    """The hex SHA-256 of some bytes (how an upload is named without keeping it)."""
    return hashlib.sha256(data).hexdigest()


def for_search(atlas, request: SearchRequest, **query) -> Provenance:
    """The provenance of a search of ``atlas`` (an ``Atlas`` or a server's ``RemoteAtlas``) with ``request``."""
    req = request.for_atlas(atlas.nlist)
    return Provenance(model=atlas.model, atlas_fingerprint=atlas_fingerprint(atlas), atlas_records=int(atlas.count),
                      nprobe=int(req.nprobe), scope=req.scope, taxon_filter=taxon_text(req.taxon), folded=req.fold,
                      **query)


def atlas_fingerprint(atlas) -> str:
    """The atlas's content fingerprint (the same on every machine holding the same files)."""
    return getattr(atlas, "content_fingerprint", None) or atlas.fingerprint


def content_fingerprint(files: list[Path]) -> str:
    """SHA-256 over each file's size and its first and last MiB: cheap at any size (a 5 GB
    index costs two reads), and equal for equal copies wherever they live."""
    h = hashlib.sha256()
    for path in files:
        size = path.stat().st_size
        h.update(f"{path.name}:{size};".encode())
        with path.open("rb") as f:
            h.update(f.read(CHUNK))
            if size > CHUNK:
                f.seek(max(CHUNK, size - CHUNK))
                h.update(f.read(CHUNK))
    return h.hexdigest()[:16]


def with_prediction(prov: Provenance, predicted: str, within: str = "") -> Provenance:
    """The same provenance with the query's prediction filled in."""
    return replace(prov, predicted=predicted, prediction_within=within)


def columns(prov: Provenance) -> dict[str, object]:
    """The flat fields each exported row carries (``search_`` names where a bare one would be vague)."""
    d = asdict(prov)
    return {"software": d["software"], "model": d["model"], "atlas_fingerprint": d["atlas_fingerprint"],
            "atlas_records": d["atlas_records"], "nprobe": d["nprobe"], "scope": d["scope"],
            "taxon_filter": d["taxon_filter"], "duplicates_folded": d["folded"], "query_kind": d["query_kind"],
            "query_input": d["query"], "query_sha256": d["query_sha256"], "query_predicted": d["predicted"],
            "prediction_within": d["prediction_within"], "ranked_by": d["ranked_by"], "searched_at": d["searched_at"]}


def ranking(hits: pd.DataFrame | None) -> str:
    """What ordered ``hits`` and gave their similarities: ``"full vectors (<which>)"`` when the
    search re-ranked with them (``Atlas.search``), else ``"PQ codes"``."""
    if hits is None:
        return ""
    used = hits.attrs.get("exact")
    if used:
        return f"full vectors ({used})"
    if "exact" in hits and bool(hits["exact"].any()):
        return "full vectors"
    return "PQ codes"


def describe(prov: Provenance) -> dict[str, object]:
    """One JSON-ready object (the ZIP's ``provenance.json``)."""
    return {**columns(prov), "depth_note": "cells_scanned in each row is the search depth actually used"}


def stamp(hits: pd.DataFrame, prov: Provenance | list[Provenance] | None) -> pd.DataFrame:
    """``hits`` with the provenance columns added (one ``Provenance`` per query for a batch,
    matched on the ``query`` column)."""
    if prov is None:
        return hits
    how = ranking(hits)
    prov = [p if p.ranked_by else replace(p, ranked_by=how) for p in prov] if isinstance(prov, list) else (
        prov if prov.ranked_by else replace(prov, ranked_by=how))
    out = hits.copy()
    provs = prov if isinstance(prov, list) else None
    for name in columns(provs[0] if provs else prov):
        if provs is None:
            out[name] = columns(prov)[name]
        else:
            table = [columns(p)[name] for p in provs]
            out[name] = [table[int(q)] for q in out["query"]] if "query" in out else table[0]
    return out
