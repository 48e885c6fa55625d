"""Build an atlas from your own images, locally or on a Dask cluster.

The build embeds images in chunks and checkpoints each chunk, so an interrupted build resumes
where it stopped. Everything is written into ``.<name>.partial`` beside the destination and
renamed into place only when complete; an existing atlas is replaced only with ``force``.
Unreadable images are skipped and listed in ``build-report.csv``; they never stop a build.

With ``scheduler`` set to a ``dask.distributed`` address, chunks are embedded by the
cluster's workers (which must see the same file system: on OSC, a project or scratch
directory). Each worker loads the encoder once.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from ..encoders import bioclip_available, load_encoder
from ..errors import UploadError
from ..layout import ATLAS_URL_SCHEME, BIOCLIP2, IMAGES_DIR, PIXEL_MODEL, VECTORS_FILE
from . import writer
from .sources import normalise_items, scan_source

COPY_PX = 1024


@dataclass(frozen=True)
class BuildResult:
    """What a build did."""

    path: Path
    count: int
    skipped: int
    chunks_computed: int
    chunks_reused: int
    model: str
    index: str
    seconds: float


def resolve_model(model: str, need_accelerator: bool = False) -> str:
    """``auto`` -> BioCLIP 2 when its weights are in the local cache (and, if asked, a GPU is
    present), else the stand-in. Name the model explicitly to download its weights."""
    if model != "auto":
        return model
    if not bioclip_available(BIOCLIP2):
        return PIXEL_MODEL
    if need_accelerator:
        import torch
        has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
        if not (torch.cuda.is_available() or has_mps):
            return PIXEL_MODEL
    return BIOCLIP2


def embed_chunk(model_id: str, files: list[str], rows: list[int], image_dir: str | None) -> dict:
    """Embed one chunk (runs locally or on a Dask worker). Returns vectors, ok rows, failures."""
    encoder = load_encoder(model_id, device="auto")
    images, ok, failures = [], [], []
    for row, f in zip(rows, files):
        try:
            img = _load(f)
        except (UploadError, OSError, ValueError) as exc:
            failures.append((row, f, str(exc)))
            continue
        if image_dir is not None:
            _save_copy(img, Path(image_dir) / f"{row:07d}.jpg")
        images.append(img)
        ok.append(row)
    vectors = encoder.embed(images) if images else np.zeros((0, encoder.dim), np.float32)
    return {"vectors": vectors, "rows": np.asarray(ok, dtype=np.int64), "failures": failures}


_FETCHER = None
_FETCHER_LOCK = threading.Lock()


def _fetcher():
    """One fetcher per process, so the per-host policies (rate, concurrency, budget) hold across
    every image a build fetches, not per image."""
    global _FETCHER
    from ..config import Settings
    from ..images import ImageFetcher
    with _FETCHER_LOCK:
        if _FETCHER is None:    # the machine's ledger: every worker process keeps the host policies together
            _FETCHER = ImageFetcher(workers=1, state_dir=Settings.from_env().state_dir)
        return _FETCHER


def _load(f: str) -> Image.Image:
    from ..images import load_upload
    if f.startswith(("http://", "https://")):
        result = _fetcher().fetch(f, variant="full")
        if not result.ok:
            raise OSError(f"{f}: {result.message}")
        return load_upload(result.data)
    return load_upload(Path(f))


def _save_copy(img: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    copy = img.copy()
    copy.thumbnail((COPY_PX, COPY_PX))
    tmp = path.with_suffix(".tmp")
    copy.save(tmp, format="JPEG", quality=90)
    tmp.replace(path)


def build_atlas(source: str | Path | pd.DataFrame, out: str | Path, model: str = "auto",
                scheduler: str | None = None, batch_size: int = 256, force: bool = False,
                copy_images: bool = True, keep_vectors: bool = True, progress: bool = True,
                on_chunk: Callable[[int, bool], None] | None = None, extra_records: pd.DataFrame | None = None,
                seed: int = 0) -> BuildResult:
    """Build an atlas at ``out`` from a folder or table of images (see the module docstring).

    ``batch_size`` is the number of images per checkpointed chunk. ``on_chunk(i, reused)``
    is called after each chunk. ``extra_records`` (same rows as the source) supplies or
    overrides metadata columns, e.g. scope flags for the demo.
    """
    t0 = time.perf_counter()
    out = Path(out).expanduser()
    if out.exists() and not force:
        raise FileExistsError(f"{out} already exists; pass --force to replace it")
    items = normalise_items(source.copy()) if isinstance(source, pd.DataFrame) else scan_source(source)
    model = resolve_model(model)
    work = out.with_name(f".{out.name}.partial")
    chunk_dir = work / "chunks"
    chunk_dir.mkdir(parents=True, exist_ok=True)
    image_dir = str(work / IMAGES_DIR) if copy_images else None

    # A chunk is named by what decides its contents (the model and the exact (row, file)
    # pairs), so a resumed build reuses a chunk only when it would compute the same thing;
    # a changed batch size, file list or model recomputes what changed and never mixes plans.
    n_chunks = (len(items) + batch_size - 1) // batch_size
    files = items["file"].astype(str).tolist()

    def spec(c):
        rows = list(range(c * batch_size, min(len(items), (c + 1) * batch_size)))
        return [files[r] for r in rows], rows

    names = [_chunk_name(model, *spec(c)) for c in range(n_chunks)]
    todo = [c for c in range(n_chunks) if not (chunk_dir / names[c]).is_file()]
    reused = n_chunks - len(todo)
    for c in range(n_chunks):
        if c not in todo and on_chunk:
            on_chunk(c, True)

    bar = tqdm(total=len(items), initial=reused * batch_size if todo else len(items), disable=not progress,
               desc="embedding", unit="img")
    for c, result in _run_chunks(todo, spec, model, image_dir, scheduler):
        _save_chunk(chunk_dir / names[c], result)
        bar.update(len(spec(c)[1]))
        if on_chunk:
            on_chunk(c, False)
    bar.close()

    vectors, rows, failures = _gather([chunk_dir / n for n in names])
    if image_dir is not None:
        _drop_stale_copies(Path(image_dir), rows)
    if len(rows) == 0:
        raise ValueError(f"none of the {len(items)} images could be read; see the messages above")
    records = _records(items, rows, copy_images, extra_records)
    factory, _ = writer.choose_index(len(rows))
    index = writer.train_index(vectors, factory, seed=seed)
    writer.add_vectors(index, vectors, progress=progress)
    for sub in ("faiss", "duckdb"):
        shutil.rmtree(work / sub, ignore_errors=True)
    writer.write_atlas(work, index, records, model=model, source=_describe(source),
                       extra={"skipped": len(failures), "builder": "bioclip-nb build"})
    if keep_vectors:
        np.save(work / VECTORS_FILE, vectors)
    pd.DataFrame(failures, columns=["row", "file", "reason"]).to_csv(work / "build-report.csv", index=False)
    shutil.rmtree(chunk_dir)
    move_into_place(work, out)
    return BuildResult(out, len(rows), len(failures), len(todo), reused, model, factory, time.perf_counter() - t0)


def _run_chunks(todo, spec, model, image_dir, scheduler):
    """Yield ``(chunk, result)`` as chunks finish, locally or on a Dask cluster."""
    if not todo:
        return
    if scheduler in (None, "", "local"):
        for c in todo:
            files, rows = spec(c)
            yield c, embed_chunk(model, files, rows, image_dir)
        return
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise ImportError("building on a cluster needs dask.distributed: pip install 'dask[distributed]'") from None
    with Client(scheduler) as client:
        futures = {}
        for c in todo:
            files, rows = spec(c)
            futures[client.submit(embed_chunk, model, files, rows, image_dir, pure=False)] = c
        for fut in as_completed(futures):
            yield futures[fut], fut.result()


def _save_chunk(path: Path, result: dict) -> None:
    buf = io.BytesIO()
    np.savez(buf, vectors=result["vectors"], rows=result["rows"],
             failures=np.array(json.dumps(result["failures"])))
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)           # a chunk file exists only when complete


def _gather(paths: list[Path]):
    vecs, rows, failures = [], [], []
    for path in paths:
        with np.load(path) as z:
            vecs.append(z["vectors"])
            rows.append(z["rows"])
            failures.extend(json.loads(str(z["failures"])))
    vectors = np.concatenate(vecs).astype(np.float32) if vecs else np.zeros((0, 0), np.float32)
    return vectors, np.concatenate(rows) if rows else np.zeros(0, np.int64), failures


def _records(items: pd.DataFrame, rows: np.ndarray, copied: bool, extra: pd.DataFrame | None) -> pd.DataFrame:
    rec = items.iloc[rows].reset_index(drop=True).copy()
    if extra is not None:
        ext = extra.iloc[rows].reset_index(drop=True)
        for col in ext.columns:
            rec[col] = ext[col].to_numpy()
    own = [u if isinstance(u, str) and u.startswith(("http://", "https://")) else None for u in rec["url"]]
    if copied:
        local = [f"{ATLAS_URL_SCHEME}/{IMAGES_DIR}/{r:07d}.jpg" for r in rows]
        keep = rec["has_image"].to_numpy() if "has_image" in rec else np.ones(len(rec), bool)
        rec["url"] = [o or (loc if k else None) for o, loc, k in zip(own, local, keep)]
    else:
        rec["url"] = [o or (f if str(f).startswith(("http://", "https://")) else None) for o, f in zip(own, rec["file"])]
    rec.insert(0, "id", np.arange(len(rec), dtype=np.int64))
    return rec


def _chunk_name(model: str, files: list[str], rows: list[int]) -> str:
    """The file name of a chunk: a hash of the model and its (row, file) pairs."""
    h = hashlib.sha1(model.encode() + b"\0")
    for row, f in zip(rows, files):
        h.update(f"{row}\t{f}\0".encode())
    return f"{h.hexdigest()[:24]}.npz"


def _drop_stale_copies(image_dir: Path, rows: np.ndarray) -> None:
    """Remove image copies left by an earlier plan for rows this build does not hold."""
    keep = {f"{int(r):07d}.jpg" for r in rows}
    if image_dir.is_dir():
        for path in image_dir.glob("*.jpg"):
            if path.name not in keep:
                path.unlink()


def _describe(source) -> str:
    return "table" if isinstance(source, pd.DataFrame) else str(Path(source).expanduser().resolve())


def move_into_place(work: Path, out: Path) -> None:
    """Rename a finished ``work`` directory to ``out``, replacing (then deleting) what was there."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
    work.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
