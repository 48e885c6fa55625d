"""DuckDB metadata: rows by id in FAISS order, image URLs, and scope / taxon bitmaps.

The store opens ``duckdb/metadata.duckdb`` read-only. It expects the published schema
(table ``metadata`` keyed by ``id`` = FAISS position, table ``url_prefixes``) and tolerates
its quirks: ENUM taxonomy columns, rows sorted by taxonomy rather than id, NULL ranks.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from ..errors import AtlasError
from ..layout import GBIF_OCCURRENCE, HIT_COLUMNS, METADATA_FILE, RANKS, REQUIRED_COLUMNS, Rank, Scope

MAX_LOOKUP = 1000
#: Columns read as text whatever their type in the file (ENUM, VARCHAR, UUID).
TEXT_COLUMNS = (*RANKS, "common_name", "source_dataset", "source_id", "publisher", "img_type", "uuid",
                "basisOfRecord")
#: The SQL condition of each scope (None: every record).
SCOPE_SQL: dict[Scope, str | None] = {
    Scope.ALL: None,
    Scope.URL: "has_url",
    Scope.INAT: "source_dataset = 'gbif' AND publisher LIKE '%iNaturalist%' AND has_url",
    Scope.TRAINING: "in_bioclip2_training",
}


def _q(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def _column_sql(column: str) -> str:
    """How a lookup selects a present column: text (ENUMs, UUIDs) as VARCHAR, the rest as stored."""
    return f"{_q(column)}::VARCHAR" if column in TEXT_COLUMNS else _q(column)


class MetadataStore:
    """Read-only access to an atlas's ``metadata.duckdb``. Open with :meth:`open`."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path, prefixes: dict[int, str], columns: set[str]):
        self._con = con
        self.path = path
        self.prefixes = prefixes          # url_prefixes (411 rows in the published file), read once
        self.columns = columns
        self._count: int | None = None
        self.hit_columns = None           # ``hitcolumns.HitColumns`` once attached and checked

    @classmethod
    def open(cls, path: str | Path) -> MetadataStore:
        """Open and validate the database; raise :class:`AtlasError` naming what is wrong."""
        path = Path(path)
        if not path.is_file():
            raise AtlasError(f"metadata database not found: {path} (expected {METADATA_FILE} in the atlas)")
        try:
            con = duckdb.connect(str(path), read_only=True)
        except duckdb.Error as exc:
            raise AtlasError(
                f"{path} is not a DuckDB database this DuckDB ({duckdb.__version__}) can open: {exc}. "
                "Re-download it with `bioclip-nb download` or rebuild the atlas."
            ) from None
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        for table in ("metadata", "url_prefixes"):
            if table not in tables:
                con.close()
                raise AtlasError(f"{path} has no table {table!r} (found: {', '.join(sorted(tables)) or 'none'}); "
                                 "this is not a bioclip-nb metadata database")
        cols = _columns(con, "metadata")
        missing = [c for c in REQUIRED_COLUMNS if c not in cols]
        if missing:
            con.close()
            raise AtlasError(f"{path}: table 'metadata' lacks column(s) {', '.join(missing)}; "
                             "the atlas was written with another schema. Rebuild it with `bioclip-nb build`.")
        pcols = _columns(con, "url_prefixes")
        key = next((c for c in ("prefix_id", "id", "url_prefix_id") if c in pcols), None)
        val = next((c for c in ("prefix", "url_prefix", "url") if c in pcols), None)
        if key is None or val is None:
            con.close()
            raise AtlasError(f"{path}: table 'url_prefixes' needs an id column and a prefix column, "
                             f"found {', '.join(pcols)}")
        prefixes = {int(k): str(v) for k, v in con.execute(
            f"SELECT {_q(key)}, {_q(val)} FROM url_prefixes WHERE {_q(key)} IS NOT NULL").fetchall()}
        return cls(con, path, prefixes, set(cols))

    def close(self) -> None:
        """Close the connection."""
        self._con.close()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        # A cursor is a separate connection to the same database: safe across threads.
        return self._con.cursor()

    def count(self) -> int:
        """Number of rows in ``metadata``."""
        if self._count is None:
            self._count = int(self._cursor().execute("SELECT count(*) FROM metadata").fetchone()[0])
        return self._count

    def id_range(self) -> tuple[int, int]:
        """Smallest and largest id."""
        lo, hi = self._cursor().execute("SELECT min(id), max(id) FROM metadata").fetchone()
        return int(lo if lo is not None else 0), int(hi if hi is not None else -1)

    def lookup_sql(self, ids: np.ndarray, wanted: tuple[str, ...] = HIT_COLUMNS) -> str:
        """The lookup for distinct ``ids``: ``WHERE id IN (literal list)``, the shape DuckDB
        answers with the ``idx_id`` index (a join against a list would scan the whole table)."""
        select = ["id"]
        for c in wanted:
            if c == "url":
                select += ["url_prefix_id", "identifier_suffix"]
            elif c == "occurrence_url":
                select.append(f"CASE WHEN source_dataset::VARCHAR = 'gbif' AND source_id IS NOT NULL "
                              f"THEN '{GBIF_OCCURRENCE}' || source_id::VARCHAR END AS occurrence_url")
            elif c not in self.columns:
                select.append(f"NULL::VARCHAR AS {_q(c)}")          # an older schema without this column
            else:
                select.append(f"{_column_sql(c)} AS {_q(c)}")
        listed = ", ".join(str(int(i)) for i in ids)
        return f"SELECT {', '.join(dict.fromkeys(select))} FROM metadata WHERE id IN ({listed})"

    def get(self, ids, cols: tuple[str, ...] | None = None) -> pd.DataFrame:
        """Rows for up to 1,000 ids, in the order given, one index-backed DuckDB query.

        Returns the hit columns (``HIT_COLUMNS`` or ``cols``) plus ``id``. An id with no row
        gives a row of missing values; missing ranks are ``None``, never ``"None"``. The image
        URL is the prefix (``url_prefixes``) plus ``identifier_suffix``, or the suffix alone
        where ``url_prefix_id`` is NULL (the published file has such rows).
        """
        ids = np.asarray(ids, dtype=np.int64).ravel()
        return hit_frame({"id": ids, **self.values(ids, cols)})

    def values(self, ids, cols: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """The hit columns of up to 1,000 ids as object arrays in the order given (the values of
        :meth:`get`, without building a DataFrame)."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if ids.size > MAX_LOOKUP:
            raise ValueError(f"at most {MAX_LOOKUP} ids per lookup, got {ids.size}")
        wanted = HIT_COLUMNS if cols is None else tuple(cols)
        if ids.size == 0:
            return {c: np.empty(0, dtype=object) for c in wanted}
        unique, inverse = np.unique(ids, return_inverse=True)
        hc = self.hit_columns
        if cols is None and hc is not None and unique[0] >= 0 and unique[-1] < hc.rows:
            col = self._sidecar_columns(hc, unique)
        else:
            col = self._duckdb_columns(unique, wanted)
        out = {}
        for c in wanted:
            if c == "url":
                v = [self._url(p, sfx) for p, sfx in zip(col["url_prefix_id"], col["identifier_suffix"])]
            elif c in RANKS or c == "common_name":
                v = [x.strip() or None if isinstance(x, str) else None for x in col[c]]
            else:
                v = col[c]
            arr = np.empty(len(v), dtype=object)
            arr[:] = v
            out[c] = arr[inverse]
        return out

    def _duckdb_columns(self, unique: np.ndarray, wanted: tuple[str, ...]) -> dict[str, list]:
        """The raw columns of ``lookup_sql`` for distinct ``unique`` ids, in their order."""
        cur = self._cursor().execute(self.lookup_sql(unique, wanted))
        names = [d[0] for d in cur.description]
        by_id = {row[0]: row for row in cur.fetchall()}           # a few thousand values: plain Python is fastest
        empty = (None,) * len(names)
        rows = [by_id.get(int(i), empty) for i in unique]          # ids without a row stay, as missing values
        return {name: [r[k] for r in rows] for k, name in enumerate(names)}

    @staticmethod
    def _sidecar_columns(hc, unique: np.ndarray) -> dict[str, list]:
        """The same raw columns from the memory-mapped hit columns (``hitcolumns``)."""
        col = hc.raw(unique)
        n = len(unique)
        for c in HIT_COLUMNS:
            if c not in ("url", "occurrence_url") and c not in col:
                col[c] = [None] * n                                  # an older schema without this column
        col.setdefault("url_prefix_id", [None] * n)
        col.setdefault("identifier_suffix", [None] * n)
        col["occurrence_url"] = [GBIF_OCCURRENCE + sid if ds == "gbif" and sid is not None else None
                                 for ds, sid in zip(col["source_dataset"], col["source_id"])]
        return col

    def raw_hit_expressions(self) -> dict[str, tuple[str, str]]:
        """What ``hitcolumns.write`` stores: each raw column a hit needs, as ``(SQL expression,
        kind)`` with kind ``text``, ``uuid``, ``int`` or ``bool``."""
        types = {r[0]: str(r[1]).upper() for r in self._cursor().execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'metadata'").fetchall()}
        out: dict[str, tuple[str, str]] = {}
        for c in (*[h for h in HIT_COLUMNS if h not in ("url", "occurrence_url")], "url_prefix_id", "identifier_suffix"):
            if c not in self.columns:
                continue
            kind = ("uuid" if c == "uuid" and types.get(c) == "UUID" else "int" if c == "url_prefix_id"
                    else "bool" if c in ("has_url", "in_bioclip2_training") else "text")
            out[c] = (_column_sql(c), kind)                 # the expression lookup_sql selects
        return out

    def attach_hit_columns(self, hc, rows: int, sample: int = 32, seed: int = 0) -> bool:
        """Use ``hc`` for lookups if it holds this table's ``rows`` rows: a sample of ids read
        both ways must agree exactly (the DuckDB file stays the source of truth)."""
        if hc is None or hc.rows != rows:
            return False
        ids = np.unique(np.random.default_rng(seed).integers(0, hc.rows, size=min(sample, hc.rows)))
        ids = np.unique(np.r_[ids, 0, hc.rows - 1])
        expected = self._duckdb_columns(ids, HIT_COLUMNS)
        got = self._sidecar_columns(hc, ids)
        if any(got.get(k) != v for k, v in expected.items() if k != "id"):
            return False
        self.hit_columns = hc
        return True

    def _url(self, prefix_id: int | None, suffix: str | None) -> str | None:
        """Prefix plus suffix; the suffix alone where the prefix id is NULL (a whole URL)."""
        if suffix is None:
            return None
        if prefix_id is None:
            return suffix
        prefix = self.prefixes.get(int(prefix_id))
        return None if prefix is None else prefix + suffix

    def ids_where(self, condition: str, params: list | None = None) -> np.ndarray:
        """All ids whose row satisfies a SQL condition (one column scan)."""
        sql = f"SELECT id FROM metadata WHERE {condition}"
        return self._cursor().execute(sql, params or []).fetchnumpy()["id"].astype(np.int64)

    def scope_ids(self, scope: Scope) -> np.ndarray | None:
        """Ids in a scope, or None for ``all``."""
        cond = SCOPE_SQL[Scope.parse(scope)]
        return None if cond is None else self.ids_where(cond)

    def taxon_ids(self, rank: Rank, name: str) -> np.ndarray:
        """Ids whose ``rank`` equals ``name`` (exact, case-sensitive as stored)."""
        return self.ids_where(f"{_q(Rank.parse(rank).value)}::VARCHAR = ?", [name])

    def scope_counts(self) -> dict[str, int]:
        """Record count of each scope, in one scan."""
        parts = ", ".join(
            f"count(*) FILTER (WHERE {cond}) AS {_q(s.value)}" if cond else f"count(*) AS {_q(s.value)}"
            for s, cond in SCOPE_SQL.items()
        )
        row = self._cursor().execute(f"SELECT {parts} FROM metadata").fetchone()
        return {s.value: int(v) for s, v in zip(SCOPE_SQL, row)}

    def taxon_values(self, rank: Rank, prefix: str = "", limit: int = 50) -> list[str]:
        """Distinct names at a rank (for completion), most frequent first, optionally by prefix."""
        col = _q(Rank.parse(rank).value)
        sql = (f"SELECT {col}::VARCHAR AS v, count(*) AS n FROM metadata "
               f"WHERE {col} IS NOT NULL AND {col}::VARCHAR <> '' AND {col}::VARCHAR ILIKE ? ESCAPE '\\' "
               f"GROUP BY v ORDER BY n DESC, v LIMIT ?")
        return [r[0] for r in self._cursor().execute(sql, [like_prefix(prefix), int(limit)]).fetchall()]

    def sample_column(self, ids: np.ndarray, column: str) -> pd.Series:
        """One column for many ids (no 1,000 limit), aligned to ``ids``."""
        ids = np.asarray(ids, dtype=np.int64)
        sql = (f"WITH q AS (SELECT unnest($ids) AS id, generate_subscripts($ids, 1) AS pos) "
               f"SELECT m.{_q(column)}::VARCHAR AS v FROM q LEFT JOIN metadata m USING (id) ORDER BY q.pos")
        return self._cursor().execute(sql, {"ids": ids.tolist()}).df()["v"]


def like_prefix(prefix: str) -> str:
    """A LIKE pattern matching names that start with ``prefix`` taken literally
    (``%``, ``_`` and the escape character itself are escaped; use with ``ESCAPE '\\'``)."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return [r[0] for r in rows]


def hit_frame(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """A DataFrame of hit columns (object arrays from :meth:`MetadataStore.values`, plus numeric
    ones), in the order given: missing values stay None, ``id`` is int64, and the two flags are
    bool where no row lacks them. The object columns go in as one block (building each as its
    own Series took most of a search's time once lookups were memory-mapped)."""
    numeric: dict[str, np.ndarray] = {}
    objects: dict[str, np.ndarray] = {}
    for c, v in columns.items():
        v = np.asarray(v)
        if c == "id":
            v = v.astype(np.int64)
        if v.dtype == object and c in ("has_url", "in_bioclip2_training") and not pd.isna(v).any():
            v = v.astype(bool)
        (objects if v.dtype == object else numeric)[c] = v
    parts = []
    if numeric:
        parts.append(pd.DataFrame(numeric))
    if objects:
        n = len(next(iter(objects.values())))
        block = np.empty((n, len(objects)), dtype=object)
        for k, v in enumerate(objects.values()):
            block[:, k] = v
        parts.append(pd.DataFrame(block, columns=list(objects), dtype=object, copy=False))
    df = parts[0] if len(parts) == 1 else pd.concat(parts, axis=1)
    placed = [*numeric, *objects]
    if placed == list(columns):
        return df
    where = {c: k for k, c in enumerate(placed)}
    return df.iloc[:, [where[c] for c in columns]]
