"""The dashboard's state, with no widgets: what was asked, what was found, what is shown.

``SearchSession`` holds the query (an upload, a text, an image URL or a result), its
encoding (computed once per distinct upload), the settings, the hits, the fetched images,
the selection and a status line. Views read it and call its methods; tests drive it directly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pandas as pd

from ..encoders import Encoder, Encoding, EncodingCache
from ..encoders.within import Within
from ..errors import UploadError
from ..faces import AtlasLike, FetcherLike, FiguresLike
from ..images.fetch import FetchResult
from ..images.uploads import load_upload
from ..layout import Rank, display_name
from ..names import clean, scientific_name
from ..outputs import provenance, results
from ..outputs.provenance import sha256
from ..request import SearchRequest
from ..taxonomy import Consensus, TaxonNode, neighbour_consensus, result_tree
from .places import Places
from .status import EXPECTED_ERRORS, OUR_ERRORS, Level, Query, Status, display_bytes, display_or_none
from .wording import describe_failures

#: The status line's parts live in ``status``; importing them from here still works.
__all__ = ["EXPECTED_ERRORS", "OUR_ERRORS", "Level", "Query", "SearchSession", "Status", "display_bytes"]


class SearchSession:
    """One user's search state. Thread-safe where fetching runs in the background."""

    def __init__(self, atlas: AtlasLike, encoder_factory: Callable[[], Encoder], fetcher: FetcherLike,
                 cache: EncodingCache | None = None, figures: FiguresLike | None = None, occurrences=None):
        """``atlas``, the encoder ``encoder_factory`` makes, ``fetcher`` and ``figures`` are the
        faces of ``bioclip_nb.faces``: in this process, or a server's (``service.client``)."""
        self.atlas = atlas
        self.places = Places(occurrences)       # the hits' GBIF records and the filter on them
        self._figures = figures
        self.server: str | None = None          # the bioclip-nb server answering, if any
        self._encoder_factory = encoder_factory
        self._encoder: Encoder | None = None
        self.fetcher = fetcher
        self.cache = cache or EncodingCache()
        self.request = SearchRequest(fold=True).for_atlas(atlas.nlist)   # the controls' settings (folded cards)
        self.query: Query | None = None
        self.encoding: Encoding | None = None
        self.encoded_by: str | None = None      # the runtime that encoded the query ("cache": none)
        self.hits: pd.DataFrame | None = None
        self.images: dict[int, FetchResult] = {}
        self.selected: int | None = None
        self._lock = threading.RLock()          # status, timings, hits and images change from two threads
        self._status = Status("Upload a photo, type a name, or paste an image URL.")
        self._timings: dict[str, float] = {}
        self._cancel = threading.Event()
        self.searches = 0
        self.cells_scanned: int | None = None
        self.marks: set[int] = set()            # hits the user marked (cleared by a new query)
        self.checklist: Within | None = None    # a list of names the prediction is restricted to
        self._restricted: tuple[tuple, dict | None, str] | None = None
        self._cleared = 0                       # marks the last new query cleared (said once)
        self.batch: list = []                   # photos uploaded together (outputs.batch.Photo)
        self.batch_images: dict[int, bytes | None] = {}   # their pictures, for the gallery's query
        self._query_data: bytes | None = None   # the query photo's own bytes (another model re-encodes them)

    @property
    def status(self) -> Status:
        """The line the user reads."""
        with self._lock:
            return self._status

    @status.setter
    def status(self, value: Status) -> None:
        with self._lock:
            self._status = value

    @property
    def timings(self) -> dict[str, float]:
        """Seconds per step of the current query (a copy)."""
        with self._lock:
            return dict(self._timings)

    @timings.setter
    def timings(self, value: dict[str, float]) -> None:
        with self._lock:
            self._timings = dict(value)

    def note_time(self, step: str, seconds: float) -> None:
        """Record how long one step took."""
        with self._lock:
            self._timings[step] = seconds

    @property
    def encodes(self) -> int:
        """Image encodings actually computed (cache misses) in this session."""
        return self.cache.misses

    # ------------------------------------------------------------------ encoder
    @property
    def encoder_factory(self) -> Callable[[], Encoder]:
        """What makes the atlas's encoder (called once, on first use)."""
        return self._encoder_factory

    @property
    def encoder(self) -> Encoder:
        """The atlas's encoder, loaded on first use."""
        if self._encoder is None:
            self._encoder = self._encoder_factory()
        return self._encoder

    @property
    def figures(self):
        """What draws the Plots tab: ``figures.LocalFigures`` of the atlas, or a server's."""
        if self._figures is None:
            from ..insight.figures import LocalFigures
            self._figures = LocalFigures(self.atlas)
        return self._figures

    # ------------------------------------------------------------------ queries
    def set_upload(self, data: bytes, name: str = "upload", kind: str = "image", source: str = "") -> Encoding:
        """Encode an uploaded file (once per distinct content); raises ``UploadError``."""
        t0 = time.perf_counter()
        img = load_upload(data)
        ran: list[str] = []

        def encode() -> Encoding:
            ran.append(self.encoder.runtime)
            return self.encoder.encode(img)

        enc = self.cache.get_or_encode(data, self.atlas.model, encode)
        self.timings = {"encode": time.perf_counter() - t0}
        self.encoded_by = ran[0] if ran else "cache"
        self.new_query(Query(kind, name, display_bytes(img), source=source, sha256=sha256(data)), enc)
        self._query_data = data
        self.status = Status(f"{name}: encoded. Press Search, or change the settings." + self._marks_note())
        return enc

    def new_query(self, query: Query | None, encoding: Encoding | None) -> None:
        """A new query (None: none): its encoding replaces the last, and the marks of the last query's hits go."""
        self._cleared = len(self.marks)
        with self._lock:
            self.query, self.encoding = query, encoding
            self.marks = set()
            self._restricted = None
            self._query_data = None

    def _marks_note(self) -> str:
        n, self._cleared = self._cleared, 0
        return f" (a new query: {n} mark{'s' if n != 1 else ''} of the last results cleared)" if n else ""

    def set_text(self, text: str) -> None:
        """A name or description as the query (BioCLIP only)."""
        text = (text or "").strip()
        if not text:
            raise ValueError("Type a name or a description first, e.g. 'Vulpes vulpes' or 'red fox in snow'.")
        t0 = time.perf_counter()
        vector = self.encoder.encode_text(text)
        self.timings = {"encode": time.perf_counter() - t0}
        self.encoded_by = None
        self.new_query(Query("text", text, source=text), Encoding(vector, self.atlas.model, {}))
        self.status = Status(f"Text query: {text}" + self._marks_note())

    def set_url(self, url: str) -> Encoding:
        """Fetch an image URL a person typed (public addresses only, see ``images.guard``), then
        treat it as an upload."""
        url = (url or "").strip()
        if not url:
            raise ValueError("Paste an image URL first (http or https).")
        result = self.fetcher.fetch_user_url(url, variant="full")
        if not result.ok:
            raise UploadError(f"Could not use that URL: {result.message}.")
        return self.set_upload(result.data, name=url.rsplit("/", 1)[-1] or url, kind="url", source=url)

    def more_like(self, hit_id: int) -> Encoding:
        """Use a result as the new query (its stored vector if the atlas keeps them, else its image)."""
        row = self.hit(hit_id)
        return self.use_record(int(hit_id), f"more like #{int(row['rank'])} ({_name(row)})", row.get("url"))

    def use_record(self, record_id: int, label: str | None = None, url: str | None = None) -> Encoding:
        """A record of the atlas as the query (a result, or the ``like`` of a shared link)."""
        label = label or f"more like record {record_id}"
        vec = self.atlas.stored_vector(int(record_id))
        if vec is not None:
            image = self.images.get(int(record_id))
            self.new_query(Query("result", label, image.data if image is not None and image.ok else None,
                                  source=str(record_id)), Encoding(vec, self.atlas.model, {}))
            self.timings = {"encode": 0.0}
            self.encoded_by = "stored vector"
            return self.encoding
        if url is None:
            url = self.atlas.lookup([int(record_id)]).iloc[0].get("url")
        full = self.fetcher.fetch(url, variant="full", key=record_id)
        if not full.ok:
            raise UploadError(f"That result's image is unavailable ({full.message}), so it cannot be searched with.")
        return self.set_upload(full.data, name=label, kind="result", source=str(record_id))

    # ------------------------------------------------------------------ atlas
    @property
    def query_input(self) -> bytes | str | None:
        """What another model can encode of the query: the photo's bytes, or the text (None for
        a record of the atlas, or no query)."""
        q = self.query
        if q is None:
            return None
        return q.source if q.kind == "text" else self._query_data

    def switch(self, source) -> str:
        """Search another atlas from now on (a ``sources.Source``: its model, encoder, fetcher and
        figures). The query follows, encoded again by the new atlas's model: a photo, an image
        URL or a text (each distinct photo is encoded once per model). A result of the old atlas
        cannot follow: its record is not in the new one. Returns a note on the query for the
        status line ('' when there was none)."""
        self.cancel_fetches()
        old, data = self.query, self.query_input
        with self._lock:
            self.atlas, self.fetcher = source.atlas, source.fetcher
            self._encoder_factory, self._encoder, self._figures = source.encoder, None, source.figures
            self.places = Places(source.occurrences)
            nlist = source.atlas.nlist
            self.request = self.request.replace(nprobe=min(self.request.nprobe or 1, nlist)).for_atlas(nlist)
            self.hits, self.images, self.selected, self.cells_scanned = None, {}, None, None
            self.batch, self.batch_images = [], {}
        self.new_query(None, None)
        if old is None:
            return ""
        if old.kind == "text":
            self.set_text(old.source)
        elif data is not None:
            self.set_upload(data, name=old.label, kind=old.kind, source=old.source)
        else:
            return f"The query ({old.label}) was a record of the other atlas: choose a new query."
        return f"{old.label}: encoded again by {display_name(self.atlas.model)}."

    # ------------------------------------------------------------------ search
    def search(self) -> pd.DataFrame:
        """Search with the current encoding and settings (never re-encodes)."""
        if self.encoding is None:
            raise ValueError("Nothing to search with yet: upload a photo, type a name, or paste a URL.")
        self.cancel_fetches()
        hits = self.request.run(self.atlas, self.encoding.embedding, model=self.encoding.model_id)
        self.searches += 1
        self.cells_scanned = (hits.attrs.get("cells_scanned") or [None])[0]
        for step, seconds in hits.attrs.get("timings", {}).items():
            self.note_time(step, seconds)
        self.places.reset()
        with self._lock:
            self.hits = hits
            self.images = {}
            shown = set(hits["id"].astype(int))
            keep = self.selected if self.selected in shown else None
            self.selected = keep if keep is not None else (int(hits["id"].iloc[0]) if len(hits) else None)
            self.marks &= shown                  # marks survive a re-search while their hit is still shown
        if len(hits) == 0:
            self.status = Status("No results in this scope and taxon. Widen the scope, clear the taxon filter "
                                 "or search deeper.", Level.WARNING)
        else:
            self.status = Status(f"{len(hits)} results ({self.exactness()}). Fetching images...", Level.WORKING)
        return hits

    def exactness(self) -> str:
        """Whether the page was re-ranked with full vectors or ranked by the index's compressed
        codes alone, in words (:func:`results.exactness`); '' with no results."""
        return results.exactness(self.hits)

    def cancel_fetches(self) -> threading.Event:
        """Stop the previous search's image fetches; return a fresh cancel flag."""
        self._cancel.set()
        self._cancel = threading.Event()
        return self._cancel

    def fetch_images(self, on_result: Callable[[FetchResult], None] | None = None,
                     cancel: threading.Event | None = None) -> list[FetchResult]:
        """Fetch the hits' thumbnails (blocking; results delivered as they arrive). Stops early
        when ``cancel`` (or a newer query's :meth:`cancel_fetches`) is set."""
        hits = self.hits
        if hits is None or not len(hits):
            return []
        own = self._cancel
        cancel = cancel or own
        t0 = time.perf_counter()
        out = []
        pairs = list(zip(hits["id"].astype(int), hits["url"]))
        for result in self.fetcher.fetch_many(pairs, variant="thumb", cancel=cancel):
            if cancel.is_set() or own.is_set():
                break
            with self._lock:
                self.images[int(result.key)] = result
            out.append(result)
            if on_result is not None:
                on_result(result)
        if not (cancel.is_set() or own.is_set()):
            self.note_time("images", time.perf_counter() - t0)
            failed = describe_failures(out)
            self.status = Status(self.timing_line() + (f" · {failed}" if failed else ""),
                                 Level.WARNING if failed else Level.INFO)
        return out

    def full_image(self, hit_id: int, cancel: threading.Event | None = None) -> FetchResult:
        """The selected result's full image."""
        row = self.hit(hit_id)
        return self.fetcher.fetch(row.get("url"), variant="full", key=hit_id, cancel=cancel)

    def timing_line(self) -> str:
        """'encode 0.21 s (onnxruntime) · search 0.004 s (16 cells) · metadata 0.012 s · images 0.8 s'."""
        names = ("encode", "search", "metadata", "images")
        timings = self.timings
        cells = f" ({self.cells_scanned} cells)" if self.cells_scanned and self.atlas.nlist > 1 else ""
        by = {"search": cells, "encode": f" ({self.encoded_by})" if self.encoded_by else ""}
        parts = [f"{n} {timings[n]:.3g} s" + by.get(n, "") for n in names if n in timings]
        return " · ".join(parts + ([self.exactness()] if self.exactness() else []))

    # ------------------------------------------------------------------ results
    def hit(self, hit_id: int) -> pd.Series:
        if self.hits is None:
            raise ValueError("No results yet.")
        rows = self.hits[self.hits["id"] == int(hit_id)]
        if not len(rows):
            raise ValueError(f"Result {hit_id} is not in the current results.")
        return rows.iloc[0]

    def select(self, hit_id: int) -> pd.Series:
        row = self.hit(hit_id)
        self.selected = int(hit_id)
        return row

    # ------------------------------------------------------------------ marks
    def set_mark(self, hit_id: int, marked: bool = True) -> None:
        """Mark a shown hit (or unmark it)."""
        self.hit(hit_id)
        with self._lock:
            (self.marks.add if marked else self.marks.discard)(int(hit_id))

    def export_hits(self, marked_only: bool = False) -> pd.DataFrame:
        """The hits to export (all of them, or the marked ones) with their GBIF place and date
        when looked up; each export format adds :meth:`provenance` (``outputs.formats``)."""
        if self.hits is None or not len(self.hits):
            raise ValueError("Nothing to export yet: search first.")
        hits = self.places.shown(self.hits)
        if marked_only:
            if not self.marks:
                raise ValueError("No hit is marked: mark some (the ☆ on a card), or untick 'marked only'.")
            hits = hits[hits["id"].isin(self.marks)]
        if not len(hits):
            raise ValueError("No result passes the Where and when filters: widen them to export.")
        return self.places.annotate(hits)

    def copies(self, hit_id: int) -> pd.DataFrame:
        """The folded copies of a shown hit (empty when it stands for one image)."""
        records = (self.hits.attrs.get("copies") or {}).get(int(hit_id), []) if self.hits is not None else []
        return pd.DataFrame.from_records(records)

    # ------------------------------------------------------------------ batch
    def run_batch(self, items: list[tuple[str, bytes]]) -> list:
        """Encode and search photos uploaded together (``outputs.batch``: a bad one keeps its
        reason), with the current settings; kept in :attr:`batch`."""
        from ..outputs import batch
        self.cancel_fetches()
        photos = batch.encode_photos(self.encoder, items, cache=self.cache)
        batch.search_photos(self.atlas, self.encoder, photos, self.request, within=self.prediction_within())
        self.batch = photos
        self.batch_images = {i: display_or_none(data) for i, (_n, data) in enumerate(items)
                             if photos[i].encoding is not None}
        bad = sum(p.error is not None for p in photos)
        self.status = Status(f"{len(photos)} photos: one row each in the Batch tab; open one to see its results."
                             + (f" {bad} could not be used (the table says why)." if bad else ""),
                             Level.WARNING if bad else Level.INFO)
        return photos

    def open_batch_photo(self, i: int) -> None:
        """Make photo ``i`` of the batch the query (its encoding is kept: no re-encoding)."""
        photo = self.batch[i]
        if photo.encoding is None:
            raise ValueError(f"{photo.name} could not be used: {photo.error}")
        self.new_query(Query("image", photo.name, self.batch_images.get(i), sha256=photo.sha256), photo.encoding)

    # ------------------------------------------------------------------ prediction
    def prediction_within(self) -> Within | None:
        """What the prediction is restricted to: the checklist, else the taxon filter, else nothing."""
        return self.checklist or Within.of_taxon(self.request.taxon)

    def predictions(self, rank: Rank | str = Rank.SPECIES, k: int = 5):
        """The model's top ``k`` at ``rank``, restricted (see :meth:`prediction_within`) when asked."""
        if self.encoding is None:
            return []
        restricted = self._restriction()[0]
        if restricted is not None:
            return list(restricted.get(Rank.parse(rank), ()))[:k]
        return self.encoding.predict(rank, k)

    def restriction_note(self) -> str:
        """What the Prediction tab says about a restriction ('' for none)."""
        return self._restriction()[1]

    def _restriction(self) -> tuple[dict | None, str]:
        within = self.prediction_within()
        if within is None or self.encoding is None or not self.encoding.predictions:
            return None, ""
        key = (id(self.encoding), within)
        cached = self._restricted
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
        try:
            preds, note = self.encoder.predict(self.encoding.embedding, within), f"Restricted to {within.label}."
        except ValueError as exc:
            preds, note = None, f"Not restricted ({exc}); showing the prediction over the whole Tree of Life."
        self._restricted = (key, preds, note)
        return preds, note

    # ------------------------------------------------------------------ provenance
    def provenance(self) -> provenance.Provenance:
        """How the current results were obtained (every export carries it)."""
        q = self.query
        top = self.predictions(Rank.SPECIES, 1)
        within = self.prediction_within() if top and self.restriction_note().startswith("Restricted") else None
        return provenance.for_search(
            self.atlas, self.request, query_kind=q.kind if q else "",
            query=(q.source or q.label) if q else "", query_sha256=q.sha256 if q else "",
            predicted=f"{top[0].name} ({top[0].score:.3f})" if top and top[0].name else "",
            prediction_within=within.label if within else "", ranked_by=provenance.ranking(self.hits))

    def consensus(self) -> list[Consensus]:
        return neighbour_consensus(self.hits) if self.hits is not None and len(self.hits) else []

    def tree(self) -> TaxonNode | None:
        return result_tree(self.hits) if self.hits is not None and len(self.hits) else None


def _name(row: pd.Series) -> str:
    return clean(row.get("common_name")) or scientific_name(row.get("genus"), row.get("species")) or "unnamed"
