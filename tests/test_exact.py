"""Exact answers: PQ codes find candidates, full vectors decide the order and the similarity.

Real FAISS and DuckDB atlases; published-format parquet (float16, not unit length,
taxonomically sorted, some uuids missing, some rows of images the atlas lacks) written by
``bioclip_nb.testing.embeddingfiles`` and joined by ``bioclip-nb prepare --embeddings``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from helpers.atlases import build_synthetic_atlas

from bioclip_nb import Atlas, explore
from bioclip_nb.commands.cli import main
from bioclip_nb.config import Settings
from bioclip_nb.core import rerank
from bioclip_nb.core.embeddings import EmbeddingsError, UuidMap, find_columns, uuid_keys
from bioclip_nb.core.fullvectors import RECORD_FILE
from bioclip_nb.service.protocol import hits_from_json, hits_to_json
from bioclip_nb.testing.embeddingfiles import write_published_embeddings


def queries_near(vectors: np.ndarray, n: int, seed: int = 1, noise: float = 0.6) -> np.ndarray:
    """New 'photos': atlas vectors moved by a random direction (cosine about 0.85 to them)."""
    rng = np.random.default_rng(seed)
    base = vectors[rng.choice(len(vectors), n, replace=False)]
    step = rng.standard_normal(base.shape).astype(np.float32)
    q = base + noise * step / np.linalg.norm(step, axis=1, keepdims=True)
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def brute_force(q: np.ndarray, vectors: np.ndarray, k: int, allowed: np.ndarray | None = None) -> np.ndarray:
    sims = q @ vectors.T
    if allowed is not None:
        sims[:, ~allowed] = -np.inf
    return np.argsort(-sims, axis=1)[:, :k]


def recall(hits: pd.DataFrame, truth: np.ndarray) -> float:
    return float(np.mean([len(set(hits.loc[hits["query"] == i, "id"]) & set(t)) / len(t) for i, t in enumerate(truth)]))


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """An atlas bioclip-nb built: IVF64,PQ16 over 20,000 hierarchical vectors, keeping them."""
    return build_synthetic_atlas(tmp_path_factory.mktemp("exact-own") / "atlas", 20_000, "IVF64,PQ16",
                                 published_layout=False, keep_vectors=True)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A published-layout atlas (no vectors of its own) and its embeddings as published parquet."""
    root = tmp_path_factory.mktemp("exact-published")
    built = build_synthetic_atlas(root / "atlas", 20_000, "IVF64,PQ16", published_layout=True, seed=3)
    written = write_published_embeddings(built.path, built.vectors, root / "parquet", files=3, missing=0.01, extra=40)
    return built, written, root


@pytest.fixture(scope="module")
def prepared(published, tmp_path_factory):
    """The published atlas after `bioclip-nb prepare --embeddings` into a shared directory (int8)."""
    built, written, root = published
    shared = root / "shared-int8"
    code = main(["prepare", "--atlas", str(built.path), "--derived-dir", str(shared), "--no-map",
                 "--embeddings", str(root / "parquet")])
    assert code == 0
    return Settings(home=tmp_path_factory.mktemp("user"), derived=shared), shared


def test_an_own_atlas_returns_the_exact_nearest_with_exact_similarities(own, tmp_path):
    q = queries_near(own.vectors, 60)
    truth = brute_force(q, own.vectors, 10)
    with Atlas.open(own.path, settings=Settings(home=tmp_path)) as atlas:
        pq_only = atlas.search(q, top_n=10, nprobe=64, exact=False)
        exact = atlas.search(q, top_n=10, nprobe=64)
    assert not pq_only["exact"].any() and pq_only.attrs["exact"] is None
    assert recall(pq_only, truth) < 0.8                # what 16-byte codes give, every cell scanned
    assert exact["exact"].all() and recall(exact, truth) >= 0.97
    cosine = np.einsum("ij,ij->i", q[exact["query"]], own.vectors[exact["id"]])
    assert np.abs(exact["similarity"].to_numpy() - cosine).max() < 1e-5
    assert np.allclose(exact["distance"], 2 - 2 * cosine, atol=1e-5)
    for _, page in exact.groupby("query"):           # best first, by the exact similarity
        assert (np.diff(page["similarity"].to_numpy()) <= 1e-7).all()


