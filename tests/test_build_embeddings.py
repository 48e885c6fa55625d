"""An atlas from published-format embeddings (1024-d, BioCLIP 2.5's width) on a real Dask
LocalCluster, joined by uuid to a published-layout atlas; resumable; then exact with
``prepare --embeddings`` from the same files."""

from __future__ import annotations

import shutil

import duckdb
import numpy as np
import pytest
from helpers.atlases import build_synthetic_atlas

from bioclip_nb import Atlas
from bioclip_nb.builder.fromembeddings import build_from_embeddings
from bioclip_nb.core.embeddings import prepare_embeddings
from bioclip_nb.layout import BIOCLIP25, METADATA_FILE
from bioclip_nb.testing.embeddingfiles import write_published_embeddings

N, EXTRA = 6_000, 100


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A lite-style atlas (BioCLIP 2, published layout) and BioCLIP 2.5-shaped parquet beside it:
    1% of the atlas's images have no row, 100 rows are images the atlas does not hold."""
    root = tmp_path_factory.mktemp("embeddings")
    lite = build_synthetic_atlas(root / "lite", N, "IVF32,PQ16", published_layout=True)
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(40, 1024)).astype(np.float32)
    wide = centres[rng.integers(0, 40, N)] + 0.3 * rng.normal(size=(N, 1024)).astype(np.float32)
    written = write_published_embeddings(lite.path, wide, root / "parquet", files=4, extra=EXTRA,
                                         vector_column="emb_bioclip25")
    return lite, written, root


def _urls(path) -> dict[str, str | None]:
    con = duckdb.connect(str(path / METADATA_FILE), read_only=True)
    rows = con.execute("SELECT m.uuid::VARCHAR, p.prefix || m.identifier_suffix FROM metadata m "
                       "LEFT JOIN url_prefixes p ON p.prefix_id = m.url_prefix_id").fetchall()
    con.close()
    return dict(rows)


def test_built_on_dask_joined_by_uuid_and_resumed(published, tmp_path):
    lite, written, root = published
    # a metadata file that breaks the last stage: the chunks are encoded, then the write fails
    broken = tmp_path / "broken.duckdb"
    shutil.copy(lite.path / METADATA_FILE, broken)
    con = duckdb.connect(str(broken))
    con.execute("DROP TABLE url_prefixes")
    con.close()
    out = tmp_path / "bioclip25"
    with pytest.raises(duckdb.CatalogException, match="url_prefixes"):
        build_from_embeddings(root / "parquet", broken, BIOCLIP25, out, workers=2, progress=False)
    assert len(list((tmp_path / ".bioclip25.partial" / "codes").glob("*.npz"))) == 4 and not out.exists()
    built = build_from_embeddings(root / "parquet", lite.path, BIOCLIP25, out, workers=2, progress=False)
    assert (built.chunks_computed, built.chunks_reused) == (0, 4) and "train" not in built.seconds   # resumed
    assert built.count == written.rows == N - len(written.missing_ids) + EXTRA
    assert built.without_metadata == EXTRA and built.unusable_rows == 0
    with Atlas.open(out) as atlas:
        assert (atlas.model, atlas.dim, atlas.count) == (BIOCLIP25, 1024, built.count)
        assert atlas.info()["model_name"] == "BioCLIP 2.5 Huge"
        ids = np.arange(0, atlas.count, 97)
        rows = atlas.lookup(ids)
    # every row that the lite atlas holds has its URL, by uuid; the extra rows keep their taxonomy
    theirs, ours = _urls(lite.path), _urls(out)
    shared = set(theirs) & set(ours)
    assert len(shared) == N - len(written.missing_ids)
    assert all(ours[u] == theirs[u] for u in shared)
    extra = rows[rows["kingdom"] == "ExtraKingdom"]
    assert len(extra) and extra["url"].isna().all()


def test_the_built_atlas_is_exact_with_the_same_files(published, tmp_path, monkeypatch):
    """Here the workers assign vectors to cells through an HNSW graph over the centroids, as a
    build with many cells does; the atlas then ranks exactly once prepared from the same files."""
    from bioclip_nb.builder import fromembeddings
    monkeypatch.setattr(fromembeddings, "HNSW_ASSIGN_CELLS", 1)
    lite, _, root = published
    out = tmp_path / "bioclip25"
    build_from_embeddings(root / "parquet", lite.path / METADATA_FILE, BIOCLIP25, out, workers=2, progress=False)
    import pyarrow.parquet as pq
    table = pq.read_table(sorted((root / "parquet").glob("*.parquet"))[1], columns=["uuid", "emb_bioclip25"])
    vectors = np.stack(table.column("emb_bioclip25").to_numpy(zero_copy_only=False)[:20]).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with Atlas.open(out) as atlas:
        report = prepare_embeddings(atlas, root / "parquet", atlas.cache_dir, "float16", progress=False)
        assert report["records_without_vector"] == 0
        atlas.exactness.reload()
        hits = atlas.search(vectors, top_n=1, nprobe=atlas.nlist)
        pq_only = atlas.search(vectors, top_n=1, nprobe=atlas.nlist, exact=False)
    assert hits["exact"].all() and (hits["similarity"] > 0.999).all()
    assert (pq_only["uuid"].astype(str) == hits["uuid"].astype(str)).mean() >= 0.8     # the codes were assigned well
    assert hits["uuid"].astype(str).tolist() == table.column("uuid").to_pylist()[:20]


