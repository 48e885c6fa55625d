"""What every encoder gives: an :class:`Encoding` (the embedding and predictions at each rank)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from ..layout import Rank


@dataclass(frozen=True)
class Prediction:
    """One predicted taxon at a rank, with its lineage and probability."""

    rank: Rank
    name: str | None                 # "Vulpes vulpes" at species, the rank's name otherwise
    lineage: tuple[str | None, ...]  # kingdom .. this rank; None where the labels leave it empty
    score: float
    common_name: str | None = None


@dataclass(frozen=True)
class Encoding:
    """What one forward pass gives: the embedding and predictions at every rank."""

    embedding: np.ndarray            # (dim,) float32, unit norm
    model_id: str
    predictions: dict[Rank, tuple[Prediction, ...]] = field(default_factory=dict)
    note: str = ""                   # why there are no predictions, where a model that predicts gave none

    def predict(self, rank: Rank | str = Rank.SPECIES, k: int = 5) -> list[Prediction]:
        """Top ``k`` predictions at ``rank`` (empty for a model without labels)."""
        return list(self.predictions.get(Rank.parse(rank), ()))[:k]


@runtime_checkable
class Encoder(Protocol):
    """What the atlas builder, the CLI and the dashboard need from a model."""

    model_id: str
    dim: int
    runtime: str            # what runs the model: "torch", "onnxruntime", ..., "numpy", "server (...)"
    runtime_note: str       # why, in a sentence for people

    def encode(self, image: Image.Image, k: int = 5) -> Encoding: ...

    def embed(self, images: list[Image.Image]) -> np.ndarray: ...

    def encode_text(self, text: str) -> np.ndarray: ...

    def predict(self, embedding: np.ndarray, within=None, k: int = 5) -> dict[Rank, tuple[Prediction, ...]]: ...