def test_exact_true_on_an_atlas_without_full_vectors_says_how_to_get_them(published, tmp_path):
    built, _, _ = published
    with Atlas.open(built.path, settings=Settings(home=tmp_path)) as atlas:
        assert atlas.full_vectors is None and atlas.info()["full_vectors"] is None
        hits = atlas.search(built.vectors[0], top_n=5, nprobe=8)
        assert not hits["exact"].any()
        with pytest.raises(ValueError, match="prepare --atlas DIR --embeddings"):
            atlas.search(built.vectors[0], top_n=5, nprobe=8, exact=True)


def test_prepare_joins_published_embeddings_by_uuid_and_reports_what_is_missing(published, prepared, capsys):
    built, written, root = published
    settings, shared = prepared
    with Atlas.open(built.path, settings=settings) as atlas:
        record = json.loads((shared / atlas.fingerprint / RECORD_FILE).read_text())
        info = atlas.info()["full_vectors"]
        full = atlas.full_vectors
        assert full is not None and full.precision == "int8"
        assert info["records_without_vector"] == len(written.missing_ids) == 200
        assert record["rows_not_in_atlas"] == written.extra_rows == 40 and record["complete"]
        has = full.has(np.arange(atlas.count))
        assert not has[written.missing_ids].any() and has.sum() == atlas.count - 200
        # each joined vector is the record's own (published rows are taxonomically sorted, not by id)
        sample = np.flatnonzero(has)[::997]
        got, _ = full.get(sample)
        assert (np.einsum("ij,ij->i", got, built.vectors[sample]) > 0.9999).all()


def test_a_prepared_published_atlas_ranks_exactly_and_flags_records_without_a_vector(published, prepared):
    built, written, _ = published
    settings, _ = prepared
    present = np.ones(len(built.vectors), dtype=bool)
    present[written.missing_ids] = False
    q = queries_near(built.vectors[present], 60, seed=5)
    truth = brute_force(q, built.vectors, 10, allowed=present)
    with Atlas.open(built.path, settings=settings) as atlas:
        pq_only = atlas.search(q, top_n=10, nprobe=16, exact=False)
        hits = atlas.search(q, top_n=10, nprobe=16)
        on_missing = atlas.search(built.vectors[written.missing_ids[:5]], top_n=10, nprobe=16)
    assert recall(hits, truth) >= 0.97 > recall(pq_only, truth)
    exact = hits[hits["exact"]]
    cosine = np.einsum("ij,ij->i", q[exact["query"]], built.vectors[exact["id"]])
    assert np.abs(exact["similarity"].to_numpy() - cosine).max() < 1e-3     # int8 storage
    # a record with no published vector keeps its PQ estimate and says so
    flagged = on_missing[on_missing["id"].isin(written.missing_ids)]
    assert len(flagged) and not flagged["exact"].any()
    assert on_missing.loc[~on_missing["id"].isin(written.missing_ids), "exact"].all()


