"""Image bytes in every format and mode the upload path must handle, made on the spot."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def photo(width: int = 320, height: int = 240, seed: int = 0) -> Image.Image:
    """A smooth, photo-like RGB image (not noise: JPEG-friendly)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    base = rng.random(3)
    arr = np.stack([np.sin(6 * x + base[0] * 6) * 0.5 + 0.5, np.cos(5 * y + base[1] * 6) * 0.5 + 0.5,
                    (x * y + base[2]) % 1.0], axis=-1)
    return Image.fromarray((arr * 255).astype(np.uint8), "RGB")


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def jpeg_with_orientation(orientation: int = 6) -> bytes:
    """A 320x240 JPEG whose EXIF says to rotate it (6 = 90° clockwise)."""
    img = photo(320, 240)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", exif=exif.tobytes())


def animated_gif() -> bytes:
    frames = [photo(64, 64, seed=i).convert("P") for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def png_bomb() -> bytes:
    """A tiny PNG that declares 30,000 x 30,000 pixels (900 megapixels)."""
    img = Image.new("1", (30_000, 30_000))
    return encode(img, "PNG", optimize=True)