def test_the_command(published, tmp_path, capsys):
    from bioclip_nb.commands.cli import main
    lite, written, root = published
    assert main(["build", "--embeddings", str(root / "parquet"), "--out", str(tmp_path / "a")]) == 2
    assert "--metadata" in capsys.readouterr().err
    assert main(["build", "--embeddings", str(root / "parquet"), "--metadata", str(lite.path), "--model", BIOCLIP25,
                 "--out", str(tmp_path / "a"), "--workers", "1", "--factory", "IVF16,PQ32"]) == 0
    import json
    captured = capsys.readouterr()
    done = json.loads(captured.out)
    assert done["count"] == written.rows and done["factory"] == "IVF16,PQ32" and f"{EXTRA:,} have no row" in captured.err
    assert set(done["seconds"]) == {"sample", "train", "encode", "add", "write"}


def test_searched_in_the_dashboard_beside_the_bioclip2_atlas(published, tmp_path, tiny_bioclip, tiny_bioclip25):
    """What the issue asks for, end to end: built from the parquet, chosen in the model menu, a
    photo encoded by (tiny) BioCLIP 2.5 searches it, and the hits carry the lite atlas's URLs."""
    from helpers.pictures import encode, photo

    from bioclip_nb.config import Settings
    from bioclip_nb.dashboard import Dashboard
    lite, _, root = published
    out = tmp_path / "bioclip25"
    build_from_embeddings(root / "parquet", lite.path, BIOCLIP25, out, workers=1, progress=False)
    d = Dashboard.from_settings(settings=Settings(home=tmp_path / "home", atlas=lite.path, more_atlases=(out,)),
                                device="cpu", link="")
    d.widget
    d.upload_bytes(encode(photo(seed=3), "JPEG"), "photo.jpg")
    d.search()
    d.wait(60)
    d.switcher.menu.value = 1
    d.wait(60)
    s = d.session
    assert (s.atlas.model, s.encoding.embedding.shape, str(s.atlas.path)) == (BIOCLIP25, (1024,), str(out))
    con = duckdb.connect(str(out / METADATA_FILE), read_only=True)
    uuid_of = dict(con.execute("SELECT id, uuid::VARCHAR FROM metadata").fetchall())
    con.close()
    theirs = _urls(lite.path)
    hits = s.hits
    assert len(hits) == s.request.top_n
    for record_id, url in zip(hits["id"], hits["url"]):
        assert (url if isinstance(url, str) else None) == theirs.get(uuid_of[int(record_id)])


def test_a_file_is_encoded_in_slices_alike(tmp_path, monkeypatch):
    """A worker encodes a file in slices (its memory bounded): the codes and the unusable rows
    (a null, a zero vector, a short one, in later slices) are those of one pass over the file."""
    import faiss
    import pyarrow as pa
    import pyarrow.parquet as pq

    from bioclip_nb.builder import fromembeddings
    rng = np.random.default_rng(2)
    rows = [list(v) for v in rng.normal(size=(1000, 1024)).astype(np.float16)]
    rows[150], rows[420], rows[777] = None, [0.0] * 1024, [1.0] * 7
    path = tmp_path / "part.parquet"
    pq.write_table(pa.table({"emb": pa.array(rows, type=pa.list_(pa.float16()))}), path)
    index = faiss.index_factory(1024, "IVF8,PQ16")
    index.train(rng.normal(size=(2000, 1024)).astype(np.float32))
    trained = (faiss.serialize_index(index).tobytes(), None)
    answers = []
    for rows_at_once in (1 << 20, 100):
        monkeypatch.setattr(fromembeddings, "ENCODE_ROWS", rows_at_once)
        out = tmp_path / f"codes-{rows_at_once}.npz"
        report = fromembeddings.encode_file(trained, str(path), "emb", 1024, str(out))
        with np.load(out) as z:
            answers.append((z["codes"], z["dropped"]))
        assert (report["rows"], report["usable"]) == (1000, 997) and report["peak_mb"] > 0
    (one_codes, one_dropped), (sliced_codes, sliced_dropped) = answers
    assert one_dropped.tolist() == sliced_dropped.tolist() == [150, 420, 777]
    assert np.array_equal(one_codes, sliced_codes) and len(one_codes) == 997