def test_float16_precision_and_a_resumed_run(published, tmp_path):
    """A run stopped by an unreadable file resumes after it is mended, redoing only what is left."""
    import shutil
    built, written, root = published
    parquet = tmp_path / "parquet"
    shutil.copytree(root / "parquet", parquet)
    last = sorted(parquet.glob("*.parquet"))[-1]
    good = last.read_bytes()
    last.write_bytes(b"PAR1 this is not parquet")
    shared = tmp_path / "shared"
    args = ["prepare", "--atlas", str(built.path), "--derived-dir", str(shared), "--no-map",
            "--embeddings", str(parquet), "--precision", "float16"]
    assert main(args) == 1
    last.write_bytes(good)
    with Atlas.open(built.path, settings=Settings(home=tmp_path / "h", derived=shared)) as atlas:
        assert atlas.full_vectors is None             # incomplete: not used
    assert main(args) == 0
    with Atlas.open(built.path, settings=Settings(home=tmp_path / "h2", derived=shared)) as atlas:
        record = json.loads((shared / atlas.fingerprint / RECORD_FILE).read_text())
        assert len(record["files_done"]) == 3 and record["parquet_rows"] == written.rows
        assert atlas.full_vectors.precision == "float16"
        q = queries_near(built.vectors, 20, seed=9)
        hits = atlas.search(q, top_n=10, nprobe=16)
        exact = hits[hits["exact"]]
        cosine = np.einsum("ij,ij->i", q[exact["query"]], built.vectors[exact["id"]])
        assert np.abs(exact["similarity"].to_numpy() - cosine).max() < 2e-3


def test_scopes_taxa_and_folding_keep_working_on_top(own, tmp_path):
    q = queries_near(own.vectors, 10, seed=2)
    with Atlas.open(own.path, settings=Settings(home=tmp_path)) as atlas:
        inat = atlas.bitmap("inat")
        allowed = np.unpackbits(inat, bitorder="little")[:atlas.count].astype(bool)
        scoped = atlas.search(q, top_n=10, nprobe=64, scope="inat")
        assert scoped["exact"].all() and allowed[scoped["id"]].all()
        assert recall(scoped, brute_force(q, own.vectors, 10, allowed)) >= 0.97
        genus = own.records["genus"].iloc[0]
        in_genus = (own.records["genus"] == genus).to_numpy()
        taxon = atlas.search(own.vectors[np.flatnonzero(in_genus)[:3]], top_n=5, nprobe=4, taxon={"genus": genus})
        assert taxon["exact"].all() and in_genus[taxon["id"]].all()
        folded = atlas.search(q, top_n=10, nprobe=64, fold=True)
        assert folded["exact"].all() and (folded.groupby("query").size() == 10).all()
        assert atlas.same_image == 0.995      # folding compares full vectors


def test_folding_uses_the_prepared_vectors_of_a_published_atlas(published, prepared):
    built, written, _ = published
    settings, _ = prepared
    with Atlas.open(built.path, settings=settings) as atlas:
        assert atlas.same_image == 0.995
        ids = np.array([1, 2, int(written.missing_ids[0])])
        got = atlas.hit_vectors(ids, built.vectors[1], 64)
        assert np.einsum("ij,ij->i", got[:2], built.vectors[ids[:2]]).min() > 0.9999   # the full vectors
        assert np.isfinite(got[2]).all() and np.dot(got[2], built.vectors[ids[2]]) < 0.9999  # decoded code
        assert atlas.stored_vector(int(written.missing_ids[0])) is None
        assert np.dot(atlas.stored_vector(1), built.vectors[1]) > 0.9999        # "more like this" works


def test_the_recall_sweep_measures_pq_and_reranked_against_exact_truth(own, tmp_path):
    with Atlas.open(own.path, settings=Settings(home=tmp_path)) as atlas:
        sweep = explore.recall_sweep(atlas, queries_near(own.vectors, 30, seed=4), k=10, nprobes=[1, 4, 16, 64])
    assert sweep.attrs["truth"] == "exact search (full vectors)"
    assert (sweep["recall_reranked"] > sweep["recall"]).all()
    assert sweep["recall_reranked"].iloc[-1] >= 0.97 > sweep["recall"].iloc[-1]


def test_the_pool_is_measured_per_atlas_and_kept(own, tmp_path):
    settings = Settings(home=tmp_path)
    with Atlas.open(own.path, settings=settings) as atlas:
        found = atlas.exactness.calibrate()
        assert found["recall"][found["factor"]] >= rerank.TARGET
        assert all(r < rerank.TARGET for f, r in found["recall"].items() if f < found["factor"])
    with Atlas.open(own.path, settings=settings) as again:
        assert again.pool_factor == found["factor"]


