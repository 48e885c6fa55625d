"""Best-effort writes to the derived-data cache: a cache that cannot be written (a read-only or
full ``$BIOCLIP_NB_HOME``) costs a recomputation next time, never a failed search."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np


def write_quietly(path: Path, data: bytes) -> bool:
    """Write atomically (temp file, then rename); False if the cache is not writable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return True
    except OSError:
        return False


def save_array_quietly(path: Path, array: np.ndarray) -> bool:
    """``np.save`` through :func:`write_quietly`."""
    buf = io.BytesIO()
    np.save(buf, array)
    return write_quietly(path, buf.getvalue())
