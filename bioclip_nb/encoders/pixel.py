"""``bioclip-nb/pixel-768``: a deterministic, weight-free stand-in encoder.

It finds the subject (pixels unlike a colour plane fitted to the image border), crops to it,
and describes it by colour histograms, colour layout, silhouette and gradient-orientation
texture, then maps those ~530 numbers to 768 dimensions with a fixed random projection (which
keeps distances, by Johnson-Lindenstrauss) and L2-normalises. It needs no download and gives
the same vector for the same pixels on every machine.

It is NOT biologically meaningful: it knows colours and shapes, not species. It exists so the
demo atlas and the dashboard work where BioCLIP 2's weights cannot be had; it makes no
taxonomic predictions and cannot embed text.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..errors import UnsupportedQueryError
from ..layout import BIOCLIP2, PIXEL_MODEL, display_name
from .base import Encoding

SIZE = 128
CROP = 64
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


def foreground(rgb: np.ndarray) -> np.ndarray:
    """Pixels unlike the background, where the background is a colour plane fitted to the border."""
    h, w, _ = rgb.shape
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    border = np.zeros((h, w), bool)
    border[:3], border[-3:], border[:, :3], border[:, -3:] = True, True, True, True
    design = np.stack([np.ones(border.sum()), xx[border], yy[border]], axis=1)
    coef, *_ = np.linalg.lstsq(design, rgb[border], rcond=None)
    plane = np.stack([np.ones_like(xx), xx, yy], axis=-1) @ coef
    return np.abs(rgb - plane).sum(axis=-1) > 0.2


def _crop_to(rgb: np.ndarray, fg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Square crop around the foreground (the whole image if there is too little of it)."""
    if fg.mean() < 0.01:
        return rgb, np.ones(fg.shape, bool)
    ys, xs = np.nonzero(fg)
    cy, cx = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2
    half = max(ys.max() - ys.min(), xs.max() - xs.min()) / 2 * 1.1 + 2
    h, w = fg.shape
    y0, y1 = int(max(0, cy - half)), int(min(h, cy + half + 1))
    x0, x1 = int(max(0, cx - half)), int(min(w, cx + half + 1))
    crop = Image.fromarray((rgb[y0:y1, x0:x1] * 255).astype(np.uint8)).resize((CROP, CROP), Image.Resampling.BILINEAR)
    mask = Image.fromarray(fg[y0:y1, x0:x1].astype(np.uint8) * 255).resize((CROP, CROP), Image.Resampling.BILINEAR)
    return np.asarray(crop, dtype=np.float64) / 255.0, np.asarray(mask) > 127


def pixel_features(image: Image.Image) -> np.ndarray:
    """The hand-made feature vector (before projection)."""
    rgb = np.asarray(image.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR), dtype=np.float64) / 255.0
    rgb, fg = _crop_to(rgb, foreground(rgb))
    w = fg.astype(np.float64)
    gray = rgb @ np.array([0.299, 0.587, 0.114])
    # colour: histogram of the subject's pixels (4 levels per channel) and of hue x saturation
    q = np.minimum((rgb * 4).astype(int), 3)
    hist = np.bincount((q[..., 0] * 16 + q[..., 1] * 4 + q[..., 2]).ravel(), weights=w.ravel(), minlength=64)
    mx, mn = rgb.max(-1), rgb.min(-1)
    sat = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-9), 0)
    hue = _hue(rgb, mx, mn)
    hs = np.minimum((hue * 16).astype(int), 15) * 3 + np.minimum((sat * 3).astype(int), 2)
    hue_hist = np.bincount(hs.ravel(), weights=w.ravel(), minlength=48)
    # layout: the subject's mean colour on a 4x4 grid; silhouette on 8x8
    layout = _blocks(rgb * w[..., None], 4) / np.maximum(_blocks(w[..., None], 4), 1e-3)
    silhouette = _blocks(w[..., None], 8)[..., 0] - 0.5
    # texture: gradient orientation histograms (8 bins) on a 4x4 grid, and globally
    gy, gx = np.gradient(gray)
    mag = np.hypot(gx, gy)
    bins = np.minimum(((np.arctan2(gy, gx) % np.pi) / np.pi * 8).astype(int), 7)
    onehot = np.zeros((*gray.shape, 8))
    np.put_along_axis(onehot, bins[..., None], mag[..., None], axis=-1)
    local = np.sqrt(_blocks(onehot, 4))
    return np.concatenate([
        1.3 * _unit(np.sqrt(hist)), 1.3 * _unit(np.sqrt(hue_hist)), 0.8 * _unit(layout - layout.mean()),
        1.0 * _unit(silhouette), 0.8 * _unit(local), 0.5 * _unit(onehot.sum(axis=(0, 1))),
    ])


def _hue(rgb: np.ndarray, mx: np.ndarray, mn: np.ndarray) -> np.ndarray:
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    d = np.maximum(mx - mn, 1e-9)
    h = np.where(mx == r, ((g - b) / d) % 6, np.where(mx == g, (b - r) / d + 2, (r - g) / d + 4))
    return (h / 6.0) % 1.0


class PixelEncoder:
    """The stand-in encoder (see the module docstring)."""

    model_id = PIXEL_MODEL
    dim = 768
    runtime = "numpy"
    runtime_note = "the stand-in is a fixed projection of pixel statistics, computed in numpy"

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

    def predict(self, embedding: np.ndarray, within=None, k: int = 5) -> dict:
        """No predictions: the stand-in knows no taxa (so there is nothing to restrict)."""
        return {}

    def encode_text(self, text: str) -> np.ndarray:
        raise UnsupportedQueryError(
            f"{PIXEL_MODEL} is a pixel-statistics stand-in and cannot embed text; text search needs "
            f"{display_name(BIOCLIP2)} (an atlas built with {BIOCLIP2})")
