"""Full vectors: every record's embedding at full (or near-full) precision, read by id.

The IVF-PQ index keeps 16 bytes per record, enough to find candidates but not to rank them:
PQ16 codes return about half of the true ten nearest on a published-layout atlas. Where the
full vectors exist, they decide the order and the similarity shown (``rerank``). They come
from one of two places:

* an atlas bioclip-nb built keeps its raw vectors (``layout.VECTORS_FILE``, float32, unit
  length) beside its index;
* the published atlas gets them from ``imageomics/TreeOfLife-200M-Embeddings`` through
  ``bioclip-nb prepare --embeddings`` (``embeddings``), which writes an id-ordered file into
  the atlas's derived data: ``full-vector-rows.npy`` (float16 or int8), ``full-vector-present.npy``
  (a bitmap of the ids that have a vector) and ``full-vectors.json`` (what was written, from
  what, and that it is complete).

Reads gather the wanted rows in id order and return unit-length float32 rows. A re-rank reads
a few hundred to thousands of scattered rows; where they are not in memory (a 234M-record file
is 180 GB as int8), every row is a wait for the disk. Two things keep that cheap, both on by
default because both were measured (docs/benchmarks.md, "Exact answers"):

* the mapping is marked random access (``MADV_RANDOM``) before its first read. Without it, each
  page fault reads the disk's whole read-ahead window around the row: 8 MB on this machine's
  virtual disk, which made 200 cold rows of a 16 GB file take 2 s instead of 9 ms;
* a read of at least :data:`PREFETCH_FROM` rows first tells the kernel every page it will touch
  (``POSIX_FADV_WILLNEED``, one call per run of adjacent pages), so the disk serves them
  together rather than one fault at a time: 2,000 cold rows in 26 ms instead of 85 ms here. On
  rows already in memory the advice costs about 1 microsecond a row, so by default only files
  of at least :data:`PREFETCH_FILE_BYTES` announce (``prefetch`` True or False decides instead).

Scans of the whole file (brute-force truth) use :meth:`FullVectors.sequential`, a mapping of
their own that keeps the kernel's read-ahead.
"""

from __future__ import annotations

import json
import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..layout import VECTORS_FILE

#: The prepared vectors, their presence bitmap and their record, in an atlas's derived data.
PREPARED_FILE = "full-vector-rows.npy"
PRESENT_FILE = "full-vector-present.npy"
RECORD_FILE = "full-vectors.json"
#: Storage precisions ``prepare --embeddings`` can write, with their bytes per component.
PRECISIONS: dict[str, np.dtype] = {"float16": np.dtype(np.float16), "int8": np.dtype(np.int8)}
#: What ``prepare --embeddings`` writes unless told otherwise (docs/benchmarks.md: int8 keeps
#: recall@10 and the similarity within 1e-3 at half the disk of float16).
DEFAULT_PRECISION = "int8"
#: Reads of at least this many distinct rows announce their pages to the kernel first...
PREFETCH_FROM = 32
#: ...from a file at least this large, unless ``FullVectors.prefetch`` says otherwise.
PREFETCH_FILE_BYTES = 1 << 30


def encode(unit: np.ndarray, precision: str) -> np.ndarray:
    """Unit vectors ``(n, dim)`` in a storage precision. ``int8`` scales each row so that its
    largest component is 127; the scale is not kept because rows are normalised on read."""
    unit = np.asarray(unit, dtype=np.float32)
    if precision == "float16":
        return unit.astype(np.float16)
    if precision == "int8":
        peak = np.abs(unit).max(axis=1, keepdims=True)
        peak[peak == 0] = 1.0
        return np.clip(np.rint(unit / peak * 127.0), -127, 127).astype(np.int8)
    raise ValueError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")


#: Set bits in each byte value (numpy 1.26 has no bitwise_count).
_ONES = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _norms(rows: np.ndarray) -> np.ndarray:
    """Each float32 row's length, 1 for an all-zero row (which so stays zero when divided)."""
    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows))
    norms[norms == 0] = 1.0
    return norms


def normalise(rows: np.ndarray) -> np.ndarray:
    """Rows as unit-length float32 (an all-zero row stays zero)."""
    out = np.asarray(rows, dtype=np.float32)
    return out / _norms(out)[:, None]


