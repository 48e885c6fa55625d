"""Derived data, prepared once for everybody: ``bioclip-nb prepare``.

Opening an atlas, the dashboard's scope menu, a scoped search and the atlas map each need
something computed from the whole atlas: the validation record (rows and distinct ids), the
record count of each scope, each scope's bitmap and cell counts, the HNSW coarse quantizer,
the map's layout. Without ``prepare`` each is computed on first need, once, and kept in the
user's cache; ``prepare`` computes them all up front, into that cache or into a directory an
administrator names (``--derived-dir``, read by everybody through ``BIOCLIP_NB_DERIVED_DIR``,
and may then be made read-only).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..core.atlas import Atlas
from ..errors import EncoderUnavailableError
from ..layout import Scope


@dataclass(frozen=True)
class Step:
    """One piece of derived data: a name and the function that makes it."""

    name: str
    run: Callable[[Atlas], object]


def _map(atlas: Atlas) -> object:
    from ..insight.explore import atlas_map
    return atlas_map(atlas)


def _quantizer(atlas: Atlas) -> object:
    from ..core.quantizer import build_sidecar
    return build_sidecar(atlas.index, atlas.cache_dir)


def _hit_columns(atlas: Atlas) -> object:
    from ..core import hitcolumns
    written = hitcolumns.write(atlas.metadata, atlas.cache_dir, progress=False)
    atlas.attach_hit_columns()
    return written


def steps(atlas: Atlas, with_map: bool = True, with_quantizer: bool = True,
          with_hit_columns: bool = True) -> list[Step]:
    """What ``prepare`` computes for ``atlas``, in order."""
    out = [Step("scope counts", lambda a: a.scope_counts())]
    if with_hit_columns:
        out.append(Step("hit columns", _hit_columns))
    for scope in (s for s in Scope if s is not Scope.ALL):
        out.append(Step(f"bitmap and cell counts: {scope.value}",
                        lambda a, s=scope: (a.bitmap(s), a.cell_counts(s))))
    if atlas.full_vectors is not None:
        out.append(Step("re-ranking pool", lambda a: a.exactness.calibrate()))
    if atlas.nlist > 1:
        if with_quantizer and atlas.nlist >= 1024:
            out.append(Step("HNSW coarse quantizer", _quantizer))
        if with_map:
            out.append(Step("atlas map layout", _map))
    return out


def prepare(atlas: Atlas, with_map: bool = True, with_quantizer: bool = True,
            progress: bool = True, with_hit_columns: bool = True) -> dict[str, float]:
    """Compute every piece of derived data of ``atlas`` (validation happened on open); returns
    seconds per step. Writes go to ``atlas.settings.cache_dir``. Without ``with_hit_columns``
    (a laptop short of disk: about 100 bytes a record) searches read their rows from DuckDB."""
    seconds: dict[str, float] = {}
    todo = steps(atlas, with_map, with_quantizer, with_hit_columns)
    for step in tqdm(todo, disable=not progress, desc="preparing", unit="step"):
        t0 = time.perf_counter()
        step.run(atlas)
        seconds[step.name] = time.perf_counter() - t0
    return seconds


def prepare_runtime(model_id: str, cache_dir: Path) -> dict:
    """Export and check the fast CPU runtime of ``model_id`` now, into ``cache_dir``; its record
    as JSON."""
    import dataclasses

    from ..encoders import load_encoder
    encoder = load_encoder(model_id, device="cpu", runtime="torch")
    if not hasattr(encoder, "prepare_runtime"):
        sys.stderr.write(f"{model_id} runs in numpy; it has no runtime to prepare\n")
        return {"model": model_id, "chosen": "numpy"}
    record = encoder.prepare_runtime(log_to=lambda m: sys.stderr.write(m + "\n"), cache_dir=cache_dir)
    return dataclasses.asdict(record)


def prepare_labels(model_id: str, cache_dir: Path) -> dict:
    """Embed the Tree of Life names with ``model_id``'s text tower now, into ``cache_dir`` (for
    models whose label embeddings are not published); what was made, as JSON."""
    from ..layout import model_spec
    spec = model_spec(model_id)
    if spec is None or spec.kind != "openclip":
        sys.stderr.write(f"{model_id}: its Tree of Life labels are published (or it has none); nothing to embed\n")
        return {"model": model_id, "labels": "published" if spec is not None and spec.predicts else "none"}
    from ..encoders.bioclip import BioClipEncoder
    encoder = BioClipEncoder.load_open_clip(model_id, runtime="torch", compute_labels=True, labels_root=cache_dir,
                                            progress=True)
    if encoder.labels is None:
        raise EncoderUnavailableError(encoder.labels_note)
    return {"model": model_id, "labels": len(encoder.labels.names)}
