"""Published embeddings to an atlas's full vectors: ``bioclip-nb prepare --embeddings``.

``imageomics/TreeOfLife-200M-Embeddings`` (gated on the Hugging Face hub, CC0) publishes every
TreeOfLife-200M image's embedding as parquet: one row per image, keyed by ``uuid``, with its
taxonomy and a float16 vector, sorted by taxonomy (not by the lite atlas's ids). The config
``bioclip-2_float16`` holds BioCLIP 2's 768-d vectors, not unit length. It does not hold the
same set of images as the lite atlas, so rows are joined by ``uuid``, never by position.

:func:`prepare_embeddings` writes an id-ordered, memory-mapped file of unit vectors in the
chosen precision (``fullvectors``), a bitmap of the ids that got one, and a record that says
which parquet files are done, so that an interrupted run resumes where it stopped. The vector
column is found by its type (the one list of floats as wide as the model), not its name.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .fullvectors import DEFAULT_PRECISION, PRECISIONS, PREPARED_FILE, PRESENT_FILE, RECORD_FILE, encode, normalise

#: Parquet rows read at a time (about 100 MB of float16 vectors at 768-d).
BATCH_ROWS = 65_536
_DASHES = (8, 13, 18, 23)
_HEX = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
    _HEX[bytes([_c]).upper()[0]] = _i


class EmbeddingsError(ValueError):
    """Parquet files that cannot be read as published embeddings for this atlas."""


# --------------------------------------------------------------------------- uuids
def arrow_batches(con, sql: str, rows: int = 1_000_000):
    """A DuckDB query's rows as an Arrow record batch reader (DuckDB 2 renamed the method)."""
    rel = con.sql(sql)
    reader = getattr(rel, "to_arrow_reader", None) or rel.fetch_arrow_reader
    return reader(rows)


def uuid_keys(column) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(hi, lo, valid)``: each uuid of an Arrow column (text with or without dashes, 16-byte
    binary, or Arrow's uuid type) as two big-endian uint64 halves; ``valid`` is False for nulls."""
    import pyarrow as pa
    import pyarrow.compute as pc
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if isinstance(column.type, pa.ExtensionType):
        column = column.storage
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    n = len(column)
    if pa.types.is_fixed_size_binary(column.type) and column.type.byte_width == 16:
        raw = np.frombuffer(column.buffers()[1], dtype=np.uint8)[column.offset * 16:(column.offset + n) * 16].reshape(n, 16)
        halves = raw.copy().view(">u8").astype(np.uint64)
        return halves[:, 0].copy(), halves[:, 1].copy(), valid
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise EmbeddingsError(f"the uuid column has type {column.type}; expected text or 16-byte binary")
    text = pc.utf8_lower(pc.fill_null(column, "0" * 32)).cast(pa.large_binary())
    lengths = pc.binary_length(text).to_numpy(zero_copy_only=False)
    chars = np.zeros((n, 32), dtype=np.uint8)
    for width in np.unique(lengths):
        if width not in (32, 36):
            raise EmbeddingsError(f"a uuid of {width} characters; expected 32 hex digits, with or without dashes")
        rows = np.flatnonzero(lengths == width)
        picked = text.take(rows)
        offsets = np.frombuffer(picked.buffers()[1], dtype=np.int64)[picked.offset:picked.offset + len(rows) + 1]
        data = np.frombuffer(picked.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]].reshape(len(rows), width)
        chars[rows] = np.delete(data, _DASHES, axis=1) if width == 36 else data
    nibbles = _HEX[chars]
    if (nibbles[valid] == 255).any():
        raise EmbeddingsError("a uuid holds a character that is not a hex digit")
    shifts = np.arange(60, -4, -4, dtype=np.uint64)
    hi = np.bitwise_or.reduce(nibbles[:, :16].astype(np.uint64) << shifts, axis=1)
    lo = np.bitwise_or.reduce(nibbles[:, 16:].astype(np.uint64) << shifts, axis=1)
    return hi, lo, valid


