"""``bioclip-nb search``: encode the queries, search (here or through a server), write the results.

Every output carries the search's provenance (``provenance``); ``--format summary`` is the
one-row-per-photo table the dashboard's batch tab and tutorial 04 show (``batch``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UsageError
from ..outputs import batch, formats, results
from ..outputs.provenance import Provenance, for_search
from ..request import SearchRequest


def cmd_search(args) -> int:
    """Run ``bioclip-nb search``; returns the exit code."""
    from ..config import Settings
    from ..core.locate import locate_atlas
    from ..errors import ServerError
    from ..service.commands import note, search_connection
    given = sum([bool(args.images), args.text is not None, args.vectors is not None])
    if given != 1:
        raise UsageError("give exactly one of IMAGE..., --text or --vectors")
    if args.predict_within and not args.images:
        raise UsageError("--predict-within restricts the prediction for image queries; give IMAGE...")
    if formats.get(args.format).searches is None and not args.images:
        raise UsageError(f"--format {args.format} describes photos; give IMAGE...")
    settings = Settings.from_env()
    named = _named_atlas(args.atlas, settings)         # None: the server's atlas, else the demo
    conn, text = search_connection(args, named, settings), None
    if conn is not None:
        try:
            text = search(args, conn.atlas, lambda: conn.encoder, lambda: conn.occurrences)
        except ServerError as exc:
            if args.server:
                raise
            note(f"{exc}; searching in-process")
        finally:
            conn.close()
    if text is None:
        from ..core.atlas import Atlas
        from ..encoders import load_encoder
        from ..images.fetch import machine_fetcher
        from ..occurrences import Occurrences
        with Atlas.open(named or locate_atlas(None, settings), settings=settings) as atlas:
            text = search(args, atlas, lambda: load_encoder(atlas.model, device=args.device, runtime=args.runtime,
                                                                   background=False),
                          lambda: Occurrences(machine_fetcher(settings, atlas.path), settings.gbif_api))
    emit(text, args.output)
    return 0


def _named_atlas(explicit, settings):
    """The atlas the user named (``--atlas``, ``BIOCLIP_NB_ATLAS``, the downloaded data), or None."""
    from ..core.locate import locate_atlas
    from ..errors import AtlasError
    try:
        return locate_atlas(explicit, settings, build_demo=False)
    except AtlasError:
        return None


def search(args, atlas, encoder_factory, occurrences_factory=None) -> str:
    """Encode the queries and search ``atlas`` (an ``Atlas`` or a server's ``RemoteAtlas``); the
    output text. ``occurrences_factory()`` gives what looks up GBIF records (``--with-occurrences``)."""
    from ..encoders.within import Within
    try:
        request = SearchRequest(top_n=args.top_n, nprobe=args.nprobe, scope=args.scope, taxon=args.taxon,
                                fold=args.fold).for_atlas(atlas.nlist)
    except ValueError as exc:
        raise UsageError(f"--{exc}") from None
    within = Within.parse(args.predict_within) if args.predict_within else None
    base = for_search(atlas, request)
    fmt = formats.get(args.format)
    if args.images:
        encoder = encoder_factory()
        photos = batch.encode_photos(encoder, batch.files(args.images))
        if fmt.photos is None:                          # tables with a row per photo say what went wrong
            for path, photo in zip(args.images, photos):
                if photo.error:
                    raise _upload_error(path, photo.error)
        batch.search_photos(atlas, encoder, photos, request, within=within, strict=True)
        if fmt.photos is not None:
            return formats.write_photos(fmt.key, formats.PhotoBatch(photos, base, encoder.model_id)).decode("utf-8")
        provs = [batch.photo_provenance(base, photo) for photo in photos]
        hits = _stack([p.hits for p in photos])
        labels = [_label(str(path), photo) for path, photo in zip(args.images, photos)]
    elif args.vectors is not None:
        vectors = _read_vectors(args.vectors, atlas.dim)
        labels = [f"{args.vectors}[{i}]" for i in range(len(vectors))]
        provs = [Provenance(**{**base.__dict__, "query_kind": "vectors", "query": label}) for label in labels]
        hits = request.run(atlas, vectors)
    else:
        encoder = encoder_factory()
        vectors = encoder.encode_text(args.text)[None, :]
        labels = [f"text: {args.text}"]
        provs = [Provenance(**{**base.__dict__, "query_kind": "text", "query": args.text})]
        hits = request.run(atlas, vectors, model=encoder.model_id)
    hits = _occurrences(args, hits if "query" in hits else hits.assign(query=0), occurrences_factory)
    pages = formats.Searches([f.drop(columns="query") for f in results.per_query(hits, len(provs))], provs, labels)
    return formats.write_searches(fmt.key, pages).decode("utf-8")


def _occurrences(args, hits: pd.DataFrame, factory) -> pd.DataFrame:
    """``hits`` with GBIF's place, date and licence when ``--with-occurrences`` asked for them."""
    if not (args.with_occurrences or args.format == "dwc") or factory is None or not len(hits):
        return hits
    from ..occurrences import with_occurrences
    return with_occurrences(hits, factory().lookup(hits))


def _stack(frames: list[pd.DataFrame | None]) -> pd.DataFrame:
    parts = [f.assign(query=q) for q, f in enumerate(frames) if f is not None]
    return pd.concat(parts, ignore_index=True)


def _label(path: str, photo: batch.Photo) -> str:
    top = photo.predict("species", 1)
    if not top or not top[0].name:
        return path
    within = f" within {photo.within}" if photo.predictions is not None else ""
    return f"{path} · predicted {top[0].name} ({top[0].score:.2f}){within}"


def _read_vectors(path: Path, dim: int) -> np.ndarray:
    try:
        vectors = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise OSError(f"cannot read {path} as a .npy array: {exc}") from None
    if vectors.ndim not in (1, 2) or not np.issubdtype(vectors.dtype, np.number):
        raise ValueError(f"{path} must hold a numeric (n, {dim}) or ({dim},) array, got {vectors.dtype} {vectors.shape}")
    return np.atleast_2d(vectors)


def _upload_error(path: str, message: str):
    from ..errors import UploadError
    return UploadError(message if str(Path(path).name) in message else f"{path}: {message}")


def emit(text: str, output: str) -> None:
    """Write to stdout (``-``) or a file."""
    if output in ("-", "", None):
        sys.stdout.write(text)
    else:
        Path(output).write_text(text, encoding="utf-8")
