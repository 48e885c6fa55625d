"""Uploads in: any photo a phone or camera makes becomes an RGB image, or a clear refusal.

``load_upload`` handles EXIF orientation, the modes RGBA, P, LA, CMYK, I;16 and 1, animated
files (first frame), WebP, AVIF and HEIC/HEIF (through the ``heic`` extra, ``pillow-heif``),
and refuses empty files, text, truncated files, oversize files and decompression bombs, each
with its own message.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import UploadError

MAX_UPLOAD_BYTES = 40 * 1024 * 1024
MAX_PIXELS = 120_000_000      # a 100-megapixel camera fits; a decompression bomb does not
MIN_SIDE = 16
HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"heim", b"heis")


def load_upload(source: bytes | bytearray | str | Path, max_bytes: int = MAX_UPLOAD_BYTES,
                max_pixels: int = MAX_PIXELS, name: str | None = None) -> Image.Image:
    """An RGB, EXIF-oriented image from bytes or a file path; :class:`UploadError` otherwise.
    Messages call it ``name`` (default: the file's name, or "the upload")."""
    data, found = _read(source, max_bytes)
    name = name or found
    _sniff(data, name)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > max_pixels:
                raise UploadError(f"{name} is {w}×{h} pixels ({w * h / 1e6:.0f} megapixels), over the limit of "
                                  f"{max_pixels / 1e6:.0f}; it may be a decompression bomb. Resize it and try again.")
            img.seek(0)
            img.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise UploadError(f"{name} declares an enormous size; it looks like a decompression bomb and was refused") from None
        except UnidentifiedImageError:
            raise UploadError(f"{name} is not an image we can read; use a JPEG, PNG, WebP, AVIF or HEIC photo") from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise UploadError(f"{name} is truncated or corrupt ({_reason(exc)}); upload the original file again") from None
    if min(img.size) < MIN_SIDE:
        raise UploadError(f"{name} is only {img.size[0]}×{img.size[1]} pixels; use a photo at least {MIN_SIDE} pixels on each side")
    try:
        img = ImageOps.exif_transpose(img)
    except (OSError, ValueError, SyntaxError):
        pass  # a broken EXIF block: keep the pixels as stored
    return to_rgb(img)


def to_rgb(img: Image.Image) -> Image.Image:
    """RGB from any Pillow mode; transparency is flattened onto white, 16-bit scaled to 8-bit."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(arr.astype(np.uint8), "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _read(source, max_bytes: int) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), "the upload"
    else:
        path = Path(source).expanduser()
        name = path.name
        if not path.exists():
            raise UploadError(f"{path} does not exist")
        if path.is_dir():
            raise UploadError(f"{path} is a folder, not an image file")
        size = path.stat().st_size
        if size > max_bytes:
            raise UploadError(_too_big(name, size, max_bytes))
        data = path.read_bytes()
    if not data:
        raise UploadError(f"{name} is empty (0 bytes); choose the photo again")
    if len(data) > max_bytes:
        raise UploadError(_too_big(name, len(data), max_bytes))
    return data, name


def _too_big(name: str, size: int, limit: int) -> str:
    return f"{name} is {size / 2**20:.1f} MB; the limit is {limit / 2**20:.0f} MB. Resize or compress it and try again."


def _sniff(data: bytes, name: str) -> None:
    """Refuse what is recognisably not a photo, with a message for each kind."""
    head = data[:512]
    if head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS:
        try:
            from pillow_heif import register_heif_opener
        except ImportError:
            raise UploadError(f"{name} is a HEIC/HEIF photo (iPhone format); install the heic extra: "
                              "pip install 'bioclip-nb[heic]'") from None
        register_heif_opener()
        return
    stripped = head.lstrip()
    if stripped[:5].lower() == b"<?xml" or stripped[:4].lower() == b"<svg" or b"<svg" in head.lower():
        raise UploadError(f"{name} is an SVG drawing; export it as PNG or JPEG first")
    if head.startswith(b"%PDF"):
        raise UploadError(f"{name} is a PDF document, not an image; export the page as PNG or JPEG")
    if _looks_like_text(head):
        raise UploadError(f"{name} is a text file, not an image")


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return printable / len(text) > 0.95


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    return text[:120] if text else type(exc).__name__
