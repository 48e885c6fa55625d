"""An atlas's derived data: found where ``prepare`` left it, else computed once and cached.

Derived data are files computed from an atlas and never part of it: scope counts, scope and
taxon bitmaps, per-cell counts, the HNSW quantizer, the atlas map, the re-ranking pool. Each
is read from the shared prepared directory (``BIOCLIP_NB_DERIVED_DIR``, may be read-only)
if it holds it, else from the user's cache, where it is written when computed (best effort:
a read-only home only costs a recomputation). Bitmaps and cell counts are also kept in memory,
bounded in bytes.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..cache import save_array_quietly, write_quietly
from ..config import Settings

#: Scope bitmaps and cell counts kept in memory per atlas, in bytes (a bitmap is 29 MB and a
#: cell count 0.5 MB at 234M records).
MEMORY_BYTES = 256 * 2**20


class DerivedData:
    """Where one atlas's derived files are, and the arrays computed from them. Thread-safe."""

    def __init__(self, settings: Settings, fingerprint: str):
        self.settings = settings
        self.fingerprint = fingerprint
        self._memory: dict[str, OrderedDict[str, np.ndarray | None]] = {}
        self._lock = threading.RLock()

    @property
    def cache_dir(self) -> Path:
        """The per-user cache of this atlas's derived data (under ``$BIOCLIP_NB_HOME/cache``)."""
        return self.settings.atlas_cache_dir(self.fingerprint)

    def path(self, name: str) -> Path:
        """Where the derived file ``name`` is: the shared prepared directory if it holds it,
        else the per-user cache (where it is written when computed)."""
        if self.settings.derived is not None:
            shared = self.settings.derived / self.fingerprint / name
            if shared.is_file():
                return shared
        return self.cache_dir / name

    def read_json(self, name: str):
        """The JSON file ``name`` (None if missing or unreadable)."""
        try:
            return json.loads(self.path(name).read_text())
        except (OSError, ValueError):
            return None

    def write_json(self, name: str, value) -> bool:
        """Keep ``value`` as the JSON file ``name`` in the cache (False if it cannot be written)."""
        return write_quietly(self.cache_dir / name, json.dumps(value).encode())

    def array(self, name: str, compute: Callable[[], np.ndarray | None],
              fits: Callable[[np.ndarray], bool]) -> np.ndarray | None:
        """The derived array ``name``: the prepared or cached copy when it ``fits`` this atlas,
        else ``compute()`` now, kept in the cache."""
        path = self.path(name)
        if path.is_file():
            try:
                found = np.load(path)
                if fits(found):
                    return found
            except (OSError, ValueError):
                pass
        made = compute()
        if made is not None:
            save_array_quietly(self.cache_dir / name, made)
        return made

    def remembered(self, kind: str, key: str, name: str, compute: Callable[[], np.ndarray | None],
                   fits: Callable[[np.ndarray], bool]) -> np.ndarray | None:
        """:meth:`array` ``name``, also kept in memory under ``(kind, key)`` (least recently used
        out once the kept arrays pass :data:`MEMORY_BYTES`)."""
        with self._lock:
            store = self._memory.setdefault(kind, OrderedDict())
            if key in store:
                store.move_to_end(key)
                return store[key]
        value = self.array(name, compute, fits)
        with self._lock:
            store[key] = value
            store.move_to_end(key)
            while len(store) > 1 and sum(v.nbytes for v in store.values() if v is not None) > MEMORY_BYTES:
                store.popitem(last=False)
        return value