@dataclass
class FullVectors:
    """An atlas's full vectors by id: ``data`` ``(count, dim)`` memory-mapped, ``present`` a
    packed bitmap of the ids that have one (None when every id has), ``precision`` how they are
    stored and ``source`` where they came from (for provenance)."""

    data: np.ndarray
    present: np.ndarray | None
    precision: str
    source: str
    path: Path
    recorded_covered: int | None = None     # ids with a vector, as ``prepare`` recorded it
    prefetch: bool | None = None            # announce a large read's pages first; None: for large files
    random_access: bool = True              # mark the mapping random access before the first read
    _random: bool = field(default=False, init=False, repr=False)

    @classmethod
    def of_atlas(cls, atlas_path: Path, derived) -> FullVectors | None:
        """The full vectors of an atlas: its own raw vectors file, else prepared ones that are
        complete (``derived(name)`` finds a derived file), else None."""
        own = Path(atlas_path) / VECTORS_FILE
        if own.is_file():
            return cls(np.load(own, mmap_mode="r"), None, "float32", f"atlas {VECTORS_FILE}", own)
        record_path = derived(RECORD_FILE)
        if not record_path.is_file():
            return None
        try:
            record = json.loads(record_path.read_text())
        except (OSError, ValueError):
            return None
        if not record.get("complete"):
            return None
        data_path, present_path = record_path.parent / PREPARED_FILE, record_path.parent / PRESENT_FILE
        try:
            data = np.load(data_path, mmap_mode="r")
            present = np.load(present_path, mmap_mode="r")
        except (OSError, ValueError):
            return None
        covered = record.get("records_with_vector")
        return cls(data, present, str(record.get("precision", data.dtype.name)),
                   f"prepared {record.get('precision')} from {record.get('source', 'published embeddings')}", data_path,
                   int(covered) if isinstance(covered, int) else None)

    @property
    def count(self) -> int:
        return int(self.data.shape[0])

    @property
    def dim(self) -> int:
        return int(self.data.shape[1])

    def fits(self, count: int, dim: int) -> bool:
        """Whether these vectors belong to an atlas of ``count`` records of ``dim`` dimensions."""
        return self.count >= count and self.dim == dim

    def has(self, ids: np.ndarray) -> np.ndarray:
        """Whether each id has a full vector."""
        ids = np.asarray(ids, dtype=np.int64)
        inside = (ids >= 0) & (ids < self.count)
        if self.present is None:
            return inside
        out = np.zeros(len(ids), dtype=bool)
        good = ids[inside]
        out[inside] = ((self.present[good >> 3] >> (good & 7)) & 1).astype(bool)
        return out

    def covered(self) -> int:
        """How many ids have a full vector: as recorded by ``prepare``, else counted from the
        bitmap in slices (29 MB at 234M records, never unpacked whole)."""
        if self.present is None:
            return self.count
        if self.recorded_covered is not None:
            return self.recorded_covered
        bits = np.asarray(self.present)
        full, rest = divmod(self.count, 8)
        step = 1 << 22
        total = sum(int(_ONES[bits[i:min(i + step, full)]].sum(dtype=np.int64)) for i in range(0, full, step))
        if rest:
            total += int(np.unpackbits(bits[full:full + 1], bitorder="little")[:rest].sum())
        return total

    def get(self, ids) -> tuple[np.ndarray, np.ndarray]:
        """``(vectors, has)``: unit float32 rows for ``ids`` (zeros where ``has`` is False),
        read in id order, each distinct id once."""
        has, rows, back = self._read(ids)
        out = np.zeros((len(has), self.dim), dtype=np.float32)
        if len(rows):
            out[has] = normalise(rows)[back]
        return out, has

    def cosines(self, ids, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(cosine, has)``: each id's cosine with the unit ``query`` (0 where ``has`` is False),
        read as :meth:`get` reads. The rows are not made unit length: each dot product is divided
        by its row's norm, one float32 copy of the rows in all (a re-rank's pool of thousands
        spent most of its time normalising and copying them)."""
        has, rows, back = self._read(ids)
        out = np.zeros(len(has), dtype=np.float32)
        if len(rows):
            rows = np.asarray(rows, dtype=np.float32)
            out[has] = (rows @ np.asarray(query, dtype=np.float32) / _norms(rows))[back]
        return out, has

    def _read(self, ids) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(has, rows, back)``: whether each id has a vector, the stored rows of the distinct
        ones that do (sorted by id, as stored) and where each of ``ids[has]`` is among them."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        has = self.has(ids)
        if not has.any():
            return has, np.empty((0, self.dim), dtype=self.data.dtype), np.empty(0, dtype=np.int64)
        wanted, back = np.unique(ids[has], return_inverse=True)
        self._mark_random()
        if len(wanted) >= PREFETCH_FROM and self._announces():
            self._announce(wanted)
        return has, self.data[wanted], back

    def sequential(self) -> np.ndarray:
        """The rows for a scan from first to last: a mapping of their own, with the kernel's
        read-ahead (the one :meth:`get` uses is marked random access)."""
        if getattr(self.data, "_mmap", None) is None:
            return self.data                        # in memory
        try:
            return np.load(self.path, mmap_mode="r")[:self.count]
        except (OSError, ValueError):
            return self.data

    def _announces(self) -> bool:
        """Whether reads announce their pages: as set, else for a file of at least
        :data:`PREFETCH_FILE_BYTES` (a smaller one stays in memory after its first reads, and
        there the announcement is only its cost)."""
        if self.prefetch is not None:
            return self.prefetch
        return int(self.data.nbytes) >= PREFETCH_FILE_BYTES

    def _mark_random(self) -> None:
        """Mark the mapping random access once: scattered rows, no read-around per fault."""
        if self._random or not self.random_access:
            return
        self._random = True
        mapped = getattr(self.data, "_mmap", None)
        if mapped is not None and hasattr(mmap, "MADV_RANDOM"):
            try:
                mapped.madvise(mmap.MADV_RANDOM)
            except (OSError, ValueError):
                pass                                 # advice is only advice

    def _announce(self, rows: np.ndarray) -> None:
        """Ask the kernel to start reading the pages of ``rows`` (sorted) at once."""
        offset = getattr(self.data, "offset", None)
        if offset is None or not hasattr(os, "posix_fadvise"):
            return                                   # in memory, or a platform without it
        row_bytes = self.dim * self.data.itemsize
        page = mmap.PAGESIZE
        first = (offset + rows * row_bytes) // page
        last = (offset + (rows + 1) * row_bytes - 1) // page
        starts = np.flatnonzero(np.r_[True, first[1:] > last[:-1] + 1])      # runs of adjacent pages
        ends = np.r_[starts[1:], len(rows)] - 1
        try:
            fd = os.open(self.path, os.O_RDONLY)
            try:
                for a, b in zip(first[starts].tolist(), last[ends].tolist()):
                    os.posix_fadvise(fd, a * page, (b - a + 1) * page, os.POSIX_FADV_WILLNEED)
            finally:
                os.close(fd)
        except OSError:
            self.prefetch = False                    # advice is only advice: read without it