def test_cli_json_csv_and_the_wire_carry_exact(own, tmp_path, capsys):
    np.save(tmp_path / "q.npy", queries_near(own.vectors, 1, seed=7)[0])
    base = ["search", "--atlas", str(own.path), "--vectors", str(tmp_path / "q.npy"), "--top-n", "5", "--local"]
    assert main([*base, "--format", "json"]) == 0
    search = json.loads(capsys.readouterr().out)["searches"][0]
    assert [r["exact"] for r in search["hits"]] == [True] * 5
    assert search["provenance"]["ranked_by"] == "full vectors (atlas vectors.npy)"
    assert main([*base, "--format", "csv"]) == 0
    table = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert table["exact"].all()
    assert main([*base, "--format", "table"]) == 0
    assert "5 hits (exact: re-ranked with full vectors)" in capsys.readouterr().out
    with Atlas.open(own.path, settings=Settings(home=tmp_path)) as atlas:
        hits = atlas.search(own.vectors[0], top_n=3, nprobe=4)
    back = hits_from_json(json.loads(json.dumps(hits_to_json(hits))))
    assert back["exact"].dtype == bool and back["exact"].all() and back.attrs["exact"] == hits.attrs["exact"]


def test_uuids_read_the_same_in_every_published_form():
    import uuid
    u = [uuid.UUID(int=(7 << 64) | 9), uuid.uuid4(), uuid.uuid4()]
    forms = [pa.array([str(x) for x in u]), pa.array([x.hex for x in u]), pa.array([str(x).upper() for x in u]),
             pa.array([x.bytes for x in u], type=pa.binary(16))]
    keys = [uuid_keys(f)[:2] for f in forms]
    for hi, lo in keys:
        assert hi[0] == 7 and lo[0] == 9
        assert [(int(h) << 64) | int(low) for h, low in zip(hi, lo)] == [x.int for x in u]
    with pytest.raises(EmbeddingsError, match="hex digit"):
        uuid_keys(pa.array(["zz" * 16]))


def test_uuids_whose_high_halves_collide_are_told_apart():
    m = UuidMap(np.array([5, 5, 5, 9], dtype=np.uint64), np.array([1, 2, 3, 1], dtype=np.uint64),
                np.array([10, 11, 12, 13]))
    got = m.find(np.array([5, 5, 9, 9, 4], dtype=np.uint64), np.array([3, 1, 1, 2, 1], dtype=np.uint64))
    assert got.tolist() == [12, 10, 13, -1, -1]


def test_the_vector_column_is_found_by_type_not_name():
    table = pa.table({"uuid": ["a"], "v": pa.array([[0.5] * 8], type=pa.list_(pa.float16())),
                      "other": pa.array([[1.0] * 4], type=pa.list_(pa.float32())), "genus": ["x"]})
    assert find_columns(table.schema, 8, table) == ("uuid", "v")
    with pytest.raises(EmbeddingsError, match="exactly one list-of-floats column 16 wide"):
        find_columns(table.schema, 16, table)


def test_check_says_whether_an_atlas_ranks_exactly(own, published, prepared, tmp_path):
    from bioclip_nb.commands.check import full_vectors
    built, written, _ = published
    settings, _ = prepared
    with Atlas.open(own.path, settings=Settings(home=tmp_path)) as atlas:
        line = full_vectors(atlas)
        assert line.ok and not line.warning and "re-ranked exactly" in line.found
    with Atlas.open(built.path, settings=Settings(home=tmp_path / "bare")) as atlas:
        line = full_vectors(atlas)
        assert line.warning and "prepare --atlas" in line.fix and "--embeddings" in line.fix
    with Atlas.open(built.path, settings=settings) as atlas:
        line = full_vectors(atlas)
        assert not line.warning and "200 records have no vector" in line.found


