"""Atlases holding the same image more than once, as TreeOfLife-200M does.

* :func:`build_copies_atlas`: drawn specimens (the stand-in encoder, raw vectors kept) where
  some images are listed twice, under GBIF and again under EOL with their own record id and
  URL, and two different drawings share one URL.
* :func:`build_pq_copies_atlas`: IVF-PQ, no raw vectors kept (the published atlas's case),
  with planted copies of some vectors under new ids.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from bioclip_nb.builder import build_atlas, writer
from bioclip_nb.demo import synthetic
from bioclip_nb.demo.art import draw, traits
from bioclip_nb.layout import PIXEL_MODEL

from .dashatlas import RANKS, SPECIES

#: Files listed a second time, under EOL.
COPIED = ("Parus_major_0.jpg", "Vulpes_vulpes_2.jpg", "Amanita_muscaria_1.jpg")
#: Two different drawings published at one URL.
SHARED_URL = ("Perca_fluviatilis_0.jpg", "Perca_fluviatilis_3.jpg")


def build_copies_atlas(root: Path, host_base: str = "http://127.0.0.1:9") -> tuple[Path, pd.DataFrame]:
    """The drawn atlas with copies; returns its path and the metadata it was built from."""
    src = root / "copies-collection"
    src.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, sp in enumerate(SPECIES):
        rng = np.random.default_rng(300 + k)
        lineage = dict(zip(RANKS, sp[:7]))
        for j in range(6):
            name = f"{sp[5]}_{sp[6]}_{j}.jpg"
            draw(traits(lineage), rng).save(src / name, quality=90)
            n = len(rows)
            url = f"{host_base}/img/{n}.jpg" if name not in SHARED_URL else f"{host_base}/img/shared.jpg"
            rows.append({"file": name, **lineage, "common_name": sp[7], "url": url, "source_dataset": "gbif",
                         "source_id": str(5000 + n), "publisher": "iNaturalist.org"})
    for name in COPIED:                       # the same bytes again, from another source
        copy = name.replace(".jpg", "_eol.jpg")
        shutil.copyfile(src / name, src / copy)
        first = next(r for r in rows if r["file"] == name)
        rows.append({**first, "file": copy, "source_dataset": "eol", "source_id": f"eol-{first['source_id']}",
                     "url": f"{host_base}/eol/{copy}", "publisher": "Encyclopedia of Life"})
    table = pd.DataFrame(rows)
    table.to_csv(src / "metadata.csv", index=False)
    out = root / "copies-atlas"
    if not out.exists():
        build_atlas(src, out, model=PIXEL_MODEL, progress=False, batch_size=64)
    return out, table


def build_pq_copies_atlas(path: Path, n: int = 6000, planted: int = 10) -> tuple[Path, np.ndarray, dict[int, int]]:
    """IVF32,PQ16 over ``n`` synthetic vectors whose last ``planted`` are copies of the first
    ``planted``; no raw vectors kept. Returns the path, the vectors and {copy id: original id}."""
    tax = synthetic.make_taxonomy(seed=3)
    vectors, species = synthetic.make_vectors(tax, n, seed=3)
    copies = {n - planted + i: i for i in range(planted)}
    for copy, original in copies.items():
        vectors[copy] = vectors[original]
    records = synthetic.make_records(tax, species, seed=3)
    index = writer.train_index(vectors, "IVF32,PQ16", seed=3)
    writer.add_vectors(index, vectors)
    writer.write_atlas(path, index, records, model="hf-hub:imageomics/bioclip-2", source="copies fixture")
    return path, vectors, copies
