"""Searching many photos at once: one row per photo, for the dashboard, the CLI and tutorial 04.

Each photo is checked and encoded (a bad one gets its error in its row, the rest go on),
the good ones are searched in one batched call, and :func:`summary` gives the table people
read: the model's prediction, the neighbours' consensus, and the best hit, per photo.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..encoders import Encoding, EncodingCache
from ..encoders.within import Within
from ..errors import UploadError
from ..images.uploads import load_upload
from ..names import clean, scientific_name
from ..request import SearchRequest
from ..taxonomy import neighbour_consensus
from .provenance import Provenance, columns, sha256, with_prediction
from .results import per_query

if TYPE_CHECKING:
    from ..faces import AtlasLike, EncoderLike

#: The summary table's columns, in order.
SUMMARY_COLUMNS = ("file", "prediction", "prediction_score", "prediction_within", "consensus", "consensus_agreement",
                   "top_hit", "top_hit_common_name", "top_similarity", "top_hit_id", "top_hit_url", "hits", "error",
                   "query_sha256")


@dataclass
class Photo:
    """One photo of a batch: its encoding and hits, or why it has none."""

    name: str
    sha256: str
    encoding: Encoding | None = None
    hits: pd.DataFrame | None = None
    predictions: dict | None = None        # restricted predictions, when a restriction was asked for
    within: str = ""
    error: str | None = None

    def predict(self, rank: str = "species", k: int = 1) -> list:
        """The prediction shown for this photo (restricted if one was asked for)."""
        if self.encoding is None:
            return []
        if self.predictions is not None:
            from ..layout import Rank
            return list(self.predictions.get(Rank.parse(rank), ()))[:k]
        return self.encoding.predict(rank, k)


def files(paths: Iterable[str | Path]) -> list[tuple[str, Path]]:
    """``(name, path)`` of image files, for :func:`encode_photos` (which reads them)."""
    return [(Path(p).name, Path(p)) for p in paths]


def encode_photos(encoder, photos: Iterable[tuple[str, bytes | Path]], cache: EncodingCache | None = None,
                  progress: Callable[[int], None] | None = None, batch_size: int | None = None) -> list[Photo]:
    """Check and encode each photo, given as bytes or a path (once per distinct content with
    ``cache``); never raises for a bad photo: its ``error`` says what is wrong.

    A local model gets the photos in batches of ``batch_size`` (default: the model's own, one
    photo on a CPU, where batching measured no gain; 16 on a GPU), one forward pass each; a
    server's encoder is sent each file as it is (the server batches what arrives together)."""
    out: list[Photo] = []
    pending: list[tuple[Photo, bytes, object]] = []
    batched = hasattr(encoder, "encode_many") and not hasattr(encoder, "encode_bytes")
    size = (batch_size or int(getattr(encoder, "batch_size", 1))) if batched else 1

    def flush() -> None:
        encodings = encoder.encode_many([img for _p, _d, img in pending], batch_size=size) if batched else None
        for i, (photo, data, image) in enumerate(pending):
            fresh = encodings[i] if encodings is not None else None
            photo.encoding = encode_bytes(encoder, data, cache, name=photo.name, image=image, encoded=fresh)
        pending.clear()

    for done, (name, data) in enumerate(photos, start=1):
        try:
            data = data.read_bytes() if isinstance(data, Path) else data
        except OSError as exc:
            out.append(Photo(name, "", error=f"cannot read {data}: {exc.strerror or exc}"))
            continue
        photo = Photo(name, sha256(data))
        out.append(photo)
        try:
            image = load_upload(data, name=name)
        except UploadError as exc:
            photo.error = str(exc)
        else:
            known = cache.peek(cache.key(data), encoder.model_id) if cache is not None else None
            if known is not None:
                photo.encoding = encode_bytes(encoder, data, cache, name=name, image=image)
            else:
                pending.append((photo, data, image))
                if len(pending) >= size:
                    flush()
        if progress is not None:
            progress(done)
    if pending:
        flush()
    return out


