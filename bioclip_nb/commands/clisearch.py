"""``bioclip-nb search``: encode the queries, search (here or through a server), write the results.

Every output carries the search's provenance (``provenance``); ``--format summary`` is the
one-row-per-photo table the dashboard's batch tab and tutorial 04 show (``batch``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .. import limits
from ..errors import UsageError
from ..outputs import batch, darwincore, results
from ..outputs.provenance import Provenance, for_search, stamp


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
    if args.format == "summary" and not args.images:
        raise UsageError("--format summary describes photos; give IMAGE...")
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
    nprobe = args.nprobe if args.nprobe is not None else limits.default_nprobe(atlas.nlist)
    try:
        limits.check_nprobe(nprobe, atlas.nlist)
    except ValueError as exc:
        raise UsageError(f"--{exc}") from None
    within = Within.parse(args.predict_within) if args.predict_within else None
    settings = {"top_n": args.top_n, "nprobe": nprobe, "scope": args.scope, "taxon": args.taxon or None, "fold": args.fold}
    base = for_search(atlas, nprobe, args.scope, args.taxon, folded=args.fold)
    if args.images:
        encoder = encoder_factory()
        photos = batch.encode_photos(encoder, batch.files(args.images))
        if args.format not in ("summary", "dwc"):         # tables with a row per photo say what went wrong
            for path, photo in zip(args.images, photos):
                if photo.error:
                    raise _upload_error(path, photo.error)
        batch.search_photos(atlas, encoder, photos, within=within, strict=True, **settings)
        if args.format == "summary":
            return batch.summary_csv(photos, base)
        if args.format == "dwc":
            return darwincore.photos_table(photos, encoder.model_id, base.searched_at).to_csv(index=False)
        provs = [batch.photo_provenance(base, photo) for photo in photos]
        hits = _stack([p.hits for p in photos])
        labels = [_label(str(path), photo) for path, photo in zip(args.images, photos)]
        return _render(args.format, _occurrences(args, hits, occurrences_factory), provs, labels)
    if args.vectors is not None:
        vectors = _read_vectors(args.vectors, atlas.dim)
        labels = [f"{args.vectors}[{i}]" for i in range(len(vectors))]
        provs = [Provenance(**{**base.__dict__, "query_kind": "vectors", "query": label}) for label in labels]
        hits = atlas.search(vectors, model=None, **settings)
    else:
        encoder = encoder_factory()
        vectors = encoder.encode_text(args.text)[None, :]
        labels = [f"text: {args.text}"]
        provs = [Provenance(**{**base.__dict__, "query_kind": "text", "query": args.text})]
        hits = atlas.search(vectors, model=encoder.model_id, **settings)
    if "query" not in hits:
        hits = hits.assign(query=0)
    hits = _occurrences(args, hits, occurrences_factory)
    if args.format == "dwc":
        return darwincore.hits_table(hits).to_csv(index=False)
    return _render(args.format, hits, provs, labels)


def _occurrences(args, hits: pd.DataFrame, factory) -> pd.DataFrame:
    """``hits`` with GBIF's place, date and licence when ``--with-occurrences`` asked for them."""
    if not (args.with_occurrences or args.format == "dwc") or factory is None or not len(hits):
        return hits
    from ..occurrences import with_occurrences
    return with_occurrences(hits, factory().lookup(hits))


def _render(fmt: str, hits: pd.DataFrame, provs: list[Provenance], labels: list[str]) -> str:
    frames = results.per_query(hits, len(provs))
    if fmt == "json":
        return results.to_json([stamp(f.drop(columns="query"), p) for f, p in zip(frames, provs)]) + "\n"
    if fmt == "csv":
        out = stamp(hits, provs)
        return results.to_csv(out if len(provs) > 1 else out.drop(columns="query"))
    return results.to_table(frames, labels)


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
