"""Synthetic atlases: hierarchical clusters of unit vectors with matching taxonomy.

For benchmarks, the nprobe lessons and tests at scale, where real embeddings cannot be had.
Each species has a centre made of kingdom, phylum, class, order, family and genus offsets of
shrinking size, so nearby vectors share ranks the way BioCLIP embeddings do. The metadata
carries the published layout's quirks: some groups have no ``class`` (like ray-finned fishes),
some records have no URL, one common name is hostile HTML and some are non-ASCII.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..layout import RANKS

#: Number of children at each level below the root: kingdoms, phyla per kingdom, ...
DEFAULT_BRANCHING = (4, 3, 3, 3, 3, 3, 4)
#: Standard deviation of each level's offset from its parent (kingdom first), then noise.
LEVEL_SCALES = (1.0, 0.8, 0.65, 0.5, 0.4, 0.32, 0.25)
NOISE = 0.4
KINGDOMS = ("Animalia", "Plantae", "Fungi", "Chromista", "Protozoa", "Bacteria")
HOSTILE_NAME = "<script>alert('x')</script> beetle"
#: Community data a page must never run: a publisher, a record id and an image URL.
HOSTILE_PUBLISHER = '"><img src=x onerror="window.__pwned=1">'
HOSTILE_SOURCE_ID = '7" onmouseover="window.__pwned=1'
HOSTILE_URL = "javascript:window.__pwned=1"
UNICODE_NAMES = ("Mésange charbonnière", "Bergfink 🐦", "Ωmega moth", "Шмель")


@dataclass(frozen=True)
class Taxonomy:
    """Species of a synthetic tree: one row per species, one column per rank, and centres."""

    table: pd.DataFrame        # columns RANKS + common_name
    centres: np.ndarray        # (n_species, dim) float32, not normalised


def make_taxonomy(dim: int = 768, branching=DEFAULT_BRANCHING, seed: int = 0) -> Taxonomy:
    """A tree with ``prod(branching)`` species."""
    rng = np.random.default_rng(seed)
    rows: list[list[str | None]] = [[]]
    centres = [np.zeros(dim, dtype=np.float32)]
    for level, (fan, scale) in enumerate(zip(branching, LEVEL_SCALES)):
        new_rows, new_centres = [], []
        for k, (parent, c) in enumerate(zip(rows, centres)):
            for j in range(fan):
                name = _name(level, k * fan + j, j)
                new_rows.append(parent + [name])
                new_centres.append(c + rng.normal(0, scale / np.sqrt(dim), dim).astype(np.float32) * np.sqrt(dim) / 8)
        rows, centres = new_rows, new_centres
    table = pd.DataFrame(rows, columns=list(RANKS))
    # Like ray-finned fishes in the Tree of Life: one whole class has no name.
    table.loc[table["class"] == table["class"].iloc[len(table) // 2], "class"] = None
    table["common_name"] = [f"{g} {s} ({i})" if i % 3 else None
                            for i, (g, s) in enumerate(zip(table["genus"], table["species"]))]
    table.loc[1, "common_name"] = HOSTILE_NAME
    for i, name in enumerate(UNICODE_NAMES):
        table.loc[2 + i, "common_name"] = name
    return Taxonomy(table, np.stack(centres).astype(np.float32))


def _name(level: int, serial: int, j: int) -> str:
    """Unique names per rank (``Fam0042``); species epithets are unique within a genus."""
    if level == 0:
        return KINGDOMS[j % len(KINGDOMS)] + ("" if j < len(KINGDOMS) else str(j))
    if level == len(RANKS) - 1:
        return f"sp{j:02d}"
    return f"{RANKS[level][:3].capitalize()}{serial:04d}"


def make_vectors(tax: Taxonomy, n: int, seed: int = 0, chunk: int = 200_000,
                 progress: bool = False, spectrum: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``(vectors (n, dim) unit float32, species index per vector)``.

    Within a species the variation is isotropic noise by default (``spectrum=0``): every
    direction varies as much as every other, the hardest case for compressed codes. With
    ``spectrum=a`` the same total variance is spread as ``1 / k**a`` over the ``k``-th of a random
    set of orthogonal directions, so that a few dozen directions carry most of it, as image
    embeddings' variation does (``a=1``: the top 100 of 768 directions hold about 70%).
    """
    rng = np.random.default_rng(seed + 1)
    n_species, dim = tax.centres.shape
    # Species abundance is skewed, as in nature: a few common, many rare.
    weights = rng.pareto(1.2, n_species) + 0.05
    species = rng.choice(n_species, size=n, p=weights / weights.sum())
    shape = noise_shape(dim, spectrum, seed) if spectrum else None
    out = np.empty((n, dim), dtype=np.float32)
    for start in tqdm(range(0, n, chunk), disable=not progress, desc="vectors", unit="chunk"):
        sp = species[start:start + chunk]
        noise = rng.normal(0, NOISE, (len(sp), dim)).astype(np.float32) * np.sqrt(1 / 8)
        v = tax.centres[sp] + (noise if shape is None else noise @ shape)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        out[start:start + chunk] = v
    return out, species


