"""The hits' metadata columns as id-ordered, memory-mapped arrays: a lookup without DuckDB.

A search shows ten rows of metadata. DuckDB finds them through its id index, but decompressing
a vector of each of 19 columns for each row costs about 7 ms at any table size
(docs/benchmarks.md), most of a search once FAISS and re-ranking take one or two. ``bioclip-nb
prepare`` therefore writes the columns a hit needs (``MetadataStore.raw_hit_expressions``), ordered
by id, into the atlas's derived data (``hit-columns/``):

* a column of few distinct values (the ranks, common names, sources, publishers) as one code
  per record (1, 2 or 4 bytes; 0 is NULL) and its values in ``NAME.values.json``;
* a column of many (record ids, URL suffixes) as UTF-8 bytes with int64 offsets;
* ``uuid`` as 16 bytes, numbers as int64 and flags as int8, each with NULL marked.

Reading a hit is then an array index per column. The published rows are in taxonomic order,
not id order, and a DuckDB query sorted by id spilled 39 GB at 234M records; :func:`write`
instead reads one column at a time in table order and places each value by id in memory, in
passes of ids where a column is larger than :data:`PASS_BYTES`, so the disk it needs is the
files' own (docs/benchmarks.md, "Writing the hit columns"). The published DuckDB stays the source of
truth: the files live in the derived directory of this exact metadata file (its fingerprint),
and opening them compares a sample of ids with DuckDB; any difference and they are not used.
An atlas whose ids are not exactly 0 to n-1 keeps DuckDB lookups.
"""

from __future__ import annotations

import json
import shutil
import uuid as uuidlib
from contextlib import ExitStack
from pathlib import Path

import numpy as np

DIRECTORY = "hit-columns"
RECORD = "hit-columns.json"
#: A text column with at most this many distinct values per record is stored as codes.
CODED_SHARE = 0.25
BATCH = 262_144
NULL_INT = np.iinfo(np.int64).min
#: Free disk a record needs while its columns are written: the files themselves (about 100
#: bytes on the published schema; nothing is spilled, see :func:`write`).
WRITE_BYTES_PER_RECORD = 120
#: Memory one pass over a column may use; a larger column is written in several passes of ids.
PASS_BYTES = 1 << 30
#: DuckDB's memory while the columns are written (by default it caches up to 80% of RAM).
DUCKDB_MEMORY = 2 << 30
#: Where DuckDB spills large queries (a coded column's DISTINCT values), in the derived data:
#: the metadata file's own folder may be read-only (a shared copy at OSC).
SPILL_DIRECTORY = ".duckdb-spill"


class NotEnoughDisk(OSError):
    """Too little free disk to write the hit columns."""


def write(store, out: Path, progress: bool = False) -> dict | None:
    """Write ``store``'s (a ``MetadataStore``) hit columns into ``out/hit-columns``; the record
    written, or None where the ids are not exactly 0 to n-1."""
    def con():
        return store._cursor()                         # one cursor per query: no result left open
    n, lo, hi = con().execute("SELECT count(*), min(id), max(id) FROM metadata").fetchone()
    if not n or lo != 0 or hi != n - 1 or not _ids_unique(con(), n):
        return None
    Path(out).mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(out).free
    if free < n * WRITE_BYTES_PER_RECORD:
        raise NotEnoughDisk(f"the hit columns of {n:,} records need about {n * WRITE_BYTES_PER_RECORD / 1e9:.1f} GB "
                            f"free in {out} while they are written ({free / 1e9:.1f} GB is): free some, or "
                            f"prepare --no-hit-columns (searches then read their rows from DuckDB)")
    _spill_into(con(), Path(out) / SPILL_DIRECTORY)
    (limit,) = con().execute("SELECT current_setting('memory_limit')").fetchone()
    con().execute(f"SET memory_limit = '{DUCKDB_MEMORY >> 20}MB'")     # its cache of the table, not 80% of RAM
    try:
        return _write(store, con, out, n, progress)
    finally:
        con().execute("RESET memory_limit")
        if con().execute("SELECT current_setting('memory_limit')").fetchone()[0] != limit:
            con().execute("SET memory_limit = ?", [limit])             # someone had set their own


