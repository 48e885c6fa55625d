"""Small real atlases for tests: real FAISS files, real DuckDB files, built on the spot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bioclip_nb.builder import writer
from bioclip_nb.demo import synthetic
from bioclip_nb.layout import MANIFEST_FILE


@dataclass
class BuiltAtlas:
    path: Path
    vectors: np.ndarray
    records: pd.DataFrame


def build_synthetic_atlas(path: Path, n: int, factory: str | None = None, published_layout: bool = True,
                          model: str = "hf-hub:imageomics/bioclip-2", seed: int = 0,
                          keep_vectors: bool = False) -> BuiltAtlas:
    """An atlas of ``n`` hierarchical vectors; ``published_layout`` drops atlas.json."""
    tax = synthetic.make_taxonomy(seed=seed)
    vectors, species = synthetic.make_vectors(tax, n, seed=seed)
    records = synthetic.make_records(tax, species, seed=seed)
    index = writer.train_index(vectors, factory or writer.choose_index(n)[0], seed=seed)
    writer.add_vectors(index, vectors)
    writer.write_atlas(path, index, records, model=model, source="test fixture")
    if published_layout:
        (path / MANIFEST_FILE).unlink()
    if keep_vectors:
        np.save(path / "vectors.npy", vectors)
    return BuiltAtlas(path, vectors, records)
