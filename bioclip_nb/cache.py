"""Best-effort writes to the derived-data cache: a cache that cannot be written (a read-only or
full ``$BIOCLIP_NB_HOME``) costs a recomputation next time, never a failed search."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path

import numpy as np


def write_quietly(path: Path, data: bytes) -> bool:
    """Write atomically (a temporary file of its own, then rename), so two kernels writing the
    same entry never mix their bytes; False if the cache is not writable."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
        return True
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return False


def save_array_quietly(path: Path, array: np.ndarray) -> bool:
    """``np.save`` through :func:`write_quietly`."""
    buf = io.BytesIO()
    np.save(buf, array)
    return write_quietly(path, buf.getvalue())