def test_downloading_the_embeddings_offline_says_what_to_do(tmp_path, capsys):
    assert main(["download", "--embeddings", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "cannot be downloaded here" in err and "bioclip-2_float16" in err


def test_the_dashboard_says_the_page_was_re_ranked_and_exports_record_it(own, tmp_path):
    from bioclip_nb.dashboard import Dashboard
    d = Dashboard.from_settings(atlas=own.path, settings=Settings(home=tmp_path))
    d.session.use_record(5)
    hits = d.session.search()
    assert hits["exact"].all() and "exact: re-ranked with full vectors" in d.session.status.message
    assert d.session.provenance().ranked_by == "full vectors (atlas vectors.npy)"
    exported = d.session.export_hits()
    assert exported["exact"].all()


@pytest.mark.parametrize("count", [1, 7, 8, 9, 1000, 12_345])
def test_coverage_is_counted_without_unpacking_the_bitmap_whole(count):
    """``covered`` counts the presence bitmap in slices (or takes prepare's record), to the bit."""
    from bioclip_nb.core.fullvectors import FullVectors
    has = np.random.default_rng(count).random(count) < 0.6
    bits = np.packbits(has, bitorder="little")
    rows = np.zeros((count, 4), np.int8)
    assert FullVectors(rows, bits, "int8", "test", Path(".")).covered() == int(has.sum())
    assert FullVectors(rows, bits, "int8", "test", Path("."), recorded_covered=5).covered() == 5


def test_a_card_claims_three_digits_only_for_an_exact_similarity():
    from bioclip_nb.dashboard.cards import card
    row = pd.Series({"id": 7, "rank": 3, "common_name": "Arctic fox", "genus": "Vulpes", "species": "lagopus",
                     "similarity": 0.91234, "exact": True})
    exact = card(row, marked=False)
    assert exact["similarity"] == "similarity 0.912" and exact["similarity_note"] == ""
    assert exact["alt"] == "#3 Arctic fox, Vulpes lagopus, similarity 0.91"
    estimated = card(row.copy().replace({True: False}), marked=False)
    assert estimated["similarity"] == "similarity ≈ 0.91" and "compressed codes" in estimated["similarity_note"]
    assert estimated["alt"] == "#3 Arctic fox, Vulpes lagopus, similarity about 0.91"


def test_a_large_read_announces_each_run_of_adjacent_pages_once(tmp_path, monkeypatch):
    import mmap
    import os

    from bioclip_nb.core import fullvectors
    from bioclip_nb.core.fullvectors import FullVectors, encode
    rng = np.random.default_rng(0)
    unit = rng.standard_normal((20_000, 768)).astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    path = tmp_path / "rows.npy"
    np.save(path, encode(unit, "int8"))
    data = np.load(path, mmap_mode="r")
    # rows 0-9 share the first pages (768 bytes each), 5000 stands alone, 5001 continues it
    rows = np.r_[np.arange(10), 5000, 5001, rng.choice(np.arange(6000, 20_000, 40), 40, replace=False)]
    calls = []
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, off, length, advice: calls.append((off, length, advice)))
    got, has = FullVectors(data, None, "int8", "test", path, prefetch=True).get(rows)
    plain, _ = FullVectors(data, None, "int8", "test", path, prefetch=False).get(rows)
    page, header = mmap.PAGESIZE, data.offset
    expected = []
    for r in np.unique(rows):
        a, b = (header + r * 768) // page, (header + (r + 1) * 768 - 1) // page
        if expected and a <= expected[-1][1] + 1:
            expected[-1][1] = max(expected[-1][1], b)
        else:
            expected.append([a, b])
    assert [(o // page, o // page + n // page - 1) for o, n, _ in calls] == [tuple(e) for e in expected]
    assert len(calls) < len(np.unique(rows)) and {c[2] for c in calls} == {os.POSIX_FADV_WILLNEED}
    assert has.all() and np.array_equal(got, plain)
    np.testing.assert_allclose(got, unit[rows], atol=0.02)
    calls.clear()
    FullVectors(data, None, "int8", "test", path, prefetch=True).get(rows[:fullvectors.PREFETCH_FROM - 1])
    assert calls == []                              # a handful of rows: no advice
    FullVectors(data, None, "int8", "test", path, prefetch=False).get(rows)
    assert calls == []                              # asked not to
    FullVectors(data, None, "int8", "test", path).get(rows)
    assert calls == []                              # by default a 15 MB file, which stays in memory, does not
    big = tmp_path / "big.npy"                      # sparse: 1 GiB of holes, no disk used
    np.lib.format.open_memmap(big, mode="w+", dtype=np.int8, shape=(fullvectors.PREFETCH_FILE_BYTES // 768 + 1, 768))
    FullVectors(np.load(big, mmap_mode="r"), None, "int8", "test", big).get(rows)
    assert len(calls) == len(expected)              # a file of 1 GiB or more does


class _RecordingMap:
    """A mapping's stand-in that records the advice given to it and reads through to it."""

    def __init__(self, mapped):
        self.mapped, self.advice = mapped, []

    def madvise(self, *args):
        self.advice.append(args)

    def __getattr__(self, name):
        return getattr(self.mapped, name)


def test_a_mapped_file_is_marked_random_access_before_its_first_read_and_scans_get_their_own(tmp_path):
    # Without MADV_RANDOM each page fault reads the disk's read-ahead window around the row
    # (8 MB on the machine measured): a re-rank's scattered reads took seconds.
    import mmap

    from bioclip_nb.core.fullvectors import FullVectors
    path = tmp_path / "rows.npy"
    np.save(path, np.arange(50 * 8, dtype=np.float32).reshape(50, 8) + 1)
    data = np.load(path, mmap_mode="r")
    recorder = data._mmap = _RecordingMap(data._mmap)
    full = FullVectors(data, None, "float32", "test", path)
    assert recorder.advice == []                    # nothing before a read
    full.get([3])
    full.get([4, 9])
    assert recorder.advice == [(mmap.MADV_RANDOM,)]     # once, whatever the size of the read
    scan = full.sequential()
    assert scan._mmap is not recorder and np.array_equal(scan, np.load(path))
    in_memory = np.ones((4, 8), np.float32)
    assert FullVectors(in_memory, None, "float32", "test", path).sequential() is in_memory


def test_cosines_are_read_from_stored_rows_as_unit_rows_would_give_them(tmp_path):
    # A re-rank scores its pool with `cosines` (no unit copies of the rows): it must agree with
    # the unit rows `get` returns, for repeated ids, ids without a vector and an all-zero row.
    from bioclip_nb.core.fullvectors import FullVectors, encode
    rng = np.random.default_rng(4)
    unit = rng.standard_normal((300, 768)).astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    stored = encode(unit, "int8")
    stored[7] = 0
    path = tmp_path / "rows.npy"
    np.save(path, stored)
    present = np.packbits(np.arange(300) % 5 != 0, bitorder="little")       # every fifth id has none
    full = FullVectors(np.load(path, mmap_mode="r"), present, "int8", "test", path)
    query = unit[11] + 0.3 * unit[12]
    query /= np.linalg.norm(query)
    ids = np.r_[11, 12, 7, 10, 11, 299, 300, 42, 12]
    cos, has = full.cosines(ids, query)
    rows, had = full.get(ids)
    assert np.array_equal(has, had) and has.tolist() == [True, True, True, False, True, True, False, True, True]
    np.testing.assert_allclose(cos, rows @ query, atol=1e-6)
    assert cos[2] == 0 and (cos[~has] == 0).all()
    np.testing.assert_allclose(cos[has], (unit[ids[has]] @ query) * (ids[has] != 7), atol=0.01)
    assert full.cosines([], query)[0].shape == (0,)
