"""The demo atlas of drawn specimens: 265 real species from 6 kingdoms, drawn procedurally, searchable offline.

``bioclip-nb demo`` draws 38 specimens of each species in ``data/demo_species.csv`` (correct
ranks kingdom to species, with common names), embeds them with BioCLIP 2 when its weights
are here and a GPU is present, otherwise with the pixel stand-in (recorded
in ``atlas.json``), and writes an atlas whose images live in ``images/``, with realistic scope
flags and 60 held-out query images in ``queries/`` (listed in ``queries/index.csv``).

``bioclip-nb demo --synthetic N`` instead writes a vectors-only atlas of N hierarchical
clustered vectors with matching metadata, for benchmarks and the nprobe lessons.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..builder import writer
from ..layout import BIOCLIP2, MANIFEST_FILE, QUERIES_DIR, RANKS, VECTORS_FILE, model_spec
from ..names import clean
from . import art, synthetic

DEMO_VERSION = 1
PER_SPECIES = 38
N_QUERIES = 60


def species_table() -> pd.DataFrame:
    """The demo's species: ranks kingdom .. species (epithet) and common names."""
    with resources.files("bioclip_nb.demo.data").joinpath("demo_species.csv").open(encoding="utf-8") as fh:
        df = pd.read_csv(fh, dtype=str, keep_default_na=False)
    for col in df.columns:
        df[col] = pd.Series([clean(v) for v in df[col]], dtype=object)
    return df


def is_current_demo(path: Path) -> bool:
    """Whether ``path`` holds a complete demo atlas of this version."""
    try:
        manifest = json.loads((path / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return False
    return manifest.get("demo_version") == DEMO_VERSION and (path / QUERIES_DIR / "index.csv").is_file()


def ensure_demo_atlas(dest: Path, model: str = "auto", progress: bool = True) -> Path:
    """The demo atlas at ``dest``, built on first use (one builder at a time)."""
    dest = Path(dest).expanduser()
    if is_current_demo(dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _lock(dest.parent / f".{dest.name}.lock"):
        if not is_current_demo(dest):           # another process may have built it meanwhile
            build_demo(dest, model=model, force=True, progress=progress)
    return dest


@contextlib.contextmanager
def _lock(path: Path):
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_demo(dest: Path, model: str = "auto", per_species: int = PER_SPECIES, n_queries: int = N_QUERIES,
               force: bool = False, progress: bool = True, seed: int = 0) -> Path:
    """Draw, embed and index the demo (see the module docstring)."""
    from ..builder.pipeline import build_atlas, resolve_model
    dest = Path(dest).expanduser()
    species = species_table()
    model = resolve_model(model, need_accelerator=True)
    rng = np.random.default_rng(seed)
    query_species = set(np.sort(rng.choice(len(species), size=min(n_queries, len(species)), replace=False)))
    with tempfile.TemporaryDirectory(prefix="bioclip-demo-", dir=dest.parent if dest.parent.exists() else None) as tmp:
        staging = Path(tmp)
        items, queries = _draw_all(species, per_species, query_species, staging, seed, progress)
        extra = _scope_flags(len(items), seed)
        build_atlas(items, dest, model=model, force=force, progress=progress, extra_records=extra, seed=seed,
                    batch_size=1024)
        qdir = dest / QUERIES_DIR
        qdir.mkdir(exist_ok=True)
        for q in queries:
            shutil.copyfile(q["src"], qdir / q["file"])
        pd.DataFrame([{k: q[k] for k in ("file", *RANKS)} for q in queries]).to_csv(qdir / "index.csv", index=False)
    manifest = json.loads((dest / MANIFEST_FILE).read_text())
    manifest.update({"demo_version": DEMO_VERSION, "source": "bioclip-nb demo: procedurally drawn specimens of real species"})
    (dest / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return dest


def _draw_all(species: pd.DataFrame, per_species: int, query_species: set, staging: Path, seed: int,
              progress: bool) -> tuple[pd.DataFrame, list[dict]]:
    rows, queries = [], []
    for i, sp in tqdm(list(species.iterrows()), disable=not progress, desc="drawing", unit="species"):
        lineage = {r: sp[r] for r in RANKS}
        traits = art.traits(lineage)
        rng = np.random.default_rng([seed, i])
        slug = f"{sp['genus']}_{sp['species']}"
        for j in range(per_species + (1 if i in query_species else 0)):
            img = art.draw(traits, rng)
            path = staging / f"{slug}_{j:02d}.jpg"
            img.save(path, format="JPEG", quality=92)
            if j == per_species:
                queries.append({"src": path, "file": f"{slug}.jpg", **lineage})
            else:
                rows.append({"file": str(path), **lineage, "common_name": sp["common_name"]})
    return pd.DataFrame(rows), queries


def _scope_flags(n: int, seed: int) -> pd.DataFrame:
    """Provenance like the real corpus: GBIF (much of it iNaturalist) and EOL; some without image."""
    rng = np.random.default_rng([seed, 99])
    source = rng.choice(["gbif", "eol"], size=n, p=[0.65, 0.35])
    inat = (source == "gbif") & (rng.random(n) < 0.7)
    publisher = np.where(inat, "iNaturalist.org", np.where(source == "gbif", "Naturalis Biodiversity Center",
                                                           "Encyclopedia of Life"))
    return pd.DataFrame({
        "source_dataset": source,
        "source_id": [str(v) for v in rng.integers(1_000_000_000, 5_000_000_000, n)],
        "publisher": publisher,
        "img_type": np.where(source == "gbif", "Occurrence", "Image"),
        "in_bioclip2_training": rng.random(n) < 0.8,
        "has_image": rng.random(n) < 0.95,
    })


def build_synthetic(dest: Path, n: int, force: bool = False, progress: bool = True, seed: int = 0,
                    model: str = BIOCLIP2, keep_vectors: bool = False) -> Path:
    """A vectors-only atlas of ``n`` hierarchical clustered vectors (no images), as wide as
    ``model`` embeds; with ``keep_vectors`` it keeps them (searches then re-rank exactly)."""
    dest = Path(dest).expanduser()
    if dest.exists() and not force:
        raise FileExistsError(f"{dest} already exists; pass --force to replace it")
    if n < 1:
        raise ValueError(f"--synthetic needs a positive number of vectors, got {n}")
    spec = model_spec(model)
    tax = synthetic.make_taxonomy(dim=spec.dim if spec is not None else 768, seed=seed)
    vectors, species = synthetic.make_vectors(tax, n, seed=seed, progress=progress)
    records = synthetic.make_records(tax, species, seed=seed)
    factory, _ = writer.choose_index(n)
    index = writer.train_index(vectors, factory, seed=seed)
    writer.add_vectors(index, vectors, progress=progress)
    work = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    if keep_vectors:
        np.save(work / VECTORS_FILE, vectors)
    del vectors
    writer.write_atlas(work, index, records, model=model, source=f"bioclip-nb demo --synthetic {n}",
                       extra={"synthetic": True})
    from ..builder.pipeline import move_into_place
    move_into_place(work, dest)
    return dest
