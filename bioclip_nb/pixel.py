"""``bioclip-nb/pixel-768``: a deterministic, weight-free stand-in encoder.

It describes an image by colour layout, colour histogram, silhouette and gradient-orientation
texture, then maps those ~560 numbers to 768 dimensions with a fixed random projection (which
keeps distances, by Johnson-Lindenstrauss) and L2-normalises. It needs no download and gives
the same vector for the same pixels on every machine.

It is NOT biologically meaningful: it knows colours and shapes, not species. It exists so the
demo atlas and the dashboard work where BioCLIP 2's weights cannot be had; it makes no
taxonomic predictions and cannot embed text.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .errors import EncoderUnavailableError
from .model import PIXEL_MODEL, Encoding

SIZE = 96
_SEED = 768


def _blocks(arr: np.ndarray, n: int) -> np.ndarray:
    """Mean over an ``n x n`` grid of blocks (last axis kept)."""
    h, w = arr.shape[:2]
    arr = arr[: h - h % n, : w - w % n]
    return arr.reshape(n, arr.shape[0] // n, n, arr.shape[1] // n, *arr.shape[2:]).mean(axis=(1, 3))


def _unit(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.float64).ravel()
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def pixel_features(image: Image.Image) -> np.ndarray:
    """The hand-made feature vector (before projection)."""
    rgb = np.asarray(image.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR), dtype=np.float64) / 255.0
    gray = rgb @ np.array([0.299, 0.587, 0.114])
    # colour layout: mean colour on a 6x6 grid, centred
    layout = _blocks(rgb, 6)
    layout = layout - layout.mean(axis=(0, 1))
    # colour histogram, 4 levels per channel
    q = np.minimum((rgb * 4).astype(int), 3)
    hist = np.bincount((q[..., 0] * 16 + q[..., 1] * 4 + q[..., 2]).ravel(), minlength=64)
    hist = np.sqrt(hist / hist.sum())
    # silhouette: pixels unlike the border colour, on an 8x8 grid
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]]).mean(axis=0)
    fg = (np.abs(rgb - border).sum(axis=-1) > 0.25).astype(np.float64)
    silhouette = _blocks(fg[..., None], 8)[..., 0] - 0.5
    # texture: gradient orientation histograms (8 bins) on a 4x4 grid, plus globally
    gy, gx = np.gradient(gray)
    mag = np.hypot(gx, gy)
    ang = (np.arctan2(gy, gx) % np.pi) / np.pi * 8
    bins = np.minimum(ang.astype(int), 7)
    onehot = np.zeros((*gray.shape, 8))
    np.put_along_axis(onehot, bins[..., None], mag[..., None], axis=-1)
    local = np.sqrt(_blocks(onehot, 4))
    fine = np.sqrt(_blocks(np.abs(gray - _smooth(gray))[..., None], 8)[..., 0])
    return np.concatenate([
        1.2 * _unit(layout), 1.0 * _unit(hist), 1.0 * _unit(silhouette), 1.0 * _unit(local),
        0.6 * _unit(onehot.sum(axis=(0, 1))), 0.6 * _unit(fine),
    ])


def _smooth(gray: np.ndarray) -> np.ndarray:
    pad = np.pad(gray, 1, mode="edge")
    return sum(pad[i:i + gray.shape[0], j:j + gray.shape[1]] for i in range(3) for j in range(3)) / 9.0


class PixelEncoder:
    """The stand-in encoder (see the module docstring)."""

    model_id = PIXEL_MODEL
    dim = 768

    def __init__(self):
        n = len(pixel_features(Image.new("RGB", (SIZE, SIZE))))
        rng = np.random.default_rng(_SEED)
        self._projection = rng.normal(0, 1 / np.sqrt(self.dim), (n, self.dim))

    def embed(self, images: list[Image.Image]) -> np.ndarray:
        """Unit vectors ``(n, 768)``."""
        feats = np.stack([pixel_features(img) for img in images]) @ self._projection
        feats /= np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
        return feats.astype(np.float32)

    def encode(self, image: Image.Image, k: int = 5) -> Encoding:
        """Embedding only: the stand-in makes no predictions."""
        return Encoding(self.embed([image])[0], self.model_id, {})

    def encode_many(self, images: list[Image.Image], k: int = 5, batch_size: int = 64,
                    progress: bool = False) -> list[Encoding]:
        return [Encoding(e, self.model_id, {}) for e in self.embed(images)]

    def encode_text(self, text: str) -> np.ndarray:
        raise EncoderUnavailableError(
            f"{PIXEL_MODEL} is a pixel-statistics stand-in and cannot embed text; text search needs "
            "BioCLIP 2 (an atlas built with hf-hub:imageomics/bioclip-2)")
