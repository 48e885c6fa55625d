"""load_upload: every photo a phone or camera makes works; every bad file gets its own message."""

from __future__ import annotations

import re

import numpy as np
import pytest
from helpers.pictures import animated_gif, encode, jpeg_with_orientation, photo, png_bomb
from PIL import Image

from bioclip_nb.errors import UploadError
from bioclip_nb.images import load_upload


def _mode(mode: str, fmt: str = "PNG") -> bytes:
    img = photo(80, 60)
    if mode == "I;16":
        arr = (np.asarray(img.convert("L"), dtype=np.uint16) * 257)
        return encode(Image.fromarray(arr), fmt)
    if mode == "CMYK":
        return encode(img.convert("CMYK"), "JPEG")
    if mode == "RGBA":
        rgba = img.convert("RGBA")
        rgba.putalpha(Image.new("L", rgba.size, 0))  # fully transparent -> white
        return encode(rgba, fmt)
    return encode(img.convert(mode), fmt)


def _heic() -> bytes:
    import pillow_heif
    pillow_heif.register_heif_opener()
    return encode(photo(64, 48), "HEIF")


GOOD = [
    ("jpeg", lambda: encode(photo(), "JPEG"), (320, 240)),
    ("png", lambda: encode(photo(), "PNG"), (320, 240)),
    ("webp", lambda: encode(photo(), "WEBP"), (320, 240)),
    ("avif", lambda: encode(photo(64, 48), "AVIF"), (64, 48)),
    ("heic", _heic, (64, 48)),
    ("exif-rotated jpeg", jpeg_with_orientation, (240, 320)),
    ("RGBA png", lambda: _mode("RGBA"), (80, 60)),
    ("palette png", lambda: _mode("P"), (80, 60)),
    ("LA png", lambda: _mode("LA"), (80, 60)),
    ("CMYK jpeg", lambda: _mode("CMYK"), (80, 60)),
    ("16-bit png", lambda: _mode("I;16"), (80, 60)),
    ("1-bit png", lambda: _mode("1"), (80, 60)),
    ("grayscale tiff", lambda: _mode("L", "TIFF"), (80, 60)),
    ("animated gif", animated_gif, (64, 64)),
    ("bmp", lambda: encode(photo(50, 40), "BMP"), (50, 40)),
]


@pytest.mark.parametrize("name, make, size", GOOD, ids=[g[0] for g in GOOD])
def test_good_uploads_become_rgb(name, make, size):
    img = load_upload(make())
    assert img.mode == "RGB" and img.size == size


def test_transparent_pixels_become_white():
    img = load_upload(_mode("RGBA"))
    assert np.asarray(img).min() == 255


def test_sixteen_bit_keeps_contrast():
    arr = np.asarray(load_upload(_mode("I;16")))
    assert arr.max() - arr.min() > 200


def test_path_upload(tmp_path):
    p = tmp_path / "fox.jpg"
    p.write_bytes(encode(photo(), "JPEG"))
    assert load_upload(p).size == (320, 240)


def _truncated() -> bytes:
    data = encode(photo(), "JPEG")
    return data[: len(data) // 2]


BAD = [
    ("empty", lambda: b"", "is empty (0 bytes)"),
    ("text", lambda: b"Vulpes vulpes, seen 2024-05-01 near the river\n" * 20, "is a text file"),
    ("csv", lambda: b"file,species\nfox.jpg,Vulpes vulpes\n", "is a text file"),
    ("svg", lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "is an SVG drawing"),
    ("pdf", lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "is a PDF document"),
    ("truncated jpeg", _truncated, "is truncated or corrupt"),
    ("truncated png", lambda: encode(photo(), "PNG")[:300], "is truncated or corrupt"),
    ("random bytes", lambda: bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "is not an image we can read"),
    ("zip", lambda: b"PK\x03\x04" + b"\x00" * 200, "is not an image we can read"),
    ("decompression bomb", png_bomb, "decompression bomb"),
    ("tiny", lambda: encode(photo(4, 4), "PNG"), "is only 4×4 pixels"),
    ("oversize", lambda: b"\xff\xd8\xff" + b"\x00" * (2 * 2**20), "the limit is 1 MB"),
]


@pytest.mark.parametrize("name, make, message", BAD, ids=[b[0] for b in BAD])
def test_bad_uploads_are_refused_clearly(name, make, message):
    with pytest.raises(UploadError, match=re.escape(message)):
        load_upload(make(), max_bytes=2**20 if name == "oversize" else 40 * 2**20)


def test_missing_path_and_folder(tmp_path):
    with pytest.raises(UploadError, match="does not exist"):
        load_upload(tmp_path / "nope.jpg")
    with pytest.raises(UploadError, match="is a folder"):
        load_upload(tmp_path)


def test_heic_without_extra_names_the_extra(monkeypatch):
    data = _heic()
    import builtins
    real_import = builtins.__import__

    def no_heif(name, *args, **kwargs):
        if name.startswith("pillow_heif"):
            raise ImportError("No module named 'pillow_heif'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_heif)
    with pytest.raises(UploadError, match=r"HEIC/HEIF photo .*pip install 'bioclip-nb\[heic\]'"):
        load_upload(data)


def test_an_empty_upload_says_so_and_what_to_do():
    with pytest.raises(UploadError, match=r"the upload is empty \(0 bytes\); choose the photo again"):
        load_upload(b"")
