"""Folding near-duplicates: the same image met several times in one page of hits.

TreeOfLife-200M holds some images more than once (an iNaturalist photo reached through GBIF
and again through EOL, or listed twice by one source). A page of hits is more useful with
each image once and a note of how many copies it stands for. Two hits are copies when

* they have the same image URL, or
* the same record id at the same source (``source_dataset``, ``source_id``), or
* their vectors are at least ``similarity`` (cosine) alike: the raw vectors when the atlas
  keeps them (:data:`SAME_IMAGE`, 0.995: on the demo atlas 0.2% of top-20 neighbours reach
  0.98 and none 0.99; burst shots of one animal may reach it, and are then folded too), else
  the vectors decoded from the index's PQ codes, which must be identical
  (:data:`SAME_IMAGE_DECODED`). Sixteen bytes per vector cannot tell a re-compressed copy from
  a close photo: on a test atlas, decoded vectors of different records with raw cosine 0.7
  reached 0.99, so only identical codes (in one cell) count; other copies there are found by
  URL or record id, or not at all.

Hits are taken in rank order; each one either starts a group or joins the first earlier group
it is a copy of, so the best-ranked copy represents its group. :func:`fold` returns the
representatives with ``copies`` (group size) and the folded rows of each group.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..names import clean

#: Two raw vectors at least this similar (cosine) are taken for the same image.
SAME_IMAGE = 0.995
#: The same for vectors decoded from PQ codes: identical codes only (see above).
SAME_IMAGE_DECODED = 0.99999
#: The most candidates a folded search asks for per query while refilling its page.
FOLD_CANDIDATES = 2000


@dataclass(frozen=True)
class Folded:
    """One query's page after folding."""

    hits: pd.DataFrame                  # representatives, re-ranked 1..n, with ``copies``
    copies: dict[int, pd.DataFrame]     # representative id -> its folded copies (rank = original rank)
    exhausted: bool                     # fewer candidates than asked for: no more to refill from


def _key(value: object) -> str | None:
    text = clean(value)
    return text.strip() if text else None


def groups(frame: pd.DataFrame, vectors: np.ndarray | None, similarity: float = SAME_IMAGE) -> np.ndarray:
    """For each row (in rank order), the position of the row that represents its group."""
    n = len(frame)
    rep = np.arange(n)
    urls = [_key(u) for u in frame.get("url", pd.Series([None] * n))]
    sources = [(_key(d), _key(s)) for d, s in zip(frame.get("source_dataset", [None] * n), frame.get("source_id", [None] * n))]
    close = None
    if vectors is not None and n:
        v = np.asarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        known = (norms[:, 0] > 0) & np.isfinite(v).all(axis=1)
        v = np.where(known[:, None], v / np.where(norms > 0, norms, 1), 0)
        close = (v @ v.T >= similarity) & known[:, None] & known[None, :]
    by_url: dict[str, int] = {}
    by_source: dict[tuple[str, str], int] = {}
    heads: list[int] = []
    for i in range(n):
        found = by_url.get(urls[i]) if urls[i] else None
        if found is None and all(sources[i]):
            found = by_source.get(sources[i])
        if found is None and close is not None:
            found = next((h for h in heads if close[i, h]), None)
        if found is None:
            heads.append(i)
            found = i
        rep[i] = found
        if urls[i]:
            by_url.setdefault(urls[i], found)
        if all(sources[i]):
            by_source.setdefault(sources[i], found)
    return rep


def fold(frame: pd.DataFrame, vectors: np.ndarray | None, top_n: int, asked: int,
         similarity: float = SAME_IMAGE) -> Folded:
    """Fold one query's candidates (in rank order) into at most ``top_n`` distinct images.

    ``asked`` is how many candidates the search asked for: fewer came back means the scope
    has no more, so the page cannot be refilled further.
    """
    frame = frame.reset_index(drop=True)
    rep = groups(frame, vectors, similarity)
    heads = np.flatnonzero(rep == np.arange(len(frame)))[:top_n]
    keep = frame.iloc[heads].copy()
    sizes = np.bincount(rep, minlength=len(frame))
    keep["copies"] = sizes[heads].astype(np.int64)
    copies = {}
    for h in heads:
        members = np.flatnonzero((rep == h) & (np.arange(len(frame)) != h))
        if len(members):
            copies[int(frame.at[h, "id"])] = frame.iloc[members].reset_index(drop=True)
    keep["rank"] = np.arange(1, len(keep) + 1, dtype=np.int64)
    return Folded(keep.reset_index(drop=True), copies, exhausted=len(frame) < asked)


def complete(folded: Folded, top_n: int) -> bool:
    """Whether the page is as full as it can be: ``top_n`` distinct images, or no more candidates."""
    return len(folded.hits) >= top_n or folded.exhausted


def fold_rate(frame: pd.DataFrame, vectors: np.ndarray | None, similarity: float = SAME_IMAGE) -> float:
    """The share of rows that are copies of an earlier row (for measuring how often folding helps)."""
    if not len(frame):
        return 0.0
    rep = groups(frame.reset_index(drop=True), vectors, similarity)
    return float((rep != np.arange(len(frame))).mean())


def records(frame: pd.DataFrame) -> list[dict]:
    """Folded copies as plain records (what ``hits.attrs["copies"]`` holds: JSON-safe, so the
    server can send them and pandas can copy them with the frame)."""
    from ..outputs.results import hits_to_records
    return hits_to_records(frame)


def refill(n_queries: int, top_n: int,
           candidates: Callable[[np.ndarray, int], tuple[pd.DataFrame, np.ndarray, object]],
           vectors: Callable[[np.ndarray, int, object], np.ndarray],
           similarity: float) -> tuple[pd.DataFrame, np.ndarray, float]:
    """Fold each query's page, asking for twice as many candidates until it holds ``top_n``
    distinct images (or :data:`FOLD_CANDIDATES` were asked for).

    ``candidates(queries, asked)`` gives the hits of those queries (numbered within them, in
    ``query``), the cells each scanned, and the cells themselves (None: its nearest); and
    ``vectors(ids, query, cells)`` the vectors of one query's hits. Returns the pages (with
    ``query``; ``attrs["copies"]`` maps a hit's id to its folded copies' records), the cells
    each query scanned, and when the last search ended."""
    pages: dict[int, Folded] = {}
    depth = np.zeros(n_queries, dtype=np.int64)
    todo = np.arange(n_queries)
    asked = min(2 * top_n + 10, FOLD_CANDIDATES)
    t_search = time.perf_counter()
    while len(todo):
        found, scanned, cells = candidates(todo, asked)
        t_search = time.perf_counter()
        depth[todo] = scanned
        for j, q in enumerate(todo):
            frame = found[found["query"] == j]
            vecs = vectors(frame["id"].to_numpy(), int(q), None if cells is None else cells[j])
            pages[int(q)] = fold(frame.assign(query=int(q)), vecs, top_n, asked, similarity)
        todo = np.array([q for q in todo if not complete(pages[int(q)], top_n)], dtype=np.int64)
        if asked >= FOLD_CANDIDATES:
            break
        asked = min(asked * 2, FOLD_CANDIDATES)
    hits = pd.concat([pages[q].hits for q in sorted(pages)], ignore_index=True)
    hits.attrs["copies"] = {int(i): records(c) for q in sorted(pages) for i, c in pages[q].copies.items()}
    return hits, depth, t_search
