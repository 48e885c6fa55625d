"""One interface, two implementations: the same behaviours run in this process and through a
real ``bioclip-nb serve`` on the same atlas, with and without raw vectors, and must agree. The
third pairing is a BioCLIP 2.5 atlas served second, beside a BioCLIP 2 atlas, by one server
(``/v1/atlases/KEY``): its encodings (1024-d) go through that server's second model.

The local faces are ``Atlas``, the tiny BioCLIP 2 (real model code, offline cache),
``ImageFetcher`` and ``LocalFigures``; the remote ones come from ``bioclip_nb.connect``. Images
live on a real HTTP host on 127.0.0.1 and inside the atlas.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.dashatlas import build_dash_atlas, query_file
from helpers.servers import server_process
from PIL import Image

from bioclip_nb import Atlas
from bioclip_nb.commands.prepare import prepare_labels
from bioclip_nb.config import Settings
from bioclip_nb.core.locate import atlas_keys
from bioclip_nb.encoders import load_encoder
from bioclip_nb.encoders.within import Within
from bioclip_nb.faces import AtlasLike, EncoderLike, FetcherLike, FiguresLike
from bioclip_nb.images.fetch import ImageFetcher
from bioclip_nb.insight.figures import LocalFigures
from bioclip_nb.layout import BIOCLIP2, BIOCLIP25, VECTORS_FILE
from bioclip_nb.request import SearchRequest
from bioclip_nb.service.client import connect

KINDS = ("raw vectors", "PQ codes only", "BioCLIP 2.5 beside BioCLIP 2")


@dataclass
class Faces:
    atlas: AtlasLike
    encoder: EncoderLike
    fetcher: FetcherLike
    figures: FiguresLike
    home: object = None


@pytest.fixture(scope="module")
def atlases(tmp_path_factory, host, tiny_bioclip, tiny_bioclip25):
    root = tmp_path_factory.mktemp("conformance")
    with_vectors = build_dash_atlas(root, host.base, BIOCLIP2)
    without = root / "no-vectors"
    shutil.copytree(with_vectors, without)
    (without / VECTORS_FILE).unlink()
    newer = build_dash_atlas(root, host.base, BIOCLIP25)
    prepare_labels(BIOCLIP25, root / "derived")           # BioCLIP 2.5's Tree of Life labels, for both sides
    return {KINDS[0]: with_vectors, KINDS[1]: without, KINDS[2]: newer}, root


@pytest.fixture(scope="module", params=KINDS)
def pair(request, atlases, tmp_path_factory):
    """``(local faces, server faces)`` over one atlas."""
    paths, root = atlases
    path = paths[request.param]
    home = tmp_path_factory.mktemp("conf-home")
    second = request.param == KINDS[2]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BIOCLIP_NB_DERIVED_DIR", str(root / "derived"))
        atlas = Atlas.open(path, settings=Settings(home=home / "local"))
        local = Faces(atlas, load_encoder(atlas.model, device="cpu"), ImageFetcher.isolated(atlas_root=path),
                      LocalFigures(atlas), home / "local")
        served = (paths[KINDS[0]], home / "server", "--atlas", str(path)) if second else (path, home / "server")
        with server_process(*served) as (_proc, record):
            conn = connect(record.url, record.token, atlas=atlas_keys([paths[KINDS[0]], path])[1] if second else None)
            remote = Faces(conn.atlas, conn.encoder, conn.fetcher, conn.figures, home / "server")
            yield request.param, local, remote
            conn.close()
        local.fetcher.close()
        atlas.close()


def _same_hits(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert a["id"].tolist() == b["id"].tolist()
    assert a["exact"].tolist() == b["exact"].tolist()
    np.testing.assert_allclose(a["similarity"], b["similarity"], atol=1e-6)
    for col in ("genus", "species", "url", "source_id"):
        assert a[col].tolist() == b[col].tolist(), col


def test_both_implement_every_face(pair):
    _, local, remote = pair
    for faces in (local, remote):
        assert isinstance(faces.atlas, AtlasLike) and isinstance(faces.fetcher, FetcherLike)
        assert isinstance(faces.figures, FiguresLike) and isinstance(faces.encoder, EncoderLike)
        assert (faces.atlas.model, faces.atlas.count, faces.atlas.dim) == (local.atlas.model, local.atlas.count,
                                                                         local.atlas.dim)


def test_search_with_scope_taxon_fold_and_exactness(pair, atlases):
    kind, local, remote = pair
    q = local.encoder.encode(Image.open(query_file(atlases[1], "Vulpes"))).embedding
    for kwargs in ({}, {"scope": "url"}, {"taxon": {"family": "Canidae"}}, {"fold": True}, {"exact": False},
                   {"top_n": 7, "nprobe": 2}):
        a, b = local.atlas.search(q, **kwargs), remote.atlas.search(q, **kwargs)
        _same_hits(a, b)
        assert a["exact"].all() == (kind != KINDS[1] and kwargs.get("exact") is not False)


def test_one_request_runs_alike_and_is_refused_alike(published_atlas, tmp_path):
    """A ``SearchRequest`` searches either face the same way, and a request outside the legal
    ranges (the atlas's own depth included) is refused by both with the same words."""
    q = published_atlas.vectors[11]
    with Atlas.open(published_atlas.path, settings=Settings(home=tmp_path / "local")) as local, \
            server_process(published_atlas.path, tmp_path / "server") as (_proc, record):
        remote = connect(record.url, record.token).atlas
        request = SearchRequest(top_n=6, scope="url", fold=True)
        _same_hits(request.run(local, q), request.run(remote, q))
        for bad in ({"nprobe": local.nlist + 1}, {"nprobe": 0}, {"top_n": 1001}, {"scope": "everywhere"},
                    {"taxon": {"tribe": "Vulpini"}}):
            messages = []
            for atlas in (local, remote):
                with pytest.raises(ValueError) as caught:
                    atlas.search(q, **bad)
                messages.append(str(caught.value))
            assert messages[0] == messages[1], bad


def test_lookups_and_stored_vectors(pair):
    kind, local, remote = pair
    ids = [5, 0, 17, 5]
    pd.testing.assert_frame_equal(local.atlas.lookup(ids), remote.atlas.lookup(ids), check_dtype=False)
    a, b = local.atlas.stored_vector(3), remote.atlas.stored_vector(3)
    if kind != KINDS[1]:
        np.testing.assert_allclose(a, b, atol=1e-6)
    else:
        assert a is None and b is None
    for faces in (local, remote):
        with pytest.raises((ValueError, LookupError), match="not in this atlas"):
            faces.atlas.stored_vector(local.atlas.count + 1)


def test_record_images_arrive_the_same(pair):
    _, local, remote = pair
    rows = local.atlas.lookup(list(range(12)))
    for record_id, url in zip(rows["id"], rows["url"]):
        a = local.fetcher.fetch(url, key=int(record_id))
        b = remote.fetcher.fetch(url, key=int(record_id))
        assert a.status is b.status, (record_id, url, a.message, b.message)
        assert a.size == b.size


def test_photo_and_text_encoding_and_restricted_prediction(pair, atlases):
    _, local, remote = pair
    photo = Image.open(query_file(atlases[1], "Vulpes")).convert("RGB")
    a, b = local.encoder.encode(photo), remote.encoder.encode(photo)
    np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-5)
    assert [p.name for p in a.predict("species", 3)] == [p.name for p in b.predict("species", 3)]
    np.testing.assert_allclose(local.encoder.encode_text("red fox"), remote.encoder.encode_text("red fox"), atol=1e-5)
    np.testing.assert_allclose(local.encoder.embed([photo]), remote.encoder.embed([photo]), atol=1e-5)
    within = Within.parse("genus=Vulpes")
    pa, pb = local.encoder.predict(a.embedding, within), remote.encoder.predict(a.embedding, within)
    assert {k: [p.name for p in v] for k, v in pa.items()} == {k: [p.name for p in v] for k, v in pb.items()}


