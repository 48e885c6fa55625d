"""A rehearsal of the published atlas at full scale, in the published layout.

    python -m benchmarks.scale [--records N] [--quick] [--dir DIR]

Builds once (cached in ``--dir``, resumable step by step, with progress, after checking free
disk) an atlas shaped like ``imageomics/bioclip-image-search-lite``:

* ``faiss/index.index``: ``IVF65536,PQ16``, L2, 768-d. List sizes are skewed like a real
  index (log-normal). The lists hold random PQ codes (scanning a code costs the same whatever
  its value) and a few hundred vectors encoded for real, the *planted* ones, whose queries must
  find them at rank 1.
* ``duckdb/metadata.duckdb``: the published schema (ENUM ranks and provenance columns, a UUID
  column, ``url_prefixes(prefix_id, prefix)``, ``idx_id`` and ``idx_scope``), rows sorted by
  source dataset then taxonomy, with the upstream tutorial's shares: iNaturalist 58% of rows,
  with a URL 99.99%, in BioCLIP 2's training data 88%; some rows keep a NULL prefix and the
  whole URL in the suffix. Taxonomy follows the cells (a genus lives in a few cells), and four
  genera hold about 10%, 1%, 0.1% and 0.01% of the records, for scoped-search measurements.
* ``rehearsal.json``: what was built, and how long each step took; ``planted.npy`` and
  ``planted_ids.npy``: the planted vectors and their ids.

Default N is 234,391,308 (the published count); ``--quick`` builds 3,000,000.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from .common import smoke, table

PUBLISHED_RECORDS = 234_391_308
QUICK_RECORDS = 3_000_000
SMOKE_RECORDS = 200_000
NLIST = 65_536
#: A smoke run's cells: 200,000 records in 65,536 cells would train and probe three per cell.
SMOKE_NLIST = 1_024
DIM = 768
PQ_M = 16
PLANTED = 300
CHUNK = 4_000_000
#: (source_dataset, share of rows); iNaturalist is a publisher inside GBIF.
SOURCES = (("gbif", 0.62), ("eol", 0.30), ("bioscan", 0.05), ("fathomnet", 0.03))
INAT_SHARE, URL_SHARE, TRAINING_SHARE, WHOLE_URL_SHARE = 0.58, 0.9999, 0.88, 0.0001
#: Test genera and the share of records each holds.
TEST_TAXA = {"Decimia": 0.10, "Centesia": 0.01, "Millesia": 0.001, "Myriasia": 0.0001}
N_GENERA = 20_000
PREFIXES = ("https://inaturalist-open-data.s3.amazonaws.com", "https://api.gbif.org/v1/image/cache",
            "https://content.eol.org/data/media", "https://bioscan.example.org", "https://fathomnet.org/static")


def nlist() -> int:
    """The rehearsal's cells: the published 65,536, or fewer in a smoke run."""
    return SMOKE_NLIST if smoke() else NLIST


def bytes_needed(n: int) -> int:
    """Disk the rehearsal needs: the index (codes + ids), the metadata, and DuckDB's sort and
    index-build spill space."""
    return int(n * (PQ_M + 8) + nlist() * DIM * 4 + n * 70 + n * 30)


