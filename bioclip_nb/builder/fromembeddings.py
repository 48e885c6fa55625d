"""An atlas from published embeddings, on Dask: ``bioclip-nb build --embeddings PATH --metadata ATLAS``.

``imageomics/TreeOfLife-200M-Embeddings`` publishes every image's vector (``bioclip-2_float16``,
``bioclip-2.5-vith14_float16``: 933 parquet files, one row per image, keyed by ``uuid``, with
the seven ranks, sorted by taxonomy). The embeddings are computed, so an atlas of them is an
index-building job, not an image-encoding one:

1. **sample**: an equal share of random rows from every file, for training;
2. **train** IVF-PQ on the sample (``--factory``; by default ``writer.choose_index``);
3. **encode**: each file is one chunk, run on Dask workers (a ``LocalCluster`` by default, a
   real cluster with ``scheduler``): read the vectors (found by type, float16 or float32),
   normalise, and turn them into IVF list numbers and PQ codes (``sa_encode``). Each chunk is
   saved as it finishes, so an interrupted build resumes after the last saved chunk;
4. **add** the codes in file order (ids are positions: files in name order, rows in order);
5. **write** the metadata in the published layout (ENUMs, ``uuid``, ``url_prefixes``, the two
   indexes), joined by ``uuid`` to a published-layout atlas (the lite atlas) for the URL,
   source, publisher, image type and training flag. Rows with no match there keep their
   taxonomy and have no URL; the build reports how many.

Rows without a usable vector (null, wrong width, non-finite, all zero) are left out and counted.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import numpy as np
from tqdm.auto import tqdm

from ..core import index as ivf
from ..core.embeddings import EmbeddingsError, find_columns, parquet_files, vectors_of
from ..layout import FORMAT_VERSION, INDEX_FILE, MANIFEST_FILE, METADATA_FILE, RANKS, Manifest, model_spec
from .pipeline import move_into_place
from .writer import ENUM_COLUMNS, choose_index, create_indexes, create_metadata_table, train_index

#: Training rows per IVF cell (FAISS warns below 39; more buys little).
TRAIN_PER_CELL = 64
#: From this many cells, workers assign vectors to cells through an HNSW graph over the
#: centroids instead of comparing with every centroid (docs/benchmarks.md: the flat
#: assignment at 65,536 cells would make encoding 233M vectors take ~1,200 worker-hours here).
#: The atlas keeps the flat quantizer, as published.
HNSW_ASSIGN_CELLS = 4096
#: Rows a worker reads, converts and encodes at once. Whole 250,000-row files at once took a
#: worker to 9.5 GB (the float32 copies, the residuals, PQ's distance tables); on one such file
#: an encode peaked at 2.4 GB in batches of 32,768 and 1.2 GB in batches of 8,192, equally fast.
ENCODE_ROWS = 8_192


@dataclass(frozen=True)
class EmbeddingsBuild:
    """What a build from embeddings did; ``seconds`` per stage."""

    path: Path
    count: int
    files: int
    rows_read: int
    unusable_rows: int
    without_metadata: int
    chunks_computed: int
    chunks_reused: int
    model: str
    factory: str
    seconds: dict = field(default_factory=dict)
    worker_peak_mb: float | None = None        # the largest resident memory a worker reached (None: all reused)

    def to_json(self) -> dict:
        return {**asdict(self), "path": str(self.path)}


def _metadata_file(metadata: Path) -> Path:
    metadata = Path(metadata).expanduser()
    path = metadata / METADATA_FILE if metadata.is_dir() else metadata
    if not path.is_file():
        raise EmbeddingsError(f"{metadata} is neither an atlas folder with {METADATA_FILE} nor a DuckDB file")
    return path


def _layout(files: list[Path], dim: int) -> tuple[str, str, list[int]]:
    """The uuid and vector columns (from the first file) and every file's row count."""
    import pyarrow.parquet as pq
    first = pq.ParquetFile(files[0])
    sample = first.read_row_group(0) if first.num_row_groups else first.read()
    uuid, vector = find_columns(first.schema_arrow, dim, sample)
    missing = [r for r in RANKS if r not in first.schema_arrow.names]
    if missing:
        raise EmbeddingsError(f"{files[0].name} has no {', '.join(missing)} column: not published embeddings")
    return uuid, vector, [pq.ParquetFile(f).metadata.num_rows for f in files]