def encode_bytes(encoder, data: bytes, cache: EncodingCache | None = None, name: str | None = None,
                 image=None, encoded: Encoding | None = None) -> Encoding:
    """One image file's encoding. The file is checked here (``UploadError`` names it, as
    ``name``, and says what is wrong) before any model sees it, unless ``image`` is the checked
    picture; a server's encoder is sent the file as it is. ``encoded``: already encoded (in a
    batch), only to be remembered."""
    image = load_upload(data, name=name) if image is None else image
    send = getattr(encoder, "encode_bytes", None)

    def encode() -> Encoding:
        if encoded is not None:
            return encoded
        return send(data) if send is not None else encoder.encode(image)

    return cache.get_or_encode(data, encoder.model_id, encode) if cache is not None else encode()


def search_photos(atlas: AtlasLike, encoder: EncoderLike, photos: list[Photo], request: SearchRequest | None = None,
                  within: Within | None = None, strict: bool = False) -> list[Photo]:
    """Search every encoded photo in one batched call with ``request`` (the defaults if None);
    restrict predictions to ``within`` if given (a restriction the model's labels cannot make
    raises ``ValueError`` when ``strict``, else the photo's ``within`` says so)."""
    good = [p for p in photos if p.encoding is not None]
    if good:
        vectors = np.stack([p.encoding.embedding for p in good])
        hits = (request or SearchRequest()).run(atlas, vectors, model=good[0].encoding.model_id)
        copies = hits.attrs.get("copies", {})
        for photo, frame in zip(good, per_query(hits, len(good))):
            photo.hits = frame.drop(columns="query").reset_index(drop=True)
            photo.hits.attrs.update({"copies": {i: c for i, c in copies.items() if i in set(photo.hits["id"])}})
            if within is not None and photo.encoding.predictions:
                try:
                    photo.predictions = encoder.predict(photo.encoding.embedding, within)
                    photo.within = within.label
                except ValueError as exc:
                    if strict:
                        raise
                    photo.within = f"not restricted: {exc}"
    return photos


def summary_row(photo: Photo) -> dict:
    """One photo's row of the summary table."""
    row: dict[str, object] = dict.fromkeys(SUMMARY_COLUMNS)
    row.update(file=photo.name, error=photo.error, query_sha256=photo.sha256, prediction_within=photo.within or None)
    pred = photo.predict("species", 1)
    if pred:
        row.update(prediction=pred[0].name, prediction_score=round(pred[0].score, 4))
    hits = photo.hits
    if hits is not None:
        row["hits"] = len(hits)
        if len(hits):
            best = hits.iloc[0]
            votes = {c.rank.value: c for c in neighbour_consensus(hits)}
            species = votes.get("species")
            row.update(top_hit=scientific_name(best.get("genus"), best.get("species")),
                       top_hit_common_name=clean(best.get("common_name")),
                       top_similarity=round(float(best["similarity"]), 4), top_hit_id=int(best["id"]),
                       top_hit_url=clean(best.get("url")),
                       consensus=species.name if species else None,
                       consensus_agreement=round(species.agreement, 3) if species else None)
        elif photo.error is None:
            row["error"] = "no results in this scope and taxon"
    return row


def summary(photos: list[Photo]) -> pd.DataFrame:
    """The batch table: one row per photo, in upload order."""
    return pd.DataFrame([summary_row(p) for p in photos], columns=list(SUMMARY_COLUMNS))


def photo_provenance(base: Provenance, photo: Photo) -> Provenance:
    """``base`` (the atlas and settings) completed with one photo: its name, hash and prediction."""
    top = photo.predict("species", 1)
    prov = Provenance(**{**base.__dict__, "query_kind": "image", "query": photo.name, "query_sha256": photo.sha256})
    return with_prediction(prov, f"{top[0].name} ({top[0].score:.3f})" if top and top[0].name else "",
                           photo.within if photo.predictions is not None else "")


def summary_csv(photos: list[Photo], base: Provenance) -> str:
    """The summary table as CSV, each row with its search's provenance."""
    extra = pd.DataFrame([columns(photo_provenance(base, p)) for p in photos], index=range(len(photos)))
    table = pd.concat([summary(photos), extra.drop(columns=["query_sha256", "prediction_within"])], axis=1)
    return table.to_csv(index=False)