@dataclass
class UuidMap:
    """The atlas's ids by uuid, sorted by the uuid's two halves for binary search."""

    hi: np.ndarray
    lo: np.ndarray
    ids: np.ndarray

    @classmethod
    def of_metadata(cls, con, count: int, rows: int = 1_000_000) -> UuidMap:
        """Read ``id, uuid`` of the atlas's ids ``0..count-1`` from its DuckDB metadata."""
        his, los, idss = [], [], []
        sql = f"SELECT id, uuid::VARCHAR AS uuid FROM metadata WHERE id >= 0 AND id < {int(count)} AND uuid IS NOT NULL"
        for batch in arrow_batches(con, sql, rows):
            hi, lo, _ = uuid_keys(batch.column(1))
            his.append(hi)
            los.append(lo)
            idss.append(batch.column(0).to_numpy(zero_copy_only=False).astype(np.int64))
        hi = np.concatenate(his) if his else np.zeros(0, np.uint64)
        lo = np.concatenate(los) if los else np.zeros(0, np.uint64)
        ids = np.concatenate(idss) if idss else np.zeros(0, np.int64)
        order = np.lexsort((lo, hi))
        return cls(hi[order], lo[order], ids[order])

    def find(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """The id of each ``(hi, lo)`` uuid, -1 where the atlas has none."""
        left = np.searchsorted(self.hi, hi, side="left")
        right = np.searchsorted(self.hi, hi, side="right")
        out = np.full(len(hi), -1, dtype=np.int64)
        one = (right - left == 1) & (left < len(self.hi))
        match = one.copy()
        match[one] = self.lo[left[one]] == lo[one]
        out[match] = self.ids[left[match]]
        for j in np.flatnonzero(right - left > 1):      # equal high halves: rare, so looked at one by one
            same = np.flatnonzero(self.lo[left[j]:right[j]] == lo[j])
            if len(same):
                out[j] = self.ids[left[j] + same[0]]
        return out


# --------------------------------------------------------------------------- parquet
def parquet_files(source: Path) -> list[Path]:
    """The parquet files of a published config: ``source`` itself, or every ``*.parquet`` under
    it, in name order."""
    source = Path(source).expanduser()
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise EmbeddingsError(f"{source} does not exist; give the folder holding the downloaded parquet files "
                              "(`bioclip-nb download --embeddings` fetches them)")
    files = sorted(source.rglob("*.parquet"))
    if not files:
        raise EmbeddingsError(f"{source} holds no .parquet files")
    return files


def find_columns(schema, dim: int, sample) -> tuple[str, str]:
    """``(uuid column, vector column)`` of a parquet schema. The vector column is the one list of
    floats whose rows are ``dim`` wide (``sample``: a first batch, to read variable lists' width)."""
    import pyarrow as pa
    uuid = next((f.name for f in schema if f.name.lower() == "uuid"), None)
    if uuid is None:
        raise EmbeddingsError(f"no uuid column among {', '.join(schema.names)}")
    wide = []
    for f in schema:
        t = f.type
        if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)):
            continue
        if not pa.types.is_floating(t.value_type):
            continue
        width = t.list_size if pa.types.is_fixed_size_list(t) else _first_width(sample.column(f.name))
        if width == dim:
            wide.append(f.name)
    if len(wide) != 1:
        found = "none" if not wide else ", ".join(wide)
        raise EmbeddingsError(f"expected exactly one list-of-floats column {dim} wide (the model's width); found {found}. "
                              "Are these embeddings of this atlas's model?")
    return uuid, wide[0]


def _first_width(column) -> int | None:
    import pyarrow.compute as pc
    lengths = pc.list_value_length(column).drop_null()
    return int(lengths[0].as_py()) if len(lengths) else None


def vectors_of(column, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """``(unit float32 rows, usable)``: a list-of-floats column as an ``(n, dim)`` array, rows
    normalised; ``usable`` is False for null, wrong-width, non-finite or all-zero rows."""
    import pyarrow as pa
    import pyarrow.compute as pc
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    n = len(column)
    lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False)
    usable = column.is_valid().to_numpy(zero_copy_only=False) & (lengths == dim)
    out = np.zeros((n, dim), dtype=np.float32)
    if usable.any():
        good = column.filter(pa.array(usable))
        out[usable] = good.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, dim)
    finite = np.isfinite(out).all(axis=1)
    nonzero = np.abs(out).max(axis=1) > 0
    usable &= finite & nonzero
    out[~usable] = 0.0
    return normalise(out), usable


