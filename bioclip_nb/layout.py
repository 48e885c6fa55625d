"""The atlas format and the models: every fact about them, defined once.

Everything else reads these from here. Adding a model (BioCLIP 2.5 embeds to 1024-d) is one
entry in :data:`MODELS`; a new atlas file or format version is an edit here.

This module is a leaf: it imports nothing from bioclip-nb and nothing heavy.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path

# --------------------------------------------------------------------------- files
#: The FAISS index inside an atlas (the published artifact's path).
INDEX_FILE = Path("faiss") / "index.index"
#: The DuckDB metadata inside an atlas (the published artifact's path).
METADATA_FILE = Path("duckdb") / "metadata.duckdb"
#: bioclip-nb's own atlases describe themselves here; the published layout has none.
MANIFEST_FILE = "atlas.json"
#: Raw vectors, kept by atlases bioclip-nb builds (exact recall, "more like this").
VECTORS_FILE = "vectors.npy"
#: Copies of an own atlas's images; their URLs are ``atlas:/images/...``.
IMAGES_DIR = "images"
#: The demo atlas's held-out query photos and their ``index.csv``.
QUERIES_DIR = "queries"
#: The URL scheme of images kept inside an atlas.
ATLAS_URL_SCHEME = "atlas:"
#: The newest ``atlas.json`` format this bioclip-nb reads and writes.
FORMAT_VERSION = 1


class Choice(str, Enum):
    """A closed set of names that parses user input with a message listing the choices."""

    @classmethod
    def parse(cls, value: str | Choice):
        """``Scope.parse("INat")`` -> ``Scope.INAT``; a ``ValueError`` naming the choices otherwise."""
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            label = cls.__name__.lower()
            raise ValueError(f"unknown {label} {value!r}: use one of {', '.join(m.value for m in cls)}") from None


# --------------------------------------------------------------------------- taxonomy
class Rank(Choice):
    """A Linnaean rank, valued by its metadata column name."""

    KINGDOM = "kingdom"
    PHYLUM = "phylum"
    CLASS = "class"
    ORDER = "order"
    FAMILY = "family"
    GENUS = "genus"
    SPECIES = "species"

    @property
    def index(self) -> int:
        """0 for kingdom .. 6 for species."""
        return RANKS.index(self.value)


#: The rank columns, kingdom to species (the species column holds the epithet only).
RANKS: tuple[str, ...] = tuple(rank.value for rank in Rank)


def parse_taxon(items: dict[str, str] | list[str] | tuple[str, ...] | None) -> dict[Rank, str]:
    """Turn ``{"class": "Aves"}`` or ``["class=Aves", "genus=Parus"]`` into ``{Rank: name}``."""
    if not items:
        return {}
    if isinstance(items, dict):
        pairs = [(str(k), str(v)) for k, v in items.items()]
    else:
        pairs = []
        for item in items:
            rank, sep, name = str(item).partition("=")
            if not sep or not name.strip():
                raise ValueError(f"taxon filter {item!r} must look like RANK=NAME, e.g. class=Aves")
            pairs.append((rank, name))
    taxon: dict[Rank, str] = {}
    for rank, name in pairs:
        if not name.strip():
            raise ValueError(f"taxon filter for {rank!r} has an empty name")
        taxon[Rank.parse(rank)] = name.strip()
    return taxon


def taxon_text(items) -> str:
    """A taxon filter as people write it: ``class=Aves; genus=Parus`` (empty for none)."""
    return "; ".join(f"{rank.value}={name}" for rank, name in parse_taxon(items).items())


# --------------------------------------------------------------------------- scopes
class Scope(Choice):
    """Which records a search may return (the SQL of each lives in ``metadata``)."""

    ALL = "all"
    URL = "url"
    INAT = "inat"
    TRAINING = "training"


# --------------------------------------------------------------------------- hits
#: Metadata columns the ``metadata`` table must have.
REQUIRED_COLUMNS: tuple[str, ...] = (
    "id", *RANKS, "common_name", "source_dataset", "source_id", "publisher", "img_type",
    "url_prefix_id", "identifier_suffix", "has_url", "in_bioclip2_training",
)
#: Metadata of a hit, in the order every output writes them.
HIT_COLUMNS: tuple[str, ...] = (
    *RANKS, "common_name", "source_dataset", "source_id", "uuid", "publisher", "img_type", "basisOfRecord",
    "url", "occurrence_url", "has_url", "in_bioclip2_training",
)
#: Columns of the hits DataFrame, in order (``query`` comes first for a batch). ``exact`` says
#: whether the hit's distance and similarity come from its full vector (else from its PQ code);
#: the last says how many IVF cells the search scanned for this hit's query (its depth).
RESULT_COLUMNS: tuple[str, ...] = ("rank", "id", "distance", "similarity", "exact", *HIT_COLUMNS, "cells_scanned")
#: A GBIF record's page is this plus its ``source_id``.
GBIF_OCCURRENCE = "https://www.gbif.org/occurrence/"


# --------------------------------------------------------------------------- models
@dataclass(frozen=True)
class ModelSpec:
    """One encoder bioclip-nb knows: its id (as atlases record it), width and abilities."""

    id: str
    dim: int
    display_name: str
    kind: str                 # "bioclip" (pybioclip), "openclip" (open_clip, labels embedded here) or "pixel"
    predicts: bool            # makes Tree of Life predictions
    embeds_text: bool         # can search by a name or description

    @property
    def from_hub(self) -> bool:
        """Whether its weights come from the Hugging Face hub (every kind but the stand-in)."""
        return self.kind in ("bioclip", "openclip")


BIOCLIP2 = "hf-hub:imageomics/bioclip-2"
#: BioCLIP 2.5 Huge (February 2026): OpenCLIP ViT-H/14, 1024-d; through open_clip (``kind="openclip"``).
BIOCLIP25 = "hf-hub:imageomics/bioclip-2.5-vith14"
PIXEL_MODEL = "bioclip-nb/pixel-768"
#: Every model bioclip-nb can open an atlas of, by id.
MODELS: dict[str, ModelSpec] = {m.id: m for m in (
    ModelSpec(BIOCLIP2, 768, "BioCLIP 2", "bioclip", predicts=True, embeds_text=True),
    ModelSpec(BIOCLIP25, 1024, "BioCLIP 2.5 Huge", "openclip", predicts=True, embeds_text=True),
    ModelSpec("hf-hub:imageomics/bioclip", 512, "BioCLIP", "bioclip", predicts=True, embeds_text=True),
    ModelSpec(PIXEL_MODEL, 768, "pixel stand-in", "pixel", predicts=False, embeds_text=False),
)}


def model_spec(model_id: str) -> ModelSpec | None:
    """The registry entry of ``model_id``, or None for a model bioclip-nb does not know."""
    return MODELS.get(model_id)


def display_name(model_id: str) -> str:
    """How people call a model: ``"BioCLIP 2"``; the id itself for an unknown model."""
    spec = MODELS.get(model_id)
    return spec.display_name if spec is not None else model_id


# --------------------------------------------------------------------------- manifest
class ManifestError(ValueError):
    """An ``atlas.json`` that cannot be read (re-raised as an ``AtlasError`` by the atlas)."""


@dataclass(frozen=True)
class Manifest:
    """What ``atlas.json`` records (inferred for the published layout)."""

    model: str
    dim: int
    metric: str
    count: int
    nlist: int
    format_version: int = FORMAT_VERSION
    created: str | None = None
    source: str | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> Manifest:
        """Parse ``atlas.json``; unknown keys are kept in ``extra``."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ManifestError(f"{path} is not valid JSON ({exc}); fix or delete it") from None
        if not isinstance(data, dict):
            raise ManifestError(f"{path} must hold a JSON object")
        missing = [k for k in ("model", "dim") if k not in data]
        if missing:
            raise ManifestError(f"{path} lacks {', '.join(missing)}; rebuild the atlas with `bioclip-nb build`")
        if int(data.get("format_version", 1)) > FORMAT_VERSION:
            raise ManifestError(f"{path} has format_version {data['format_version']}, newer than this "
                                f"bioclip-nb understands ({FORMAT_VERSION}); upgrade bioclip-nb")
        known = {"model", "dim", "metric", "count", "nlist", "format_version", "created", "source"}
        return cls(
            model=str(data["model"]), dim=int(data["dim"]), metric=str(data.get("metric", "l2")),
            count=int(data.get("count", -1)), nlist=int(data.get("nlist", -1)),
            format_version=int(data.get("format_version", 1)), created=data.get("created"),
            source=data.get("source"), extra={k: v for k, v in data.items() if k not in known},
        )

    @classmethod
    def inferred(cls, dim: int, metric: str, count: int, nlist: int) -> Manifest:
        """The manifest of the published layout, which has none: BioCLIP 2's vectors."""
        return cls(model=BIOCLIP2, dim=dim, metric=metric, count=count, nlist=nlist,
                   source="inferred (published layout)")

    def to_json(self) -> str:
        """The manifest as JSON text."""
        data = asdict(self)
        data.update(data.pop("extra"))
        return json.dumps(data, indent=2, sort_keys=True)
