"""Exact answers for one atlas: its full vectors, found once, and how many PQ candidates to
re-rank with them (the pool factor, measured per atlas and kept with its derived data).

``Atlas`` owns one :class:`Exactness` (``atlas.exactness``) and asks it, per search, which full
vectors to rank with; ``rerank`` does the re-ranking itself.
"""

from __future__ import annotations

import threading

import numpy as np

from .. import limits
from . import index as ivf
from . import rerank
from .fullvectors import FullVectors

#: The measured re-ranking pool factor, in an atlas's derived data (:meth:`Exactness.calibrate`).
POOL_FILE = "rerank-pool.json"


class Exactness:
    """An atlas's full vectors (or None: ranking by PQ codes alone) and its re-ranking pool."""

    def __init__(self, atlas):
        self.atlas = atlas               # the ``Atlas`` it belongs to (not imported: atlas imports this module)
        self._lock = threading.RLock()
        self._full: FullVectors | None = None
        self._checked = False
        self._pool_factor: int | None = None

    @property
    def full_vectors(self) -> FullVectors | None:
        """The atlas's ``vectors.npy``, or rows prepared from the published embeddings by
        ``bioclip-nb prepare --embeddings``, when they fit the atlas; else None."""
        with self._lock:
            if not self._checked:
                a = self.atlas
                found = FullVectors.of_atlas(a.path, a.derived)
                self._full = found if found is not None and found.fits(a.count, a.dim) else None
                self._checked = True
            return self._full

    def reload(self) -> None:
        """Look for the full vectors again (after ``prepare --embeddings`` wrote them)."""
        with self._lock:
            self._full, self._checked, self._pool_factor = None, False, None

    def for_search(self, exact: bool | None) -> FullVectors | None:
        """The vectors a search ranks with: None for ``exact=False`` (or when there are none);
        ``exact=True`` without full vectors is refused, saying how to prepare them."""
        if exact is False:
            return None
        full = self.full_vectors
        if exact and full is None:
            raise ValueError(f"the atlas {self.atlas.path} has no full vectors to rank exactly with; prepare them with "
                             "`bioclip-nb prepare --atlas DIR --embeddings PARQUET_DIR`, or search with exact=False")
        return full

    def info(self) -> dict | None:
        """Where the full vectors come from and how many records have one (None: none)."""
        full, count = self.full_vectors, self.atlas.count
        if full is None:
            return None
        covered = full.covered()
        return {"source": full.source, "precision": full.precision, "records_with_vector": min(covered, count),
                "records_without_vector": max(count - covered, 0), "path": str(full.path)}

    @property
    def pool_factor(self) -> int:
        """Candidates re-ranked per result asked for: measured for this atlas and kept with its
        derived data; measured now for an atlas of up to ``rerank.CALIBRATE_ON_OPEN`` records,
        else ``rerank.POOL_FACTOR`` until ``prepare``."""
        with self._lock:
            if self._pool_factor is None:
                found = self._recorded()
                if found is None and self.full_vectors is not None and self.atlas.count <= rerank.CALIBRATE_ON_OPEN:
                    found = self.calibrate()["factor"]
                self._pool_factor = found or rerank.POOL_FACTOR
            return self._pool_factor

    @pool_factor.setter
    def pool_factor(self, factor: int) -> None:
        """Use ``factor`` (benchmarks compare factors on one atlas); not recorded."""
        with self._lock:
            self._pool_factor = int(factor)

    def _recorded(self) -> int | None:
        try:
            return int(self.atlas.data.read_json(POOL_FILE)["factor"])
        except (KeyError, TypeError, ValueError):
            return None

    def calibrate(self, queries: int = 128, seed: int = 0) -> dict:
        """Measure the pool factor (``rerank.calibrate``) on ``queries`` of the atlas's own full
        vectors, each moved (cosine about 0.8 to it) as a new photo of the same kind of organism
        would be; keep it with the derived data and return the measurement."""
        a, full = self.atlas, self.full_vectors
        if full is None:
            raise ValueError(f"the atlas {a.path} has no full vectors, so there is nothing to re-rank with")
        rng = np.random.default_rng(seed)
        ids = np.unique(rng.integers(0, a.count, size=4 * queries))
        rows, has = full.get(ids)
        rows = rows[has][:queries]
        noise = rng.standard_normal(rows.shape).astype(np.float32)
        q = a.check_vectors(rows + 0.75 * noise / np.linalg.norm(noise, axis=1, keepdims=True))
        nprobe = limits.default_nprobe(a.nlist)
        found = rerank.calibrate(lambda qs, pool: ivf.search(a.index, qs, pool, nprobe), q, full, a.metric)
        found["nprobe"] = nprobe
        a.data.write_json(POOL_FILE, found)
        with self._lock:
            self._pool_factor = int(found["factor"])
        return found