# --------------------------------------------------------------------------- prepare
def prepare_embeddings(atlas, source: Path, out_dir: Path | None = None, precision: str = DEFAULT_PRECISION,
                       progress: bool = True) -> dict:
    """Join published embeddings to ``atlas`` by uuid and write its full vectors into ``out_dir``
    (default: the atlas's derived-data cache). Resumable: files already done are skipped.
    Returns a report: records with and without a vector, rows not in the atlas, disk use."""
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm
    if precision not in PRECISIONS:
        raise EmbeddingsError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    files = parquet_files(source)
    out_dir = Path(out_dir) if out_dir is not None else atlas.cache_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    count, dim = atlas.count, atlas.dim
    record_path = out_dir / RECORD_FILE
    record = _resume_record(record_path, precision, count, dim)
    t0 = time.perf_counter()
    data_path, present_path = out_dir / PREPARED_FILE, out_dir / PRESENT_FILE
    if record is None:
        record = {"precision": precision, "count": count, "dim": dim, "source": str(Path(source).expanduser()),
                  "files_done": [], "parquet_rows": 0, "rows_not_in_atlas": 0, "unusable_rows": 0, "complete": False}
        data = np.lib.format.open_memmap(data_path, mode="w+", dtype=PRECISIONS[precision], shape=(count, dim))
        present = np.lib.format.open_memmap(present_path, mode="w+", dtype=np.uint8, shape=((count + 7) // 8,))
        _write_record(record_path, record)
    else:
        data = np.load(data_path, mmap_mode="r+")
        present = np.load(present_path, mmap_mode="r+")
    uuids = UuidMap.of_metadata(atlas.metadata._cursor(), count)
    done = set(record["files_done"])
    todo = [f for f in files if f.name not in done]
    columns = None
    for path in tqdm(todo, disable=not progress, desc="joining embeddings", unit="file"):
        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=columns):
            if columns is None:
                columns = list(find_columns(pf.schema_arrow, dim, batch))
                batch = batch.select(columns)
            hi, lo, valid = uuid_keys(batch.column(columns[0]))
            ids = uuids.find(hi, lo)
            ids[~valid] = -1
            unit, usable = vectors_of(batch.column(columns[1]), dim)
            record["parquet_rows"] += batch.num_rows
            record["rows_not_in_atlas"] += int(((ids < 0) & valid).sum())
            record["unusable_rows"] += int((~usable & (ids >= 0)).sum())
            keep = (ids >= 0) & usable
            order = np.argsort(ids[keep])
            target = ids[keep][order]
            data[target] = encode(unit[keep][order], precision)
            np.bitwise_or.at(present, target >> 3, (1 << (target & 7)).astype(np.uint8))
        data.flush()
        present.flush()
        record["files_done"].append(path.name)
        _write_record(record_path, record)
    covered = int(np.unpackbits(np.asarray(present), bitorder="little")[:count].sum())
    record.update(complete=True, records_with_vector=covered, records_without_vector=count - covered)
    _write_record(record_path, record)
    del data, present
    return {"atlas": str(atlas.path), "derived": str(out_dir), "precision": precision, "files": len(files),
            "files_this_run": len(todo), "records": count, "records_with_vector": covered,
            "records_without_vector": count - covered, "parquet_rows": record["parquet_rows"],
            "rows_not_in_atlas": record["rows_not_in_atlas"], "unusable_rows": record["unusable_rows"],
            "bytes_on_disk": _disk_use(data_path) + _disk_use(present_path),
            "seconds": round(time.perf_counter() - t0, 3)}


def _resume_record(path: Path, precision: str, count: int, dim: int) -> dict | None:
    """The record of an earlier run into the same place to go on from, or None to start afresh."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    same = (record.get("precision"), record.get("count"), record.get("dim")) == (precision, count, dim)
    files_there = (path.parent / PREPARED_FILE).is_file() and (path.parent / PRESENT_FILE).is_file()
    if not (same and files_there):
        return None
    record["complete"] = False
    return record


def _write_record(path: Path, record: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, path)


def _disk_use(path: Path) -> int:
    """Bytes a file really takes on disk (a sparse file takes less than its size)."""
    return int(path.stat().st_blocks) * 512
