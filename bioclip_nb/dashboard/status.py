"""What the dashboard says and what it searches with, apart from the session that holds them:
the status line (``Status`` at a ``Level``), the query (``Query``), the query picture as shown,
and the errors a callback may raise for the status line."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..errors import AtlasError, EncoderUnavailableError, ServerError, UploadError
from ..images.uploads import load_upload


class Level(str, Enum):
    """How the status line reads: its colour and its role for a screen reader."""

    INFO = "info"
    WORKING = "working"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class Status:
    """The line the user reads."""

    message: str
    level: Level = Level.INFO


@dataclass(frozen=True)
class Query:
    """What is being searched for."""

    kind: str                      # "image", "text", "url" or "result"
    label: str
    image: bytes | None = None     # the query picture (JPEG/PNG bytes) for display
    source: str = ""               # the text, the image URL, or the result's record id (what a link carries)
    sha256: str = ""               # of the uploaded or fetched image's bytes


def display_bytes(img) -> bytes:
    """The query picture as the page shows it: at most 512 px, JPEG."""
    import io
    copy = img.copy()
    copy.thumbnail((512, 512))
    buf = io.BytesIO()
    copy.save(buf, format="JPEG", quality=88)
    return buf.getvalue()


def display_or_none(data: bytes) -> bytes | None:
    """:func:`display_bytes` of an upload, or None when it cannot be read."""
    try:
        return display_bytes(load_upload(data))
    except UploadError:  # the batch table already says why the photo could not be used
        return None


#: Errors bioclip-nb raises on purpose, with a message for the user.
OUR_ERRORS = (UploadError, EncoderUnavailableError, AtlasError, ServerError)
#: What a callback may raise and the status line shows; the bare ones are logged too (a bug?).
EXPECTED_ERRORS = (*OUR_ERRORS, ValueError, OSError)