def test_figures_say_the_same(pair, atlases):
    _, local, remote = pair
    q = local.encoder.encode(Image.open(query_file(atlases[1], "Vulpes"))).embedding
    hits = local.atlas.search(q, top_n=5, nprobe=1)
    if local.atlas.nlist == 1:                  # a flat index has no cells to draw: both say so alike
        messages = []
        for faces in (local, remote):
            with pytest.raises(ValueError) as caught:
                faces.figures.search(q, SearchRequest(top_n=5, nprobe=1), hits)
            messages.append(str(caught.value))
        assert messages[0] == messages[1] and "flat index" in messages[0]
        return
    a = local.figures.search(q, SearchRequest(top_n=5, nprobe=1), hits)
    b = remote.figures.search(q, SearchRequest(top_n=5, nprobe=1), hits)
    assert a.note == b.note and a.cells_png[:8] == b.cells_png[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("link", ["like=5", "like=5&scope=url&top=6", "like=9&taxon=family:Canidae&sel=9"])
def test_a_shared_like_link_gives_the_same_page(pair, link):
    """A shared ``like=`` link on a server-backed dashboard (it crashed on an atlas without raw
    vectors: the session asked the server's atlas for ``lookup``, which it did not have)."""
    from bioclip_nb.dashboard import Dashboard
    kind, local, remote = pair
    home = remote.home
    pages = []
    here = Settings(home=local.home, atlas=local.atlas.path)
    if kind == KINDS[2]:            # two atlases on both sides: the link names the second
        key = remote.atlas.client.atlas
        here = Settings(home=local.home, atlas=Path(remote.atlas.client.atlases()[0]["path"]), more_atlases=(local.atlas.path,))
        link += f"&atlas={key}"
    for settings in (here, Settings(home=home, server=remote.atlas.client.url)):
        d = Dashboard.from_settings(settings=settings, link=link, device="cpu")
        assert isinstance(d, Dashboard), getattr(d, "value", d)
        d.widget
        d.wait(120)
        assert "went wrong" not in d.session.status.message, d.session.status
        assert d.session.atlas.model == local.atlas.model and d.links.link_state().to_query().count("atlas=") == (kind == KINDS[2])
        pages.append(d.session.hits)
    _same_hits(*pages)
    if kind != KINDS[1]:                    # searched with its own vector, the record itself comes first
        assert pages[0]["id"].iloc[0] == int(link.split("&")[0].split("=")[1])


def test_every_session_action_through_either(pair, atlases):
    from bioclip_nb.dashboard.state import SearchSession
    kind, local, remote = pair
    photo = query_file(atlases[1], "Vulpes").read_bytes()
    results = []
    for faces in (local, remote):
        s = SearchSession(faces.atlas, lambda f=faces: f.encoder, faces.fetcher, figures=faces.figures)
        s.set_upload(photo, "fox.jpg")
        first = s.search()
        statuses = {int(r.key): r.status for r in s.fetch_images()}
        chosen = int(first["id"].iloc[2])
        s.select(chosen)
        s.more_like(chosen)
        second = s.search()
        s.use_record(7)
        third = s.search()
        s.set_text("red fox")
        fourth = s.search()
        results.append((first, second, third, fourth, statuses))
    for a, b in zip(results[0][:4], results[1][:4]):
        _same_hits(a, b)
    assert results[0][4] == results[1][4]
