"""Atlas: an index and its metadata, opened, validated and searched as one.

An atlas is a directory::

    faiss/index.index         IVF-PQ (or flat) index; ids are positions
    duckdb/metadata.duckdb    tables ``metadata`` and ``url_prefixes``
    atlas.json                optional manifest (bioclip-nb's own atlases)
    images/ queries/          optional, own atlases keep their images here

The published ``imageomics/bioclip-image-search-lite`` layout has no manifest; one is
inferred (BioCLIP 2's vectors). The file names and the manifest are defined in ``layout``.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .. import limits
from ..config import Settings
from ..errors import AtlasError, ModelMismatchError
from ..layout import (
    INDEX_FILE,
    MANIFEST_FILE,
    METADATA_FILE,
    Manifest,
    ManifestError,
    Rank,
    Scope,
    display_name,
    model_spec,
    parse_taxon,
)
from ..request import SearchRequest
from . import folding, probing, searching
from . import index as ivf
from .derived import DerivedData
from .exactness import Exactness
from .fullvectors import FullVectors
from .metadata import MAX_LOOKUP, MetadataStore, hit_frame


class Atlas:
    """A searchable atlas. Open with :meth:`open`; searching is thread-safe."""

    def __init__(self, path: Path, index, metadata: MetadataStore, manifest: Manifest,
                 settings: Settings, fingerprint: str):
        self.path = path
        self.index = index
        self.metadata = metadata
        self.manifest = manifest
        self.settings = settings
        self.fingerprint = fingerprint
        self.data = DerivedData(settings, fingerprint)     # derived data: prepared, cached, in memory
        self._content_fingerprint: str | None = None
        self._centroids: np.ndarray | None = None
        self.exactness = Exactness(self)                    # full vectors and the re-ranking pool
        self.quantizer = "flat"

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | Path, settings: Settings | None = None, mmap: bool = True) -> Atlas:
        """Open and validate an atlas directory; :class:`AtlasError` says what is wrong and how to fix it."""
        settings = settings or Settings.from_env()
        root = Path(path).expanduser()
        if not root.exists():
            raise AtlasError(f"atlas directory not found: {root}. Build one with `bioclip-nb demo` "
                             "or `bioclip-nb build`, or get the published one with `bioclip-nb download`.")
        if not root.is_dir():
            raise AtlasError(f"{root} is a file; an atlas is a directory holding faiss/ and duckdb/")
        for rel in (INDEX_FILE, METADATA_FILE):
            if not (root / rel).is_file():
                raise AtlasError(f"{root / rel} is missing: an atlas needs {INDEX_FILE} and {METADATA_FILE}. "
                                 "Re-run `bioclip-nb download` (it resumes) or rebuild the atlas.")
        index = ivf.open_index(root / INDEX_FILE, mmap=mmap)
        metadata = MetadataStore.open(root / METADATA_FILE)
        try:
            manifest = cls._manifest(root, index)
            fingerprint = _fingerprint(root)
            atlas = cls(root, index, metadata, manifest, settings, fingerprint)
            atlas._validate()
            from .quantizer import SIDECAR, use_sidecar
            atlas._hnsw = use_sidecar(index, atlas.derived(SIDECAR))   # keeps it alive
            if atlas._hnsw is not None:
                atlas.quantizer = "hnsw"
            atlas.attach_hit_columns()
        except Exception:
            metadata.close()
            raise
        return atlas

    @staticmethod
    def _manifest(root: Path, index) -> Manifest:
        metric = ivf.metric_name(index)
        if (root / MANIFEST_FILE).is_file():
            try:
                m = Manifest.read(root / MANIFEST_FILE)
            except ManifestError as exc:
                raise AtlasError(str(exc)) from None
            if m.dim != index.d:
                raise AtlasError(f"{root / MANIFEST_FILE} says dim {m.dim} but {root / INDEX_FILE} holds "
                                 f"{index.d}-d vectors; the manifest belongs to another index. Rebuild the atlas.")
            return m
        return Manifest.inferred(dim=index.d, metric=metric, count=int(index.ntotal), nlist=ivf.nlist_of(index))

    def _validate(self) -> None:
        spec = model_spec(self.manifest.model)
        expected = spec.dim if spec is not None else None
        if expected is not None and expected != self.index.d:
            raise AtlasError(f"{self.path / INDEX_FILE} holds {self.index.d}-d vectors but the atlas's model "
                             f"{self.manifest.model} embeds to {expected}-d; this index was built with another "
                             f"model. Fix `model` in {MANIFEST_FILE} or rebuild the atlas.")
        ntotal = int(self.index.ntotal)
        if self.derived("validated.json").is_file():
            return
        rows = self.metadata.count()
        if rows < ntotal:
            raise AtlasError(f"{self.path / INDEX_FILE} holds {ntotal:,} vectors but {self.path / METADATA_FILE} "
                             f"has only {rows:,} rows: the two files come from different atlases. "
                             "Download or rebuild them together.")
        covered = int(self.metadata._cursor().execute(
            "SELECT count(DISTINCT id) FROM metadata WHERE id >= 0 AND id < ?", [ntotal]).fetchone()[0])
        if covered < ntotal:
            raise AtlasError(f"{self.path / METADATA_FILE} has rows for only {covered:,} of the {ntotal:,} "
                             f"ids in {self.path / INDEX_FILE} (ids must be 0..{ntotal - 1}); "
                             "the files do not belong together. Rebuild the atlas.")
        self.data.write_json("validated.json", {"ntotal": ntotal, "rows": rows})

    def close(self) -> None:
        """Release the metadata connection and drop the memory maps of the hit columns and the
        full vectors (their files close once nothing else holds a row of them)."""
        self.metadata.close()
        self.metadata.hit_columns = None
        self.exactness.reload()

    def __enter__(self) -> Atlas:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Atlas({str(self.path)!r}, model={self.model!r}, count={self.count:,}, nlist={self.nlist})"

    # ------------------------------------------------------------------ facts
    @property
    def model(self) -> str:
        """The encoder this atlas's vectors come from."""
        return self.manifest.model

    @property
    def dim(self) -> int:
        return int(self.index.d)

    @property
    def count(self) -> int:
        """Vectors in the index."""
        return int(self.index.ntotal)

    @property
    def nlist(self) -> int:
        """IVF cells (1 for a flat index)."""
        return ivf.nlist_of(self.index)

    @property
    def metric(self) -> str:
        return ivf.metric_name(self.index)

    @property
    def cache_dir(self) -> Path:
        """This atlas's derived-data cache (under ``$BIOCLIP_NB_HOME/cache``)."""
        return self.data.cache_dir

    @property
    def content_fingerprint(self) -> str:
        """A fingerprint of the index and metadata files' contents, the same on every machine
        (``provenance.content_fingerprint``); computed once."""
        if self._content_fingerprint is None:
            from ..outputs.provenance import content_fingerprint
            self._content_fingerprint = content_fingerprint([self.path / INDEX_FILE, self.path / METADATA_FILE])
        return self._content_fingerprint

    def info(self) -> dict:
        """Facts for ``bioclip-nb info``: count, dim, metric, nlist, model, scope counts."""
        return {
            "path": str(self.path), "model": self.model, "model_name": display_name(self.model),
            "count": self.count, "dim": self.dim,
            "content_fingerprint": self.content_fingerprint,
            "metric": self.metric, "nlist": self.nlist, "rows": self.metadata.count(),
            "index_type": type(self.index).__name__, "quantizer": self.quantizer, "format_version": self.manifest.format_version,
            "created": self.manifest.created, "source": self.manifest.source,
            "scope_counts": self.scope_counts(),
            "full_vectors": self.exactness.info(),
            "hit_columns": self.metadata.hit_columns is not None,
        }

    def attach_hit_columns(self) -> bool:
        """Look hits up in the memory-mapped hit columns ``prepare`` wrote (``hitcolumns``) if
        they are there and agree with DuckDB on a sample; else lookups stay in DuckDB."""
        from . import hitcolumns
        found = hitcolumns.HitColumns.open(self.derived(f"{hitcolumns.DIRECTORY}/{hitcolumns.RECORD}").parent)
        if found is None:
            return False
        validated = self.data.read_json("validated.json") or {}       # rows counted once, not again here
        rows = validated.get("rows") if isinstance(validated.get("rows"), int) else self.metadata.count()
        return self.metadata.attach_hit_columns(found, rows)

    def derived(self, name: str) -> Path:
        """Where this atlas's derived file ``name`` is (``DerivedData.path``): the shared prepared
        directory (``BIOCLIP_NB_DERIVED_DIR``) if it holds it, else the per-user cache."""
        return self.data.path(name)

    def scope_counts(self, compute: bool = True) -> dict[str, int] | None:
        """Records in each scope (one scan of the table, then kept); None if they were never
        computed and ``compute`` is False."""
        counts = self.data.read_json("scope_counts.json")
        if counts is not None or not compute:
            return counts
        counts = self.metadata.scope_counts()
        self.data.write_json("scope_counts.json", counts)
        return counts

    # ------------------------------------------------------------------ scopes
    def bitmap(self, scope: Scope | str = Scope.ALL, taxon=None) -> np.ndarray | None:
        """The id bitmap for a scope ANDed with a taxon filter; None when nothing is excluded."""
        return self._scope(scope, taxon)[0]

    def _scope(self, scope: Scope | str, taxon) -> tuple[np.ndarray | None, str]:
        """``(bitmap, key)``: the key names the scope and filters, for their derived data."""
        scope = Scope.parse(scope)
        keys = [f"scope-{scope.value}"]
        parts = [self._cached_bitmap(keys[0], lambda: self.metadata.scope_ids(scope))]
        for rank, name in sorted(parse_taxon(taxon).items()):
            keys.append("taxon-" + rank.value + "-" + hashlib.sha1(name.encode()).hexdigest()[:16])
            parts.append(self._cached_bitmap(keys[-1], lambda r=rank, n=name: self.metadata.taxon_ids(r, n)))
        parts = [p for p in parts if p is not None]
        if not parts:
            return None, keys[0]
        out = parts[0]
        for p in parts[1:]:
            out = np.bitwise_and(out, p)
        return out, "+".join(keys)

    def _cached_bitmap(self, key: str, ids_fn) -> np.ndarray | None:
        def compute() -> np.ndarray | None:
            ids = ids_fn()
            return None if ids is None else ivf.ids_to_bitmap(ids, self.count)

        return self.data.remembered("bitmaps", key, f"{key}.npy", compute, lambda b: len(b) == (self.count + 7) // 8)

    def cell_counts(self, scope: Scope | str = Scope.ALL, taxon=None) -> np.ndarray | None:
        """In-scope records per IVF cell (None for the whole atlas): one pass over the lists'
        ids, computed once per scope and filter and kept with the atlas's derived data."""
        bitmap, key = self._scope(scope, taxon)
        if bitmap is None or self.nlist <= 1:
            return None
        return self.cells_in(key, bitmap)

    def cells_in(self, key: str, bitmap: np.ndarray) -> np.ndarray:
        """In-scope records per cell for the scope ``bitmap`` named ``key`` (kept per key)."""
        return self.data.remembered("cells", key, f"cells-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npy",
                                    lambda: probing.cell_counts(self.index, bitmap), lambda c: len(c) == self.nlist)

    @property
    def centroids(self) -> np.ndarray:
        """The IVF centroids ``(nlist, dim)`` (a view of the quantizer's storage where possible)."""
        if self._centroids is None:
            self._centroids = probing.centroid_table(self.index)
        return self._centroids

    # ------------------------------------------------------------------ search
    def check_vectors(self, vectors, model: str | None = None) -> np.ndarray:
        """Validate and L2-normalise query vectors to ``(n, dim)`` float32."""
        if model is not None and model != self.model:
            raise ModelMismatchError(
                f"these vectors come from {model!r} but the atlas {self.path} was built with "
                f"{self.model!r}; search it with that model, or open an atlas built with {model!r}")
        arr = np.asarray(vectors, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.dim or arr.shape[0] == 0:
            raise ValueError(f"query vectors must have shape ({self.dim},) or (n, {self.dim}); got {np.shape(vectors)}")
        if not np.isfinite(arr).all():
            raise ValueError("query vectors contain NaN or infinity")
        norms = np.linalg.norm(arr, axis=1, keepdims=True)
        if (norms == 0).any():
            raise ValueError("a query vector is all zeros; it has no direction to search")
        return np.ascontiguousarray(arr / norms, dtype=np.float32)

    def search(self, vectors, top_n: int = limits.DEFAULT_TOP_N, nprobe: int | None = None, scope: Scope | str = Scope.ALL,
               taxon=None, model: str | None = None, fold: bool = False, exact: bool | None = None) -> pd.DataFrame:
        """Nearest records to one vector ``(dim,)`` or a batch ``(n, dim)``.

        Returns a DataFrame with ``RESULT_COLUMNS`` (plus ``query``, the query number, for a
        batch), ordered by query then rank. The arguments are a ``request.SearchRequest``'s
        (``SearchRequest.run`` passes them); ``nprobe`` None scans ``limits.default_nprobe``
        cells. With a scope or taxon filter, the cells that hold
        in-scope records are scanned nearest first until at least ``nprobe`` of them and
        ``top_n`` in-scope records have been covered, so a page is full whenever the scope holds
        ``top_n`` records; ``cells_scanned`` says how many cells each query scanned.
        ``df.attrs["timings"]`` has seconds per step.

        With ``fold``, copies of one image (``folding``) are folded into the best-ranked one,
        which gets ``copies`` (how many it stands for), and the page is refilled to ``top_n``
        distinct images; ``df.attrs["copies"]`` maps a hit's id to its folded copies' records.

        ``exact``: None (the default) re-ranks a larger pool of candidates with the full vectors
        whenever the atlas has them (``fullvectors``, ``rerank``), so order and similarity are
        exact; False ranks by the PQ codes alone; True insists on full vectors. The ``exact``
        column says which hits were scored with their full vector; ``df.attrs["exact"]`` names
        the vectors used (None for a PQ-only search).
        """
        batch = np.asarray(vectors).ndim == 2
        queries = self.check_vectors(vectors, model)
        req = SearchRequest.for_nlist(self.nlist, top_n=top_n, nprobe=nprobe, scope=scope, taxon=taxon, fold=bool(fold), exact=exact)
        top_n, nprobe, scope, taxon, fold = req.top_n, req.nprobe, Scope(req.scope), req.taxon or None, req.fold
        full = self.exactness.for_search(req.exact)
        t0 = time.perf_counter()
        bitmap, key = self._scope(scope, taxon)
        t1 = time.perf_counter()
        nprobe = min(int(nprobe), self.nlist)
        if fold:
            hits, scanned, t2 = searching.search_folded(self, queries, top_n, nprobe, bitmap, key, batch, full)
        else:
            dist, ids, known, scanned, _cells = searching.candidates(self, queries, top_n, nprobe, bitmap, key, full)
            t2 = time.perf_counter()
            hits = searching.hits(self, dist, ids, batch, scanned, known)
        t3 = time.perf_counter()
        hits.attrs["timings"] = {"scope": t1 - t0, "search": t2 - t1, "metadata": t3 - t2}
        hits.attrs["metric"] = self.metric
        hits.attrs["cells_scanned"] = scanned.tolist()
        hits.attrs["exact"] = None if full is None else full.source
        return hits

    @property
    def full_vectors(self) -> FullVectors | None:
        """The atlas's full vectors, or None: searches then rank by PQ codes alone (``exactness``)."""
        return self.exactness.full_vectors

    @property
    def pool_factor(self) -> int:
        """Candidates re-ranked per result asked for (``exactness.Exactness.pool_factor``)."""
        return self.exactness.pool_factor

    @property
    def same_image(self) -> float:
        """The cosine at which two hits' vectors are taken for one image (``folding``): raw
        vectors are compared when the atlas keeps them, decoded PQ codes otherwise."""
        return folding.SAME_IMAGE if self.full_vectors is not None else folding.SAME_IMAGE_DECODED

    def hit_vectors(self, ids: np.ndarray, query: np.ndarray, cells) -> np.ndarray:
        """The vectors of one query's hits: full ones where the atlas has them (its
        ``vectors.npy`` or prepared), else decoded from the index's codes in the cells the query
        scanned (``cells``: their numbers, or how many of the query's nearest cells were scanned)."""
        ids = np.asarray(ids, dtype=np.int64)
        out, has = (self.full_vectors.get(ids) if self.full_vectors is not None
                    else (np.zeros((len(ids), self.dim), np.float32), np.zeros(len(ids), bool)))
        if has.all():
            return out
        rest = ids[~has]
        if self.nlist <= 1:
            out[~has] = self.index.reconstruct_batch(rest)
            return out
        if np.isscalar(cells) or np.ndim(cells) == 0:
            cells = ivf.probe(self.index, query, int(cells), int(cells)).cells
        out[~has] = ivf.decode(self.index, rest, cells)
        return out

    def stored_vector(self, record_id: int) -> np.ndarray | None:
        """A record's full vector (unit length) if the atlas has one for it (``vectors.npy`` of
        atlases built here, or prepared from published embeddings), else None (the published
        atlas alone keeps only PQ codes)."""
        if not 0 <= int(record_id) < self.count:
            raise ValueError(f"record {record_id} is not in this atlas (ids run from 0 to {self.count - 1})")
        full = self.full_vectors
        if full is None:
            return None
        rows, has = full.get([int(record_id)])
        return rows[0] if has[0] else None

    def lookup(self, ids) -> pd.DataFrame:
        """Metadata for any number of ids (in chunks of 1,000), in the given order."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        return hit_frame({"id": ids, **self.lookup_values(ids)})

    def lookup_values(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        """The hit columns of any number of ids as object arrays, in the given order."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if len(ids) <= MAX_LOOKUP:
            return self.metadata.values(ids)
        unique, inverse = np.unique(ids, return_inverse=True)
        chunks = [self.metadata.values(unique[i:i + MAX_LOOKUP]) for i in range(0, len(unique), MAX_LOOKUP)]
        return {c: np.concatenate([ch[c] for ch in chunks])[inverse] for c in chunks[0]}

    def taxon_values(self, rank: Rank | str, prefix: str = "", limit: int = 50) -> list[str]:
        """Names present at a rank, most frequent first (for completion)."""
        return self.metadata.taxon_values(Rank.parse(rank), prefix, limit)



def _fingerprint(root: Path) -> str:
    h = hashlib.sha1()
    for rel in (INDEX_FILE, METADATA_FILE):
        st = (root / rel).stat()
        h.update(f"{(root / rel).resolve()}|{st.st_size}|{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]
