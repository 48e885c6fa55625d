"""The legal ranges of everything a person or a client can ask for, defined once.

``Atlas.search``, the CLI and the server's request models all read these, so a value refused
in one place is refused everywhere, with the same numbers in the message. This module is a
leaf: it imports nothing from bioclip-nb.
"""

from __future__ import annotations

#: Hits per query.
MIN_TOP_N, MAX_TOP_N, DEFAULT_TOP_N = 1, 1000, 10
#: The dashboard's Top N slider (a gallery of more is for the CLI and exports) and its depth slider.
MAX_GALLERY_TOP_N, MAX_SLIDER_NPROBE = 100, 256
#: Search depth: cells scanned (at most the atlas's nlist; the published atlas has 65,536).
MIN_NPROBE, MAX_NPROBE, DEFAULT_NPROBE = 1, 65_536, 16
#: A record id: the published ``id INTEGER`` is a signed 32-bit column.
MIN_ID, MAX_ID = 0, 2**31 - 1
#: Query vectors in one search request, and ids in one lookup.
MAX_BATCH = 1000
MAX_IDS = 1000
#: Widest vector any known model produces (BioCLIP 2.5 Huge: 1024).
MAX_DIM = 4096
#: Predictions per rank.
MAX_PREDICTIONS = 50
#: A typed URL's length, a text query's length.
MAX_URL = 2048
MAX_TEXT = 1000

#: Largest request body each JSON route accepts, in bytes, refused with 413 before it is parsed.
#: Sized to the largest legal request: 1,000 vectors of 1,024 floats as a client writes them
#: (float32 values printed in full, about 22 MB; 12 MB at 768-d) for a search; one vector and
#: 1,000 hits for the figures.
KB, MB = 2**10, 2**20
BODY_CAPS: dict[str, int] = {
    "/search": 32 * MB,
    "/figures": 1 * MB,
    "/map": 1 * MB,
    "/predict": 256 * KB,
    "/occurrences": 64 * KB,
    "/lookup": 64 * KB,
    "/encode-text": 16 * KB,
    "/fetch-url": 16 * KB,
}
#: Any other route with a body (uploads have their own cap, ``images.uploads.MAX_UPLOAD_BYTES``).
DEFAULT_BODY_CAP = 64 * KB


def default_nprobe(nlist: int) -> int:
    """The depth a search uses unless told otherwise: 16 cells, or every cell of a smaller atlas."""
    return min(DEFAULT_NPROBE, max(1, int(nlist)))


def check_top_n(top_n) -> int:
    """``top_n`` as an int, or a ``ValueError`` naming the legal range."""
    if isinstance(top_n, bool) or not _whole(top_n) or not MIN_TOP_N <= int(top_n) <= MAX_TOP_N:
        raise ValueError(f"top_n must be a whole number from {MIN_TOP_N} to {MAX_TOP_N}, got {top_n!r}")
    return int(top_n)


def check_nprobe(nprobe, nlist: int) -> int:
    """``nprobe`` as an int within ``1 .. nlist`` (any positive depth for a flat index), or a ``ValueError``."""
    top = max(1, int(nlist)) if nlist > 1 else MAX_NPROBE
    if isinstance(nprobe, bool) or not _whole(nprobe) or not MIN_NPROBE <= int(nprobe) <= top:
        cells = f" (this atlas has {nlist} cells)" if nlist > 1 else ""
        raise ValueError(f"nprobe must be a whole number from {MIN_NPROBE} to {top}{cells}, got {nprobe!r}")
    return int(nprobe)


def _whole(value) -> bool:
    import numbers
    return isinstance(value, numbers.Integral)