def noise_shape(dim: int, spectrum: float, seed: int = 0) -> np.ndarray:
    """A ``(dim, dim)`` map that turns isotropic noise into noise of the same expected size
    whose variance along the ``k``-th of random orthogonal directions is proportional to
    ``1 / k**spectrum``."""
    rng = np.random.default_rng(seed + 7)
    basis, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    var = 1.0 / np.arange(1, dim + 1) ** float(spectrum)
    scale = np.sqrt(var * dim / var.sum())
    return (scale[:, None] * basis.T).astype(np.float32)


def make_records(tax: Taxonomy, species: np.ndarray, seed: int = 0) -> pd.DataFrame:
    """Metadata for each vector (``id`` = position) with realistic scope flags and URLs."""
    rng = np.random.default_rng(seed + 2)
    n = len(species)
    rec = tax.table.iloc[species].reset_index(drop=True)
    rec.insert(0, "id", np.arange(n, dtype=np.int64))
    source = rng.choice(["gbif", "eol", "bioscan", "fathomnet"], size=n, p=[0.62, 0.3, 0.05, 0.03])
    inat = (source == "gbif") & (rng.random(n) < 0.7)
    publisher = np.where(inat, "iNaturalist.org",
                         np.where(source == "gbif", "Naturalis Biodiversity Center",
                                  np.where(source == "eol", "Encyclopedia of Life", source)))
    has_url = rng.random(n) < 0.92
    photo = rng.integers(1_000_000, 400_000_000, size=n)
    urls = np.where(inat, [f"https://inaturalist-open-data.s3.amazonaws.com/photos/{p}/original.jpg" for p in photo],
                    np.where(source == "eol", [f"https://content.eol.org/data/media/{p % 97:02x}/{p}.jpg" for p in photo],
                             [f"https://api.gbif.org/v1/image/cache/{p}.jpg" for p in photo]))
    rec["url"] = [u if h else None for u, h in zip(urls, has_url)]
    rec["source_dataset"] = source
    rec["source_id"] = [str(p) for p in rng.integers(1_000_000_000, 5_000_000_000, size=n)]
    rec["publisher"] = publisher
    rec["img_type"] = np.where(source == "gbif", "Occurrence", "Image")
    rec["basisOfRecord"] = np.where(source == "gbif", "HUMAN_OBSERVATION", None)
    rec["in_bioclip2_training"] = rng.random(n) < 0.8
    if n > 3:        # one record of hostile community data
        rec.loc[3, ["source_dataset", "publisher", "source_id", "url"]] = [
            "gbif", HOSTILE_PUBLISHER, HOSTILE_SOURCE_ID, HOSTILE_URL]
    return rec
