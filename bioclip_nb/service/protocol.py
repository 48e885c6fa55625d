"""What travels between the warm server and its clients: one encoder and one decoder of each.

Encodings, hit tables and image fetch outcomes become plain JSON here and come back as the
same Python objects (``Encoding``, a hits ``DataFrame``, ``FetchResult``), so the CLI and the
dashboard cannot tell a server-backed answer from an in-process one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..encoders.base import Encoding, Prediction
from ..layout import Rank
from ..outputs.results import plain

#: Every route lives under this prefix (a future incompatible API gets ``/v2``).
API = "/v1"
#: Each atlas of a server also answers under ``{API}{ATLASES}/KEY`` (the plain routes: the first atlas).
ATLASES = "/atlases"
#: The default port of ``bioclip-nb serve`` (8866 is the dashboard's).
DEFAULT_PORT = 8765
#: Header a fetched image carries its outcome in (the body is the image itself).
FETCH_HEADER = "X-Bioclip-Fetch"

_INT_COLUMNS = ("query", "rank", "id", "cells_scanned", "copies")


# --------------------------------------------------------------------------- encodings
def encoding_to_json(enc: Encoding, query_id: str | None = None) -> dict:
    """An encoding as JSON: the embedding (exact float32 values) and predictions at every rank."""
    return {
        "model_id": enc.model_id,
        "query_id": query_id,
        "embedding": [float(x) for x in np.asarray(enc.embedding, dtype=np.float32)],
        "predictions": predictions_to_json(enc.predictions),
        "note": enc.note,
    }


def predictions_to_json(predictions: dict[Rank, tuple[Prediction, ...]]) -> dict:
    """Predictions at every rank as JSON."""
    return {rank.value: [{"name": p.name, "lineage": list(p.lineage), "score": p.score,
                          "common_name": p.common_name} for p in preds]
            for rank, preds in predictions.items()}


def predictions_from_json(data: dict | None) -> dict[Rank, tuple[Prediction, ...]]:
    """The inverse of :func:`predictions_to_json`."""
    return {Rank.parse(rank): tuple(Prediction(Rank.parse(rank), p["name"], tuple(p["lineage"]), float(p["score"]),
                                               p.get("common_name")) for p in items)
            for rank, items in (data or {}).items()}


def encoding_from_json(data: dict) -> Encoding:
    """The inverse of :func:`encoding_to_json`."""
    return Encoding(np.asarray(data["embedding"], dtype=np.float32), data["model_id"],
                    predictions_from_json(data.get("predictions")), str(data.get("note") or ""))


def vector_to_json(vector: np.ndarray) -> list[float]:
    """One vector as a JSON list (float32 values survive the round trip exactly)."""
    return [float(x) for x in np.asarray(vector, dtype=np.float32).ravel()]


# --------------------------------------------------------------------------- hits
def hits_to_json(hits: pd.DataFrame) -> dict:
    """A hits frame as ``{"columns", "rows", "attrs"}`` (column order and attrs kept)."""
    cols = list(hits.columns)
    rows = [[plain(v, digits=None) for v in row] for row in hits.itertuples(index=False, name=None)]
    attrs = {k: v for k, v in hits.attrs.items() if k in ("timings", "metric", "cells_scanned", "copies", "exact")}
    return {"columns": cols, "rows": rows, "attrs": attrs}


def hits_from_json(data: dict) -> pd.DataFrame:
    """The inverse of :func:`hits_to_json`, with the integer and float columns typed as ``Atlas.search`` types them."""
    frame = pd.DataFrame(data["rows"], columns=data["columns"], dtype=object)     # text stays text, None stays None
    for col in frame.columns:
        values = [v for v in frame[col] if v is not None]
        if values and all(isinstance(v, bool) for v in values) and len(values) == len(frame):
            frame[col] = frame[col].astype(bool)
        elif values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            frame[col] = pd.to_numeric(frame[col])
    for col in _INT_COLUMNS:
        if col in frame:
            frame[col] = frame[col].astype(np.int64)
    if "distance" in frame:
        frame["distance"] = frame["distance"].astype(np.float32)
    if "similarity" in frame:
        frame["similarity"] = frame["similarity"].astype(np.float32)
    if "exact" in frame:
        frame["exact"] = frame["exact"].astype(bool)
    attrs = dict(data.get("attrs") or {})
    if "copies" in attrs:      # JSON keys are strings; ``Atlas.search`` keys copies by the hit's id
        attrs["copies"] = {int(k): v for k, v in attrs["copies"].items()}
    frame.attrs.update(attrs)
    return frame


def error_body(message: str, kind: str = "error", **extra) -> dict:
    """Every error the server answers: ``{"error": kind, "message": ...}`` (never a traceback)."""
    return {"error": kind, "message": message, **extra}