def training_sample(files: list[Path], column: str, dim: int, size: int, seed: int = 0) -> np.ndarray:
    """About ``size`` unit vectors, an equal share from every file (the files are sorted by
    taxonomy, so every part of the tree contributes): random rows of random row groups, as few
    groups as give the share."""
    import pyarrow.parquet as pq
    rng = np.random.default_rng(seed)
    per_file = max(1, -(-size // len(files)))
    parts = []
    for f in files:
        pf = pq.ParquetFile(f)
        got, taken = [], 0
        for group in rng.permutation(pf.num_row_groups):
            vectors, usable = vectors_of(pf.read_row_group(int(group), columns=[column]).column(column), dim)
            got.append(vectors[usable])
            taken += int(usable.sum())
            if taken >= per_file:
                break
        if taken:
            vectors = np.concatenate(got)
            parts.append(vectors[rng.choice(len(vectors), min(per_file, len(vectors)), replace=False)])
    if not parts:
        raise EmbeddingsError("no usable vector in the sampled row groups")
    return np.concatenate(parts)


def encode_file(trained: tuple[bytes, bytes | None], path: str, column: str, dim: int, out: str) -> dict:
    """One chunk (a Dask task): a file's vectors as IVF list numbers and PQ codes, saved to
    ``out`` with the rows that had no usable vector. ``trained``: the serialised index and,
    for many cells, an HNSW graph over its centroids to assign vectors with. The file is read,
    converted and encoded :data:`ENCODE_ROWS` rows at a time, so a worker holds one row group
    and one batch, not the whole file in float32 several times over."""
    import faiss
    import pyarrow.parquet as pq

    from ..core.quantizer import swap_in
    index = faiss.deserialize_index(np.frombuffer(trained[0], dtype=np.uint8))
    if trained[1] is not None:
        hnsw = faiss.deserialize_index(np.frombuffer(trained[1], dtype=np.uint8))
        swap_in(index, hnsw)
    codes, dropped, rows = [], [], 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=ENCODE_ROWS, columns=[column]):
        vectors, usable = vectors_of(batch.column(0), dim)
        codes.append(index.sa_encode(np.ascontiguousarray(vectors[usable])))
        dropped.append(np.flatnonzero(~usable).astype(np.int64) + rows)
        rows += batch.num_rows
    tmp = Path(out).with_suffix(".partial.npz")
    with open(tmp, "wb") as fh:
        np.savez(fh, codes=np.concatenate(codes) if codes else np.zeros((0, index.sa_code_size()), np.uint8),
                 dropped=np.concatenate(dropped) if dropped else np.zeros(0, np.int64))
    tmp.replace(out)
    return {"rows": rows, "usable": rows - sum(len(d) for d in dropped), "peak_mb": peak_memory_mb()}


def peak_memory_mb() -> float:
    """This process's largest resident memory so far, in MB: Linux's ``VmHWM`` (``ru_maxrss``
    would carry over the peak of the process that started a Dask worker), else ``ru_maxrss``."""
    import resource
    import sys
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _run(tasks: list[tuple[int, tuple]], scheduler: str | None, workers: int | None,
         on_done: Callable[[int, dict], None]) -> None:
    """Run ``encode_file`` over ``tasks`` on Dask: a local cluster, or the one at ``scheduler``."""
    if not tasks:
        return
    from dask.distributed import Client, LocalCluster, as_completed
    cluster = None
    if scheduler in (None, "", "local"):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        shared = client.scatter([tasks[0][1][0]], broadcast=True)[0]    # the trained index, sent once per worker
        futures = {client.submit(encode_file, shared, *args[1:], pure=False): i for i, args in tasks}
        for fut in as_completed(futures):
            on_done(futures[fut], fut.result())
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def build_from_embeddings(source: str | Path, metadata: str | Path, model: str, out: str | Path,
                          scheduler: str | None = None, workers: int | None = None, factory: str | None = None,
                          force: bool = False, progress: bool = True, seed: int = 0) -> EmbeddingsBuild:
    """Build an atlas at ``out`` from the published embedding parquet files under ``source``,
    with URLs and provenance joined by uuid from ``metadata`` (an atlas folder or its DuckDB file).

    Resumable: work happens in ``.<name>.partial`` beside ``out`` (the trained index, then one
    file of codes per parquet file); a rerun reuses what is there. ``out`` is replaced only with
    ``force``."""
    spec = model_spec(model)
    if spec is None:
        raise ValueError(f"unknown model {model!r}: the build needs its width (layout.MODELS)")
    out = Path(out).expanduser().resolve()
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists; pass force=True (--force) to replace it")
    lite = _metadata_file(Path(metadata))
    files = parquet_files(Path(source))
    work = out.with_name(f".{out.name}.partial")
    (work / "codes").mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    uuid_col, vec_col, rows = _layout(files, spec.dim)
    total = int(sum(rows))
    factory = factory or choose_index(total)[0]

    import faiss
    trained = work / "trained.index"
    t0 = time.perf_counter()
    if trained.is_file():
        index = faiss.read_index(str(trained))
    else:
        index = faiss.index_factory(spec.dim, factory, faiss.METRIC_L2)
        nlist = ivf.nlist_of(index)
        sample = training_sample(files, vec_col, spec.dim, min(total, max(TRAIN_PER_CELL * nlist, 50_000)), seed)
        seconds["sample"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        index = train_index(sample, factory)
        faiss.write_index(index, str(work / "trained.partial"))
        (work / "trained.partial").replace(trained)
        seconds["train"] = time.perf_counter() - t0
    assign = None
    if ivf.nlist_of(index) >= HNSW_ASSIGN_CELLS:
        from ..core.quantizer import hnsw_over_centroids
        assign = faiss.serialize_index(hnsw_over_centroids(index)).tobytes()
    trained_bytes = (faiss.serialize_index(index).tobytes(), assign)

    t0 = time.perf_counter()
    chunk = [work / "codes" / f"{i:05d}-{f.stem}.npz" for i, f in enumerate(files)]
    todo = [(i, (trained_bytes, str(f), vec_col, spec.dim, str(chunk[i]))) for i, f in enumerate(files) if not chunk[i].is_file()]
    bar = tqdm(total=len(files), initial=len(files) - len(todo), desc="encoding chunks", unit="file", disable=not progress)
    peaks: list[float] = []

    def done(_i: int, result: dict) -> None:
        peaks.append(result["peak_mb"])
        bar.update(1)

    _run(todo, scheduler, workers, done)
    bar.close()
    seconds["encode"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    dropped_rows: list[tuple[str, np.ndarray]] = []
    start = 0
    for f, path in zip(files, chunk):
        with np.load(path) as z:
            codes, dropped = z["codes"], z["dropped"]
        index.add_sa_codes(codes, np.arange(start, start + len(codes), dtype=np.int64))
        start += len(codes)
        if len(dropped):
            dropped_rows.append((str(f), dropped))
    (work / "faiss").mkdir(exist_ok=True)
    faiss.write_index(index, str(work / INDEX_FILE))
    seconds["add"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    (work / METADATA_FILE).parent.mkdir(parents=True, exist_ok=True)
    (work / METADATA_FILE).unlink(missing_ok=True)
    without = write_joined_metadata(work / METADATA_FILE, files, dropped_rows, uuid_col, lite)
    seconds["write"] = time.perf_counter() - t0
    count = int(index.ntotal)
    manifest = Manifest(model=model, dim=spec.dim, metric="l2", count=count, nlist=ivf.nlist_of(index),
                        format_version=FORMAT_VERSION, created=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
                        source=f"published embeddings {Path(source).expanduser().resolve()}, metadata joined by uuid "
                               f"from {lite}",
                        extra={"built_from": "embeddings", "files": len(files), "rows_without_metadata": without})
    (work / MANIFEST_FILE).write_text(manifest.to_json() + "\n", encoding="utf-8")
    shutil.rmtree(work / "codes")
    (work / "trained.index").unlink()
    move_into_place(work, out)
    return EmbeddingsBuild(out, count, len(files), total, total - count, without, len(todo), len(files) - len(todo),
                           model, factory, {k: round(v, 3) for k, v in seconds.items()},
                           round(max(peaks), 1) if peaks else None)


def write_joined_metadata(path: Path, files: list[Path], dropped: list[tuple[str, np.ndarray]],
                          uuid_col: str, lite: Path) -> int:
    """The published metadata layout for the rows of ``files`` (ids in file order, rows without a
    vector left out), joined by uuid to ``lite``; returns how many rows found no match there."""
    con = duckdb.connect(str(path))
    try:
        con.execute(f"ATTACH '{_sql(str(lite))}' AS lite (READ_ONLY)")
        con.execute("CREATE TEMP TABLE dropped (filename VARCHAR, file_row_number BIGINT)")
        for name, which in dropped:
            con.executemany("INSERT INTO dropped VALUES (?, ?)", [(name, int(r)) for r in which])
        listing = "[" + ", ".join(f"'{_sql(str(f))}'" for f in files) + "]"
        ranks = ", ".join(f'p."{r}"::VARCHAR AS "{r}"' for r in RANKS)
        con.execute(f"""
            CREATE TEMP TABLE rows AS
            SELECT (row_number() OVER (ORDER BY list_position({listing}, p.filename), p.file_row_number) - 1) AS id,
                   p."{uuid_col}"::VARCHAR AS uuid, {ranks}
            FROM read_parquet({listing}, filename = true, file_row_number = true) p
            ANTI JOIN dropped d ON d.filename = p.filename AND d.file_row_number = p.file_row_number""")
        for col in ENUM_COLUMNS:
            source = (f'SELECT DISTINCT "{col}" FROM rows' if col in RANKS else
                      f'SELECT DISTINCT "{col}"::VARCHAR FROM lite.metadata')
            con.execute(f'CREATE TYPE "{col}_enum" AS ENUM ({source} WHERE "{col}" IS NOT NULL)')
        lite_cols = ("common_name", "source_dataset", "source_id", "publisher", "img_type", "basisOfRecord")
        create_metadata_table(con)
        without = con.execute("SELECT count(*) FROM rows r ANTI JOIN lite.metadata l ON l.uuid = r.uuid::UUID").fetchone()[0]
        order = ", ".join(f'{t}."{c}"::VARCHAR NULLS LAST' for t, c in (("l", "source_dataset"), *(("r", r) for r in RANKS)))
        con.execute(f"""
            INSERT INTO metadata
            SELECT r.id, r.uuid::UUID, {", ".join(f'r."{c}"' for c in RANKS)},
                   {", ".join(f'l."{c}"::VARCHAR' for c in lite_cols)},
                   l.url_prefix_id, l.identifier_suffix, coalesce(l.has_url, false), coalesce(l.in_bioclip2_training, false)
            FROM rows r LEFT JOIN lite.metadata l ON l.uuid = r.uuid::UUID
            ORDER BY {order}, r.id""")
        con.execute("CREATE TABLE url_prefixes AS SELECT * FROM lite.url_prefixes")
        create_indexes(con)
        con.execute("DETACH lite")
        con.execute("CHECKPOINT")
        return int(without)
    finally:
        con.close()


def _sql(text: str) -> str:
    return text.replace("'", "''")


def report(build: EmbeddingsBuild) -> str:
    """The build in a sentence for the terminal."""
    return (f"built {build.path}: {build.count:,} vectors from {build.files} files ({build.factory}); "
            f"{build.without_metadata:,} have no row in the metadata atlas and so no URL; "
            f"{build.unusable_rows:,} rows had no usable vector; stages (s): {json.dumps(build.seconds)}")
