"""Small real atlases for tests: real FAISS files, real DuckDB files, built on the spot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bioclip_nb.builder import writer
from bioclip_nb.demo import synthetic
from bioclip_nb.layout import MANIFEST_FILE

#: The URL of record 5 of a published-layout fixture, kept whole in its suffix.
WHOLE_URL = "https://images.example.org/whole/5.jpg"


@dataclass
class BuiltAtlas:
    path: Path
    vectors: np.ndarray
    records: pd.DataFrame


def build_synthetic_atlas(path: Path, n: int, factory: str | None = None, published_layout: bool = True,
                          model: str = "hf-hub:imageomics/bioclip-2", seed: int = 0,
                          keep_vectors: bool = False, spectrum: float = 0.0) -> BuiltAtlas:
    """An atlas of ``n`` hierarchical vectors; ``published_layout`` drops atlas.json.
    ``spectrum`` shapes the variation within a species (``synthetic.make_vectors``)."""
    tax = synthetic.make_taxonomy(seed=seed)
    vectors, species = synthetic.make_vectors(tax, n, seed=seed, spectrum=spectrum)
    records = synthetic.make_records(tax, species, seed=seed)
    index = writer.train_index(vectors, factory or writer.choose_index(n)[0], seed=seed)
    writer.add_vectors(index, vectors)
    writer.write_atlas(path, index, records, model=model, source="test fixture")
    if published_layout:
        (path / MANIFEST_FILE).unlink()
        # Upstream's quirk: a NULL url_prefix_id with the whole URL in the suffix.
        import duckdb
        con = duckdb.connect(str(path / "duckdb" / "metadata.duckdb"))
        con.execute(f"UPDATE metadata SET url_prefix_id = NULL, identifier_suffix = '{WHOLE_URL}' WHERE id = 5")
        con.close()
    if keep_vectors:
        np.save(path / "vectors.npy", vectors)
    return BuiltAtlas(path, vectors, records)