def _say(msg: str) -> None:
    print(f"[scale] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the plan
def cell_plan(n: int, seed: int = 0) -> dict:
    """List sizes (skewed), each cell's genus, and the planted vectors' cells."""
    rng = np.random.default_rng(seed)
    cells = nlist()
    raw = rng.lognormal(0.0, 1.0, cells)
    sizes = np.floor(raw / raw.sum() * (n - PLANTED)).astype(np.int64)
    sizes[np.argsort(-raw)[: (n - PLANTED) - int(sizes.sum())]] += 1
    genus = np.zeros(cells, dtype=np.int64)
    taken = np.zeros(cells, dtype=bool)
    order = rng.permutation(cells)
    pos = 0
    for t, (_name, share) in enumerate(TEST_TAXA.items()):
        want, got = share * n, 0
        while got < want and pos < cells:
            c = order[pos]
            pos += 1
            genus[c], taken[c] = t, True
            got += sizes[c]
    rest = np.flatnonzero(~taken)
    weights = 1.0 / np.arange(1, N_GENERA + 1) ** 1.05
    genus[rest] = len(TEST_TAXA) + rng.choice(N_GENERA, size=len(rest), p=weights / weights.sum())
    return {"sizes": sizes, "genus": genus}


def genus_names() -> list[str]:
    return list(TEST_TAXA) + [f"Gen{i:05d}" for i in range(N_GENERA)]


def lineage(g: np.ndarray) -> dict[str, np.ndarray]:
    """Rank codes from genus codes: each genus sits in one family, order, class, phylum, kingdom."""
    family = g // 6
    order = family // 5
    klass = order // 5
    phylum = klass // 6
    kingdom = phylum % 5
    return {"kingdom": kingdom, "phylum": phylum, "class": klass, "order": order, "family": family, "genus": g}


RANK_NAMES = {"kingdom": ("Animalia", "Plantae", "Fungi", "Chromista", "Bacteria")}


def rank_dictionary(rank: str, codes_max: int) -> list[str]:
    if rank == "kingdom":
        return list(RANK_NAMES["kingdom"])
    if rank == "genus":
        return genus_names()
    return [f"{rank.capitalize()[:3]}{i:05d}" for i in range(codes_max + 1)]


# --------------------------------------------------------------------------- the index
def build_index(out: Path, n: int, plan: dict, seed: int = 0) -> dict:
    import faiss
    from tqdm.auto import tqdm
    rng = np.random.default_rng(seed + 1)
    cells = nlist()
    centroids = rng.normal(size=(cells, DIM)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    quantizer = faiss.IndexFlatL2(DIM)
    quantizer.add(centroids)
    index = faiss.IndexIVFPQ(quantizer, DIM, cells, PQ_M, 8)
    index.own_fields = True
    quantizer.this.disown()

    def sample(cells: np.ndarray) -> np.ndarray:
        x = centroids[cells] + rng.normal(size=(len(cells), DIM)).astype(np.float32) * (0.6 / np.sqrt(DIM))
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    t0 = time.perf_counter()
    index.train(sample(rng.integers(0, cells, 20_000)))          # the PQ codebooks (the quantizer is given)
    train_s = time.perf_counter() - t0
    sizes = plan["sizes"]
    start = 0
    t0 = time.perf_counter()
    for cell in tqdm(range(cells), desc="lists", unit="list", mininterval=5):
        s = int(sizes[cell])
        if s:
            ids = np.arange(start, start + s, dtype=np.int64)
            codes = rng.integers(0, 256, size=(s, index.code_size), dtype=np.uint8)
            index.invlists.add_entries(cell, s, faiss.swig_ptr(ids), faiss.swig_ptr(codes))
            start += s
    index.ntotal = start
    planted = sample(rng.integers(0, cells, PLANTED))
    planted_ids = np.arange(start, start + PLANTED, dtype=np.int64)
    index.add_with_ids(planted, planted_ids)
    fill_s = time.perf_counter() - t0
    assign = index.quantizer.search(planted, 1)[1][:, 0]
    t0 = time.perf_counter()
    tmp = out / "faiss" / "index.index.partial"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    faiss.write_index(index, str(tmp))
    np.save(out / "planted.npy", planted)
    np.save(out / "planted_ids.npy", planted_ids)
    np.save(out / "planted_cells.npy", assign)
    tmp.replace(out / "faiss" / "index.index")
    return {"train_s": train_s, "fill_s": fill_s, "write_s": time.perf_counter() - t0,
            "index_bytes": (out / "faiss" / "index.index").stat().st_size}


# --------------------------------------------------------------------------- the metadata
def _mix(x: np.ndarray, salt: int) -> np.ndarray:
    """A deterministic 64-bit hash of ids (splitmix64), for per-record coin flips."""
    z = x.astype(np.uint64) + np.uint64((salt * 0x9E3779B97F4A7C15) % 2**64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _share(x: np.ndarray, salt: int) -> np.ndarray:
    return (_mix(x, salt) >> np.uint64(11)).astype(np.float64) / float(2**53)


def source_of(ids: np.ndarray) -> np.ndarray:
    """Each record's source dataset code (by the shares in SOURCES)."""
    bounds = np.cumsum([s for _, s in SOURCES])
    return np.searchsorted(bounds, _share(ids, 1) * bounds[-1], side="right").clip(0, len(SOURCES) - 1).astype(np.int8)


def species_of(ids: np.ndarray) -> np.ndarray:
    return (_mix(ids, 3) % np.uint64(12)).astype(np.int8)


def flags_of(ids: np.ndarray, source: np.ndarray) -> dict[str, np.ndarray]:
    """Per-record flags: iNaturalist publisher, has a URL, in training, URL kept whole."""
    return {"inat": (source == 0) & (_share(ids, 2) < INAT_SHARE / SOURCES[0][1]),
            "has_url": _share(ids, 4) < URL_SHARE, "training": _share(ids, 5) < TRAINING_SHARE,
            "whole_url": _share(ids, 6) < WHOLE_URL_SHARE}


def build_metadata(out: Path, n: int, plan: dict, planted_cells: np.ndarray) -> dict:
    import duckdb
    import pyarrow as pa
    from tqdm.auto import tqdm
    t0 = time.perf_counter()
    cell_of = np.concatenate([np.repeat(np.arange(nlist(), dtype=np.int32), plan["sizes"]),
                              planted_cells.astype(np.int32)])
    genus = plan["genus"].astype(np.int32)[cell_of]
    del cell_of
    # Published order: source dataset, then taxonomy (genus codes are ordered like the names).
    key = np.empty(n, dtype=np.int64)
    for start in range(0, n, CHUNK):
        ids = np.arange(start, min(n, start + CHUNK), dtype=np.int64)
        key[start:start + len(ids)] = ((source_of(ids).astype(np.int64) << 40) | (genus[ids].astype(np.int64) << 8)
                                       | species_of(ids).astype(np.int64))
    order = np.argsort(key)
    del key
    sort_s = time.perf_counter() - t0
    ranks = lineage(np.arange(len(genus_names())))
    dictionaries = {r: rank_dictionary(r, int(v.max())) for r, v in ranks.items()}
    path = out / "duckdb" / "metadata.duckdb.partial"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    con.execute("SET preserve_insertion_order = true")
    enums = {r: dictionaries[r] for r in ("kingdom", "phylum", "class", "order", "family")}
    enums |= {"source_dataset": [s for s, _ in SOURCES], "publisher": ["iNaturalist.org", "Naturalis Biodiversity Center",
              "Encyclopedia of Life", "BIOSCAN", "FathomNet"], "img_type": ["Occurrence", "Image"],
              "basisOfRecord": ["HUMAN_OBSERVATION", "PRESERVED_SPECIMEN", "MACHINE_OBSERVATION"]}
    for name, values in enums.items():
        con.execute(f'CREATE TYPE "{name}_enum" AS ENUM ({", ".join(_sql(v) for v in values)})')
    con.execute("""CREATE TABLE metadata (id INTEGER, uuid UUID, kingdom kingdom_enum, phylum phylum_enum,
        "class" class_enum, "order" order_enum, family family_enum, genus VARCHAR, species VARCHAR,
        common_name VARCHAR, source_dataset source_dataset_enum, source_id VARCHAR, publisher publisher_enum,
        img_type img_type_enum, "basisOfRecord" "basisOfRecord_enum", url_prefix_id USMALLINT,
        identifier_suffix VARCHAR, has_url BOOLEAN, in_bioclip2_training BOOLEAN)""")
    species_names = [f"sp{i:02d}" for i in range(12)]
    t1 = time.perf_counter()
    for start in tqdm(range(0, n, CHUNK), desc="metadata", unit="chunk"):
        sel = order[start:start + CHUNK]
        src = source_of(sel)
        c = flags_of(sel, src)
        g = genus[sel]
        arrays = {"id": pa.array(sel.astype(np.int32))}
        for rank in ("kingdom", "phylum", "class", "order", "family", "genus"):
            arrays[rank] = pa.DictionaryArray.from_arrays(pa.array(ranks[rank][g].astype(np.int32)),
                                                          pa.array(dictionaries[rank]))
        arrays["species"] = pa.DictionaryArray.from_arrays(pa.array(species_of(sel).astype(np.int32)),
                                                           pa.array(species_names))
        publisher = np.where(c["inat"], 0, np.where(src == 0, 1, src + 1))
        prefix = np.where(c["inat"], 0, src + 1).astype(np.int32)
        arrays["source_dataset"] = pa.DictionaryArray.from_arrays(pa.array(src.astype(np.int32)), pa.array(enums["source_dataset"]))
        arrays["publisher"] = pa.DictionaryArray.from_arrays(pa.array(publisher.astype(np.int32)), pa.array(enums["publisher"]))
        arrays["prefix"] = pa.array(prefix)
        arrays["has_url"] = pa.array(c["has_url"])
        arrays["whole_url"] = pa.array(c["whole_url"])
        arrays["training"] = pa.array(c["training"])
        chunk = pa.table(arrays)
        con.register("chunk", chunk)
        con.execute("""INSERT INTO metadata SELECT id, gen_random_uuid(), kingdom::VARCHAR, phylum::VARCHAR,
            "class"::VARCHAR, "order"::VARCHAR, family::VARCHAR, genus::VARCHAR, species::VARCHAR,
            CASE WHEN id % 7 = 0 THEN genus::VARCHAR || ' ' || species::VARCHAR || ' (common)' END,
            source_dataset::VARCHAR, (hash(id) % 4000000000)::VARCHAR, publisher::VARCHAR,
            CASE WHEN source_dataset::VARCHAR = 'gbif' THEN 'Occurrence' ELSE 'Image' END,
            CASE WHEN source_dataset::VARCHAR = 'gbif' THEN 'HUMAN_OBSERVATION' END,
            CASE WHEN has_url AND NOT whole_url THEN prefix END,
            CASE WHEN NOT has_url THEN NULL
                 WHEN whole_url THEN 'https://images.example.org/whole/' || id::VARCHAR || '.jpg'
                 ELSE '/photos/' || (hash(id + 1) % 400000000)::VARCHAR || '/original.jpg' END,
            has_url, training FROM chunk""")
        con.unregister("chunk")
    insert_s = time.perf_counter() - t1
    con.execute("CREATE TABLE url_prefixes (prefix_id USMALLINT, prefix VARCHAR)")
    con.executemany("INSERT INTO url_prefixes VALUES (?, ?)", list(enumerate(PREFIXES)))
    t1 = time.perf_counter()
    _say("building idx_id")
    con.execute("CREATE INDEX idx_id ON metadata (id)")
    _say("building idx_scope")
    con.execute("CREATE INDEX idx_scope ON metadata (source_dataset, has_url, in_bioclip2_training)")
    con.execute("CHECKPOINT")
    index_s = time.perf_counter() - t1
    con.close()
    path.replace(out / "duckdb" / "metadata.duckdb")
    return {"sort_s": sort_s, "insert_s": insert_s, "index_s": index_s,
            "metadata_bytes": (out / "duckdb" / "metadata.duckdb").stat().st_size}


def _sql(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# --------------------------------------------------------------------------- driver
def build(out: Path, n: int, seed: int = 0) -> dict:
    """Build (or finish building) the rehearsal atlas at ``out``; returns its description."""
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "rehearsal.json"
    info = json.loads(manifest.read_text()) if manifest.is_file() else {}
    if info.get("records") not in (None, n):
        raise ValueError(f"{out} holds a rehearsal of {info['records']:,} records; use another --dir")
    if info.get("complete"):
        return info
    free = shutil.disk_usage(out).free
    need = bytes_needed(n)
    _say(f"{n:,} records need about {need / 1e9:.1f} GB of disk here ({free / 1e9:.1f} GB free)")
    if free < need:
        raise SystemExit(f"not enough disk in {out}: about {need / 1e9:.1f} GB needed, {free / 1e9:.1f} GB free")
    plan = cell_plan(n, seed)
    info.update({"records": n, "nlist": nlist(), "dim": DIM, "factory": f"IVF{nlist()},PQ{PQ_M}", "planted": PLANTED,
                 "list_sizes": {"min": int(plan["sizes"].min()), "median": int(np.median(plan["sizes"])),
                                "max": int(plan["sizes"].max())},
                 "test_taxa": dict(TEST_TAXA.items())})
    t0 = time.perf_counter()
    if not (out / "faiss" / "index.index").is_file():
        _say("building the index")
        info["index"] = build_index(out, n, plan, seed)
        manifest.write_text(json.dumps(info, indent=1))
    if not (out / "duckdb" / "metadata.duckdb").is_file():
        _say("building the metadata")
        info["metadata"] = build_metadata(out, n, plan, np.load(out / "planted_cells.npy"))
        manifest.write_text(json.dumps(info, indent=1))
    info["build_s"] = info.get("build_s", 0) + time.perf_counter() - t0
    info["complete"] = True
    manifest.write_text(json.dumps(info, indent=1))
    return info


def run(quick: bool = False, workdir: Path | None = None) -> dict:
    """The suite's entry: the rehearsal's build record (building it first if needed)."""
    n = quick_records() if quick else PUBLISHED_RECORDS
    out = (workdir / f"rehearsal-{n}") if (workdir is not None and quick) else default_dir(n)
    info = build(out, n)
    idx, meta = info.get("index", {}), info.get("metadata", {})
    rows = [["PQ codebooks trained (20,000 sample vectors)", idx.get("train_s"), "-"],
            ["inverted lists filled (random codes) and planted vectors encoded", idx.get("fill_s"), "-"],
            ["faiss/index.index written", idx.get("write_s"), f"{idx.get('index_bytes', 0) / 1e9:.2f} GB"],
            ["records sorted by source dataset, then taxonomy", meta.get("sort_s"), "-"],
            ["metadata inserted (published schema, ENUMs, UUIDs)", meta.get("insert_s"), "-"],
            ["idx_id and idx_scope built", meta.get("index_s"), f"{meta.get('metadata_bytes', 0) / 1e9:.2f} GB"],
            ["whole build", info.get("build_s"), "-"]]
    sizes = info["list_sizes"]
    md = (table(["step", "seconds", "size"], [[a, b if b is not None else "-", c] for a, b, c in rows]) +
          f"\n\n{n:,} records in {nlist():,} lists (sizes: min {sizes['min']:,}, median {sizes['median']:,}, "
          f"max {sizes['max']:,}), {PLANTED} planted vectors. The published files are about 5.8 GB and 14 GB.")
    return {"title": f"Building the rehearsal atlas: {n:,} records", "markdown": md, "build": info}


def default_dir(n: int) -> Path:
    from bioclip_nb.config import Settings
    return Settings.from_env().home / "rehearsal" / f"records-{n}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=PUBLISHED_RECORDS, help="records (default: the published 234,391,308)")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_RECORDS:,} records")
    p.add_argument("--dir", type=Path, default=None, help="where (default $BIOCLIP_NB_HOME/rehearsal/records-N)")
    args = p.parse_args(argv)
    n = QUICK_RECORDS if args.quick else args.records
    out = args.dir or default_dir(n)
    info = build(out, n)
    print(out)
    _say(json.dumps({k: v for k, v in info.items() if k != "list_sizes"}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def quick_records() -> int:
    """The records of the quick rehearsal (fewer, in fewer cells, in a smoke run)."""
    return SMOKE_RECORDS if smoke() else QUICK_RECORDS