def _write(store, con, out: Path, n: int, progress: bool) -> dict:
    from tqdm.auto import tqdm

    from .embeddings import arrow_batches
    exprs = store.raw_hit_expressions()
    final = Path(out) / DIRECTORY
    work = final.with_name(f".{DIRECTORY}.partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    kinds, values, row_bytes = plan(con, exprs, n, work)
    with tqdm(total=n * len(exprs), disable=not progress, desc="hit columns", unit="value", unit_scale=True) as bar:
        for name, (expr, _) in exprs.items():
            step = max(1, PASS_BYTES // row_bytes[name])
            with _ColumnFiles(work, name, kinds[name]["kind"]) as files:
                for start in range(0, n, step):
                    stop = min(n, start + step)
                    where = "" if stop - start == n else f" WHERE id >= {start} AND id < {stop}"
                    batches = arrow_batches(con(), f"SELECT id, {expr} AS v FROM metadata{where}", BATCH)
                    files.add(start, stop, batches, values.get(name))
                    bar.update(stop - start)
    record = {"rows": int(n), "columns": kinds, "metadata": str(store.path)}
    (work / RECORD).write_text(json.dumps(record))
    shutil.rmtree(final, ignore_errors=True)
    work.rename(final)
    return record


def _ids_unique(cursor, n: int) -> bool:
    """Whether the ids of ``n`` rows, all within 0 to n-1, are distinct: one scan of the id column
    into a bitmap of n bytes (``count(DISTINCT id)`` builds a hash table of every id)."""
    from .embeddings import arrow_batches
    seen = np.zeros(n, dtype=bool)
    for batch in arrow_batches(cursor, "SELECT id FROM metadata", BATCH):
        ids = np.asarray(batch.column(0), dtype=np.int64)
        if seen[ids].any() or len(np.unique(ids)) != len(ids):
            return False
        seen[ids] = True
    return True


def plan(con, exprs: dict, n: int, work: Path) -> tuple[dict, dict, dict]:
    """How each column is stored: ``(kinds, values, row_bytes)``, the kind of each column (a
    text column of few distinct values becomes codes, their values written to ``work``), the
    values of the coded ones, and the memory a record of each takes in one pass."""
    import pyarrow as pa
    kinds: dict[str, dict] = {}
    values: dict[str, pa.Array] = {}
    row_bytes: dict[str, int] = {}                         # memory a record takes in one pass
    for name, (expr, kind) in exprs.items():
        if kind == "text":
            count, mean = con().execute(
                f"SELECT approx_count_distinct({expr}), avg(strlen(CAST({expr} AS VARCHAR))) FROM metadata").fetchone()
            if count <= CODED_SHARE * n:
                distinct_values = [r[0] for r in con().execute(
                    f"SELECT DISTINCT {expr} AS v FROM metadata WHERE v IS NOT NULL ORDER BY v").fetchall()]
                width = _code_dtype(len(distinct_values))
                kinds[name] = {"kind": "codes", "dtype": width.name}
                values[name] = pa.array(distinct_values, type=pa.string())
                (work / f"{name}.values.json").write_text(json.dumps(distinct_values))
                row_bytes[name] = 24 + width.itemsize
                continue
            row_bytes[name] = 48 + 2 * int(mean or 0)      # arrow's copy and ours, offsets, lengths, nulls
        else:
            row_bytes[name] = {"uuid": 24 + 17 + 2 * 36, "int": 24 + 8}.get(kind, 24 + 1)
        kinds[name] = {"kind": kind}
    return kinds, values, row_bytes


class _ColumnFiles:
    """One hit column's files, written pass by pass: each pass holds the values of ids
    ``start`` to ``stop`` in memory, placed by id whatever order DuckDB returns them in."""

    def __init__(self, work: Path, name: str, kind: str):
        self.work, self.name, self.kind = work, name, kind
        self.stack = ExitStack()
        self.end = 0                                        # text bytes written so far

    def __enter__(self) -> _ColumnFiles:
        def opened(suffix: str):
            return self.stack.enter_context(open(self.work / f"{self.name}{suffix}", "wb"))
        self.data = opened(".bin")
        if self.kind in ("text", "uuid"):
            self.nulls = opened(".nulls.bin")
        if self.kind == "text":
            self.offsets = opened(".offsets.bin")
            self.offsets.write(np.zeros(1, np.int64).tobytes())
        return self

    def __exit__(self, *exc) -> None:
        self.stack.close()

    def add(self, start: int, stop: int, batches, value_set) -> None:
        """Place one pass's ``(id, v)`` record batches and append them to the files."""
        import pyarrow as pa
        import pyarrow.compute as pc
        m = stop - start
        if self.kind == "text":
            self._add_text(m, [(np.asarray(b.column(0), dtype=np.int64) - start, b.column(1)) for b in batches])
            return
        if self.kind == "codes":
            out = np.zeros(m, dtype=_code_dtype(len(value_set)))
        elif self.kind == "uuid":
            out = np.zeros((m, 16), np.uint8)
        elif self.kind == "int":
            out = np.full(m, NULL_INT, np.int64)
        else:
            out = np.full(m, -1, np.int8)
        null = np.ones(m, np.uint8)
        for batch in batches:
            at, col = np.asarray(batch.column(0), dtype=np.int64) - start, batch.column(1)
            if self.kind == "codes":
                out[at] = np.asarray(pc.fill_null(pc.add(pc.index_in(col.cast(pa.string()), value_set=value_set), 1), 0))
            elif self.kind == "uuid":
                null[at] = np.asarray(pc.is_null(col), dtype=np.uint8)
                out[at] = _uuid_bytes(col, null[at])
            elif self.kind == "int":
                out[at] = np.asarray(pc.fill_null(col.cast(pa.int64()), NULL_INT), dtype=np.int64)
            else:                                                   # bool: -1 NULL, 0, 1
                out[at] = np.asarray(pc.fill_null(col.cast(pa.int8()), -1), dtype=np.int8)
        self.data.write(out.tobytes())
        if self.kind == "uuid":
            self.nulls.write(null.tobytes())

    def _add_text(self, m: int, parts: list) -> None:
        import pyarrow.compute as pc
        lengths = np.zeros(m, np.int64)
        null = np.ones(m, np.uint8)
        buffers = []
        for at, col in parts:
            offs, blob = _string_buffers(col)
            lengths[at] = np.diff(offs)
            null[at] = np.asarray(pc.is_null(col), dtype=np.uint8)
            buffers.append((at, offs, blob))
        starts = np.zeros(m + 1, np.int64)
        np.cumsum(lengths, out=starts[1:])
        text = np.empty(int(starts[-1]), np.uint8)
        for at, offs, blob in buffers:                              # each value's bytes to its id's place
            within = offs[:-1] - offs[0]
            text[np.repeat(starts[at] - within, np.diff(offs)) + np.arange(len(blob))] = np.frombuffer(blob, np.uint8)
        self.data.write(text.tobytes())
        self.offsets.write((self.end + starts[1:]).tobytes())
        self.nulls.write(null.tobytes())
        self.end += int(starts[-1])


def _code_dtype(distinct: int) -> np.dtype:
    """The narrowest unsigned integer holding codes 0 (NULL) to ``distinct``."""
    return np.dtype(np.uint8 if distinct < 255 else np.uint16 if distinct < 65_535 else np.uint32)


def _spill_into(cursor, directory: Path) -> None:
    """Have DuckDB spill large sorts into ``directory`` rather than beside the metadata file,
    whose folder may be read-only (a shared copy at OSC). The setting belongs to the database and
    cannot change once it has spilled, so the directory stays; DuckDB removes its files."""
    import duckdb
    directory.mkdir(parents=True, exist_ok=True)
    try:
        cursor.execute("SET temp_directory = ?", [str(directory)])
    except duckdb.Error:
        pass                                          # it has spilled before: keep its directory


class HitColumns:
    """The written hit columns, memory-mapped. Open with :meth:`open`."""

    def __init__(self, root: Path, record: dict):
        self.rows = n = int(record["rows"])
        self.kinds = record["columns"]
        self._arrays: dict[str, np.ndarray] = {}
        self._values: dict[str, np.ndarray] = {}
        sizes: dict[str, int] = {}                        # entries each file must hold (text bytes: any)
        for name, spec in self.kinds.items():
            kind = spec["kind"]
            if kind == "codes":
                self._arrays[name] = _map(root / f"{name}.bin", np.dtype(spec["dtype"]))
                vals = json.loads((root / f"{name}.values.json").read_text())
                self._values[name] = np.array([None, *vals], dtype=object)
                sizes[name] = n
            elif kind == "text":
                self._arrays[name] = _map(root / f"{name}.bin", np.uint8)
                self._arrays[name + ".offsets"] = _map(root / f"{name}.offsets.bin", np.int64)
                self._arrays[name + ".nulls"] = _map(root / f"{name}.nulls.bin", np.uint8)
                sizes[name + ".offsets"], sizes[name + ".nulls"] = n + 1, n
            elif kind == "uuid":
                self._arrays[name] = _map(root / f"{name}.bin", np.uint8).reshape(-1, 16)
                self._arrays[name + ".nulls"] = _map(root / f"{name}.nulls.bin", np.uint8)
                sizes[name], sizes[name + ".nulls"] = n, n
            else:
                self._arrays[name] = _map(root / f"{name}.bin", np.int64 if kind == "int" else np.int8)
                sizes[name] = n
        for key, want in sizes.items():                   # a truncated or foreign file is refused, not read past
            if len(self._arrays[key]) != want:
                raise ValueError(f"{key}: {len(self._arrays[key]):,} entries for {n:,} records")
            if key.endswith(".offsets") and n and self._arrays[key][-1] != len(self._arrays[key[:-len(".offsets")]]):
                raise ValueError(f"{key}: the offsets do not end at the text's length")

    @classmethod
    def open(cls, root: Path) -> HitColumns | None:
        """The columns in ``root`` if complete and readable, else None."""
        try:
            record = json.loads((Path(root) / RECORD).read_text())
            return cls(Path(root), record)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def raw(self, ids: np.ndarray) -> dict[str, list]:
        """Each column's Python values for ``ids`` (all within 0 to rows-1), as DuckDB's
        ``fetchall`` gives them: str, int, bool or None."""
        ids = np.asarray(ids, dtype=np.int64)
        out: dict[str, list] = {}
        for name, spec in self.kinds.items():
            kind, arr = spec["kind"], self._arrays[name]
            if kind == "codes":
                out[name] = self._values[name][arr[ids]].tolist()
            elif kind == "text":
                offs, null = self._arrays[name + ".offsets"], self._arrays[name + ".nulls"]
                out[name] = [None if null[i] else bytes(arr[offs[i]:offs[i + 1]]).decode() for i in ids.tolist()]
            elif kind == "uuid":
                null = self._arrays[name + ".nulls"]
                out[name] = [None if null[i] else str(uuidlib.UUID(bytes=bytes(arr[i]))) for i in ids.tolist()]
            elif kind == "int":
                out[name] = [None if v == NULL_INT else v for v in arr[ids].tolist()]
            else:
                out[name] = [None if v < 0 else bool(v) for v in arr[ids].tolist()]
        return out


def _string_buffers(col) -> tuple[np.ndarray, bytes]:
    """A string column's int64 offsets (``len + 1``) and the UTF-8 bytes they index."""
    import pyarrow as pa
    text = col.cast(pa.large_string())
    _, off_buf, data = text.buffers()
    offs = np.frombuffer(off_buf, dtype=np.int64)[text.offset:text.offset + len(text) + 1]
    blob = b"" if data is None else data.to_pybytes()[int(offs[0]):int(offs[-1])]
    return offs, blob


def _uuid_bytes(col, null: np.ndarray) -> np.ndarray:
    """``(n, 16)`` bytes of a column of UUID strings (zeros where NULL), decoded from the hex
    in one pass when every value has the canonical 36 characters."""
    offs, blob = _string_buffers(col)
    n = len(null)
    lengths = np.diff(offs)
    out = np.zeros((n, 16), dtype=np.uint8)
    if n and np.all(lengths[null == 0] == 36) and np.all(lengths[null == 1] == 0):
        chars = np.frombuffer(blob, dtype=np.uint8).reshape(-1, 36)
        hexes = chars[:, [i for i in range(36) if i not in (8, 13, 18, 23)]]
        nibble = np.full(256, 0, dtype=np.uint8)
        nibble[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16, dtype=np.uint8)
        nibble[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16, dtype=np.uint8)
        v = nibble[hexes]
        out[null == 0] = (v[:, 0::2] << 4) | v[:, 1::2]
        return out
    for i, value in enumerate(col.to_pylist()):
        if value is not None:
            out[i] = np.frombuffer(uuidlib.UUID(value).bytes, dtype=np.uint8)
    return out


def _map(path: Path, dtype) -> np.ndarray:
    size = path.stat().st_size
    if size == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")
