"""bioclip-nb build: folders and tables of images, broken files, resume, and a real Dask cluster."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bioclip_nb import Atlas
from bioclip_nb.builder import build_atlas
from bioclip_nb.builder.sources import scan_source, taxonomy_from_folders
from bioclip_nb.commands.cli import main
from bioclip_nb.demo.art import draw, traits
from bioclip_nb.layout import PIXEL_MODEL

SPECIES = [
    ("Animalia", "Chordata", "Aves", "Passeriformes", "Paridae", "Parus", "major"),
    ("Animalia", "Chordata", "Aves", "Passeriformes", "Paridae", "Cyanistes", "caeruleus"),
    ("Fungi", "Basidiomycota", "Agaricomycetes", "Agaricales", "Amanitaceae", "Amanita", "muscaria"),
]
RANKS = ("kingdom", "phylum", "class", "order", "family", "genus", "species")


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """A collection as a museum might keep it: Family/Genus species/*.jpg, with some broken files."""
    root = tmp_path_factory.mktemp("collection")
    for k, sp in enumerate(SPECIES):
        folder = root / sp[4] / f"{sp[5]} {sp[6]}"
        folder.mkdir(parents=True)
        rng = np.random.default_rng(k)
        for j in range(8):
            draw(traits(dict(zip(RANKS, sp))), rng).save(folder / f"img{j}.jpg", quality=90)
    (root / "Paridae" / "Parus major" / "notes.jpg").write_text("field notes, not a photo")
    (root / "Paridae" / "Parus major" / "empty.png").write_bytes(b"")
    data = (root / "Amanitaceae" / "Amanita muscaria" / "img0.jpg").read_bytes()
    (root / "Amanitaceae" / "Amanita muscaria" / "cut.jpg").write_bytes(data[: len(data) // 3])
    (root / "README.txt").write_text("not an image, not listed")
    return root


@pytest.fixture(scope="module")
def built(photo_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("atlases") / "collection"
    result = build_atlas(photo_folder, out, model=PIXEL_MODEL, batch_size=5, progress=False)
    return result


def test_folder_build_is_an_atlas(built):
    assert built.count == 24 and built.skipped == 3 and built.index == "Flat"
    with Atlas.open(built.path) as atlas:
        assert atlas.model == PIXEL_MODEL and atlas.count == 24
        rows = atlas.lookup(np.arange(24))
    assert set(zip(rows["family"], rows["genus"], rows["species"])) == {
        ("Paridae", "Parus", "major"), ("Paridae", "Cyanistes", "caeruleus"), ("Amanitaceae", "Amanita", "muscaria")}
    assert rows["kingdom"].isna().all()   # not in the folder names: missing, not guessed
    assert all(u.startswith("atlas:/images/") for u in rows["url"])
    assert all((built.path / u[len("atlas:/"):]).is_file() for u in rows["url"])


def test_broken_files_are_reported_not_fatal(built):
    report = pd.read_csv(built.path / "build-report.csv")
    assert sorted(report["file"].map(lambda f: f.rsplit("/", 1)[-1])) == ["cut.jpg", "empty.png", "notes.jpg"]
    reasons = " ".join(report["reason"])
    assert "text file" in reasons and "empty" in reasons and "truncated" in reasons


def test_built_atlas_finds_its_own_images(built, photo_folder):
    from bioclip_nb.encoders import load_encoder
    from bioclip_nb.images import load_upload
    enc = load_encoder(PIXEL_MODEL)
    with Atlas.open(built.path) as atlas:
        q = enc.encode(load_upload(photo_folder / "Paridae" / "Cyanistes caeruleus" / "img3.jpg")).embedding
        hits = atlas.search(q, top_n=3, nprobe=1)
    assert hits["similarity"].iloc[0] > 0.999 and hits["genus"].iloc[0] == "Cyanistes"


def test_no_overwrite_without_force(built, photo_folder, capsys):
    with pytest.raises(FileExistsError, match="already exists; pass --force"):
        build_atlas(photo_folder, built.path, model=PIXEL_MODEL, progress=False)
    code = main(["build", str(photo_folder), "--out", str(built.path), "--model", PIXEL_MODEL])
    assert code == 1 and "--force" in capsys.readouterr().err
    assert Atlas.open(built.path).count == 24   # untouched


def test_interrupted_build_resumes(photo_folder, built, tmp_path):
    out = tmp_path / "resumed"
    seen = []

    def stop_after_two(chunk, reused):
        seen.append((chunk, reused))
        if len(seen) == 2:
            raise KeyboardInterrupt   # as if the user pressed Ctrl-C (or the job was killed)

    with pytest.raises(KeyboardInterrupt):
        build_atlas(photo_folder, out, model=PIXEL_MODEL, batch_size=5, progress=False, on_chunk=stop_after_two)
    assert not out.exists() and (tmp_path / ".resumed.partial" / "chunks").is_dir()   # never a half atlas
    result = build_atlas(photo_folder, out, model=PIXEL_MODEL, batch_size=5, progress=False)
    assert result.chunks_reused == 2 and result.chunks_computed == 4
    np.testing.assert_array_equal(np.load(out / "vectors.npy"), np.load(built.path / "vectors.npy"))
    assert not (tmp_path / ".resumed.partial").exists()


def _interrupt_after(n: int):
    seen = []

    def stop(chunk, reused):
        seen.append(chunk)
        if len(seen) == n:
            raise KeyboardInterrupt
    return stop


def _rows_of(path):
    """``{image file name: vector}`` of an atlas, checking ids are 0..n-1 without duplicates."""
    with Atlas.open(path) as atlas:
        ids = atlas.metadata._cursor().execute("SELECT id FROM metadata ORDER BY id").fetchnumpy()["id"]
        assert ids.tolist() == list(range(atlas.count))
    report = pd.read_csv(path / "build-report.csv")
    vectors = np.load(path / "vectors.npy")
    return vectors, len(report)


@pytest.mark.parametrize("change", ["batch size", "added files", "removed files", "model"])
def test_a_changed_plan_resumes_into_exactly_the_right_rows(photo_folder, tmp_path, change, tiny_bioclip):
    import shutil

    from bioclip_nb.layout import BIOCLIP2
    src = tmp_path / "src"
    shutil.copytree(photo_folder, src)
    out = tmp_path / "atlas"
    first_model = BIOCLIP2 if change == "model" else PIXEL_MODEL
    with pytest.raises(KeyboardInterrupt):
        build_atlas(src, out, model=first_model, batch_size=5, progress=False, on_chunk=_interrupt_after(2))
    batch = 10 if change == "batch size" else 5
    if change == "added files":
        for j in range(3):    # sorted among the others: every later row shifts
            draw(traits(dict(zip(RANKS, SPECIES[0]))), np.random.default_rng(50 + j)).save(
                src / "Amanitaceae" / f"aaa{j}.jpg", quality=90)
    if change == "removed files":
        for f in sorted((src / "Amanitaceae" / "Amanita muscaria").glob("img*.jpg"))[:2]:
            f.unlink()
    resumed = build_atlas(src, out, model=PIXEL_MODEL, batch_size=batch, progress=False)
    fresh = build_atlas(src, tmp_path / "fresh", model=PIXEL_MODEL, batch_size=batch, progress=False)
    assert resumed.count == fresh.count and resumed.skipped == fresh.skipped == 3
    expected = {"batch size": 24, "added files": 27, "removed files": 22, "model": 24}[change]
    assert resumed.count == expected
    got, failures = _rows_of(out)
    want, _ = _rows_of(fresh.path)
    np.testing.assert_array_equal(got, want)
    assert failures == 3
    assert sorted(p.name for p in (out / "images").glob("*.jpg")) == sorted(p.name for p in (fresh.path / "images").glob("*.jpg"))


def test_force_replaces(built, photo_folder, tmp_path):
    import shutil
    out = tmp_path / "again"
    shutil.copytree(built.path, out)
    (out / "stale.txt").write_text("old")
    build_atlas(photo_folder, out, model=PIXEL_MODEL, force=True, progress=False, batch_size=50)
    assert not (out / "stale.txt").exists() and Atlas.open(out).count == 24


def test_dask_local_cluster_build_matches_local(photo_folder, built, tmp_path):
    from dask.distributed import LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        result = build_atlas(photo_folder, tmp_path / "dask", model=PIXEL_MODEL, batch_size=5, progress=False,
                             scheduler=cluster.scheduler_address)
    assert result.count == built.count and result.skipped == built.skipped
    np.testing.assert_array_equal(np.load(result.path / "vectors.npy"), np.load(built.path / "vectors.npy"))
    with Atlas.open(result.path) as a, Atlas.open(built.path) as b:
        pd.testing.assert_frame_equal(a.lookup(np.arange(24)).drop(columns="url"), b.lookup(np.arange(24)).drop(columns="url"))
        q = np.load(built.path / "vectors.npy")[:5]
        assert a.search(q, top_n=5)["id"].tolist() == b.search(q, top_n=5)["id"].tolist()
    assert json.loads((result.path / "atlas.json").read_text())["count"] == 24


def test_table_of_urls_and_metadata_csv(tmp_path):
    from bioclip_nb.testing.imagehost import ImageHost
    with ImageHost() as host:
        table = pd.DataFrame({
            "url": [host.url(f"/img/{i}.jpg") for i in range(6)] + [host.url("/404/x.jpg")],
            "genus": ["Vulpes"] * 3 + ["Canis"] * 4, "species": ["vulpes"] * 3 + ["lupus"] * 4,
            "common_name": ["Red fox"] * 3 + ["Gray wolf"] * 4, "source_dataset": "gbif", "source_id": [str(i) for i in range(7)],
        })
        table.to_csv(tmp_path / "list.csv", index=False)
        result = build_atlas(tmp_path / "list.csv", tmp_path / "urls", model=PIXEL_MODEL, progress=False)
    assert result.count == 6 and result.skipped == 1
    with Atlas.open(result.path) as atlas:
        rows = atlas.lookup(np.arange(6))
    assert rows["url"].str.startswith("http://127.0.0.1").all()   # the record keeps its own URL
    assert rows["occurrence_url"].iloc[0] == "https://www.gbif.org/occurrence/0"
    assert rows["common_name"].tolist()[:3] == ["Red fox"] * 3


def test_metadata_csv_beside_images(photo_folder, tmp_path):
    import shutil
    src = tmp_path / "flat"
    src.mkdir()
    files = sorted(photo_folder.rglob("img[0-2].jpg"))
    for i, f in enumerate(files):
        shutil.copyfile(f, src / f"p{i}.jpg")
    pd.DataFrame({"file": [f"p{i}.jpg" for i in range(len(files))], "kingdom": "Animalia",
                  "genus": [f.parent.name.split()[0] for f in files]}).to_csv(src / "metadata.csv", index=False)
    items = scan_source(src)
    assert len(items) == len(files) and (items["kingdom"] == "Animalia").all()


@pytest.mark.parametrize("parts, expected", [
    (("Animalia", "Chordata", "Aves", "Passeriformes", "Paridae", "Parus", "major"),
     {"kingdom": "Animalia", "genus": "Parus", "species": "major"}),
    (("Paridae", "Parus major"), {"family": "Paridae", "genus": "Parus", "species": "major", "kingdom": None}),
    (("Aves", "Passeriformes", "Paridae", "Parus_major"), {"class": "Aves", "order": "Passeriformes", "species": "major"}),
    (("Fungi",), {"kingdom": "Fungi", "genus": None}),
    ((), {"kingdom": None}),
])
def test_taxonomy_from_folder_names(parts, expected):
    tax = taxonomy_from_folders(parts)
    assert {k: tax[k] for k in expected} == expected


def test_bad_sources(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="build source not found"):
        scan_source(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files found"):
        scan_source(tmp_path / "empty")
    pd.DataFrame({"name": ["a"]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(ValueError, match="needs a 'file' column"):
        scan_source(tmp_path / "t.csv")
    assert main(["build", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 1


def test_url_builds_share_one_polite_fetcher(tmp_path):
    """Every URL in a build goes through one fetcher, so a host's rate policy holds across images."""
    from bioclip_nb.builder import pipeline as build
    from bioclip_nb.testing.imagehost import ImageHost
    with ImageHost() as host:
        urls = [host.url(f"/img/{i}.jpg") for i in range(3)]
        build.embed_chunk(PIXEL_MODEL, urls, [0, 1, 2], None)
        fetcher = build._fetcher()
        assert fetcher.usage()["127.0.0.1"]["requests"] >= 3
        assert build._fetcher() is fetcher
