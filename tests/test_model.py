"""The encoders, driven through the real pybioclip and open_clip code on a tiny offline model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from bioclip import Rank as BioclipRank
from helpers.pictures import encode, photo
from helpers.tinymodel import TINY_LABELS, ZERO_COLUMN

from bioclip_nb.builder import writer
from bioclip_nb.commands.cli import main
from bioclip_nb.encoders import EncodingCache, load_encoder
from bioclip_nb.encoders.bioclip import BioClipEncoder, pick_device
from bioclip_nb.encoders.pixel import PixelEncoder
from bioclip_nb.errors import EncoderUnavailableError
from bioclip_nb.images import load_upload
from bioclip_nb.layout import BIOCLIP2, Rank


@pytest.fixture(scope="module")
def enc(tiny_bioclip):
    return load_encoder(BIOCLIP2, device="cpu")


def test_loads_under_the_real_id_offline(enc):
    assert enc.model_id == BIOCLIP2 and enc.dim == 768
    assert len(enc.labels.names) == len(TINY_LABELS)


def test_one_vision_forward_pass_per_upload(enc):
    calls = []
    handle = enc.model.visual.register_forward_hook(lambda *a: calls.append(1))
    try:
        e = enc.encode(photo(seed=3))
    finally:
        handle.remove()
    assert len(calls) == 1
    assert e.embedding.shape == (768,) and e.embedding.dtype == np.float32
    assert abs(np.linalg.norm(e.embedding) - 1) < 1e-5
    assert set(e.predictions) == set(Rank)


def test_batch_encoding_is_one_pass_per_batch(enc):
    calls = []
    handle = enc.model.visual.register_forward_hook(lambda *a: calls.append(1))
    try:
        out = enc.encode_many([photo(seed=i) for i in range(5)], batch_size=8)
    finally:
        handle.remove()
    assert len(out) == 5 and len(calls) == 1


def test_a_folder_of_photos_goes_through_in_batches(enc):
    """bioclip_nb.outputs.batch feeds the local model batches (of 4 here; its own size by
    default, 1 on a CPU); a bad file keeps its error, a repeated one is encoded once, the
    answers equal one-by-one encodes."""
    from bioclip_nb import batch
    from bioclip_nb.encoders import EncodingCache
    files = [(f"p{i}.png", encode(photo(seed=20 + i), "PNG")) for i in range(6)]
    files.insert(3, ("notes.jpg", b"just some notes, not a photo"))
    files.append(("again.png", files[0][1]))
    calls, done = [], []
    handle = enc.model.visual.register_forward_hook(lambda _m, inp, _o: calls.append(len(inp[0])))
    try:
        photos = batch.encode_photos(enc, files, cache=EncodingCache(), progress=done.append, batch_size=4)
        by_default = []
        handle.remove()
        handle = enc.model.visual.register_forward_hook(lambda _m, inp, _o: by_default.append(len(inp[0])))
        batch.encode_photos(enc, files[:3], cache=EncodingCache())
    finally:
        handle.remove()
    assert calls == [4, 2] and enc.batch_size == 1 and by_default == [1, 1, 1]
    assert done == list(range(1, 9))
    assert [p.error is None for p in photos] == [True, True, True, False, True, True, True, True]
    assert "notes.jpg" in photos[3].error
    for p, (name, data) in zip(photos, files):
        if p.error is None:
            alone = enc.encode(load_upload(data))
            assert p.name == name and abs(float(p.encoding.embedding @ alone.embedding) - 1) < 1e-5


def test_predictions_match_pybioclip_reference(enc):
    """With the zero column filtered out, pybioclip's own predict() gives the same numbers."""
    img = photo(seed=11)
    keep = [i != ZERO_COLUMN for i in range(len(TINY_LABELS))]
    clf = enc._clf
    clf.apply_filter(keep)
    try:
        ref_species = clf.predict([img], BioclipRank.SPECIES, k=5)
        ref_family = clf.predict([img], BioclipRank.FAMILY, k=3)
    finally:
        clf._subset_txt_embeddings = clf._subset_txt_names = None
    ours = enc.encode(img)
    assert [p.name for p in ours.predict("species", 5)] == [r["species"] for r in ref_species]
    np.testing.assert_allclose([p.score for p in ours.predict("species", 5)], [r["score"] for r in ref_species], rtol=1e-4)
    assert [p.name for p in ours.predict("family", 3)] == [r["family"] for r in ref_family]
    np.testing.assert_allclose([p.score for p in ours.predict("family", 3)], [r["score"] for r in ref_family], rtol=1e-4)
    assert ours.predict("species")[0].common_name == ref_species[0]["common_name"]


def test_embedding_matches_pybioclip_features(enc):
    img = photo(seed=5)
    ref = enc._clf.create_image_features([img]).cpu().numpy()[0]
    np.testing.assert_allclose(enc.encode(img).embedding, ref, atol=1e-5)


def test_prediction_never_lands_on_a_zero_column(enc, monkeypatch):
    img = photo(seed=2)
    feat = torch.from_numpy(enc.embed([img])[0])
    # every real label points away from the image, so the zero column (logit 0) would win
    hostile = -feat[:, None].repeat(1, len(TINY_LABELS)).clone()
    hostile[:, ZERO_COLUMN] = 0
    monkeypatch.setattr(enc, "_txt", hostile)
    e = enc.encode(img)
    zero_species = "{} {}".format(*TINY_LABELS[ZERO_COLUMN][0][5:7])
    assert zero_species not in [p.name for p in e.predict("species", 20)]
    assert abs(sum(p.score for p in e.predict("kingdom", 10)) - 1) < 1e-6


def test_empty_rank_is_missing_not_empty_string(enc, monkeypatch):
    img = photo(seed=4)
    feat = torch.from_numpy(enc.embed([img])[0])
    fish = [i for i, (lin, _) in enumerate(TINY_LABELS) if lin[2] == ""]
    txt = -feat[:, None].repeat(1, len(TINY_LABELS)).clone()
    txt[:, fish] = feat[:, None]
    monkeypatch.setattr(enc, "_txt", txt)
    top_class = enc.encode(img).predict("class", 1)[0]
    assert top_class.name is None and top_class.lineage == ("Animalia", "Chordata", None)
    assert top_class.score > 0.5
    top_species = enc.encode(img).predict("species", 1)[0]
    assert top_species.lineage[2] is None and top_species.name in ("Perca fluviatilis", "Cyprinus carpio")


def test_text_embedding(enc):
    from bioclip.predict import CustomLabelsClassifier
    v = enc.encode_text("Vulpes vulpes")
    assert v.shape == (768,) and abs(np.linalg.norm(v) - 1) < 1e-5
    # pybioclip's own text features for the same label (its templates, its tokenizer)
    reference = CustomLabelsClassifier(["Vulpes vulpes", "Amanita muscaria"], model_str=BIOCLIP2, device="cpu")
    ref = reference.txt_embeddings.detach().cpu().numpy()
    np.testing.assert_allclose(v, ref[:, 0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(enc.encode_text("Amanita muscaria"), ref[:, 1], rtol=1e-4, atol=1e-5)
    assert not np.allclose(v, enc.encode_text("Amanita muscaria"))
    with pytest.raises(ValueError, match="text query is empty"):
        enc.encode_text("   ")


def test_loaded_once_and_shared(enc):
    assert load_encoder(BIOCLIP2, device="cpu") is enc


def test_missing_weights_say_how_to_get_them(empty_hf_cache):
    with pytest.raises(EncoderUnavailableError, match=r"not available here.*HF_HOME"):
        BioClipEncoder.load(BIOCLIP2, device="cpu")


def test_config_without_weights_is_refused(tiny_bioclip, tmp_path, monkeypatch):
    """open_clip alone would build a randomly initialised model here; we refuse instead."""
    import huggingface_hub.constants as c
    from helpers.tinymodel import TINY_CONFIG

    from bioclip_nb.testing.hfcache import put_in_hf_cache
    put_in_hf_cache(tmp_path / "hub", "imageomics/bioclip-2", {"open_clip_config.json": json.dumps(TINY_CONFIG).encode()})
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(EncoderUnavailableError, match="no weights file was found"):
        BioClipEncoder.load(BIOCLIP2, device="cpu")


def test_unknown_model_is_refused():
    with pytest.raises(EncoderUnavailableError, match="unknown model 'resnet'"):
        load_encoder("resnet")


@pytest.mark.parametrize("cuda, mps, expected", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_device_auto_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert pick_device("auto") == expected
    assert pick_device("cpu") == "cpu"                 # a named device is taken as given


def test_encoding_cache_never_re_encodes():
    cache = EncodingCache(maxsize=2)
    pix = PixelEncoder()
    calls = []

    def encoder_for(data):
        def run():
            calls.append(1)
            from bioclip_nb.images import load_upload
            return pix.encode(load_upload(data))
        return run

    a, b, c = (encode(photo(seed=s), "PNG") for s in (1, 2, 3))
    e1 = cache.get_or_encode(a, pix.model_id, encoder_for(a))
    e2 = cache.get_or_encode(a, pix.model_id, encoder_for(a))
    assert e1 is e2 and len(calls) == 1 and cache.hits == 1
    cache.get_or_encode(b, pix.model_id, encoder_for(b))
    cache.get_or_encode(c, pix.model_id, encoder_for(c))
    assert len(cache) == 2  # bounded: a was evicted
    cache.get_or_encode(a, pix.model_id, encoder_for(a))
    assert len(calls) == 4


def test_pixel_encoder_is_deterministic_and_unit():
    pix = PixelEncoder()
    imgs = [photo(seed=1), photo(seed=2)]
    v1, v2 = pix.embed(imgs), PixelEncoder().embed(imgs)
    np.testing.assert_array_equal(v1, v2)
    assert np.allclose(np.linalg.norm(v1, axis=1), 1, atol=1e-5)
    assert v1[0] @ v1[1] < 0.999
    assert pix.encode(imgs[0]).predict("species") == []
    with pytest.raises(EncoderUnavailableError, match="cannot embed text"):
        pix.encode_text("fox")


@pytest.fixture(scope="module")
def tiny_model_atlas(enc, tmp_path_factory):
    """An atlas of 300 photo-like images embedded with the fixture's BioCLIP 2."""
    root = tmp_path_factory.mktemp("tiny-atlas")
    imgs = [photo(160, 120, seed=s) for s in range(300)]
    (root / "q").mkdir()
    for s in (7, 123):
        (root / "q" / f"{s}.jpg").write_bytes(encode(imgs[s], "PNG"))
    vectors = enc.embed(imgs)
    import pandas as pd
    records = pd.DataFrame({"id": np.arange(300), "kingdom": "Animalia", "genus": [f"G{i % 30}" for i in range(300)],
                            "species": [f"s{i}" for i in range(300)], "url": None})
    index = writer.train_index(vectors, "IVF8,Flat")
    writer.add_vectors(index, vectors)
    atlas = root / "atlas"
    writer.write_atlas(atlas, index, records, model=BIOCLIP2, source="tiny model test")
    return root


def test_cli_search_by_image_end_to_end(tiny_model_atlas, capsys):
    q = tiny_model_atlas / "q"
    code = main(["search", str(q / "7.jpg"), str(q / "123.jpg"), "--atlas", str(tiny_model_atlas / "atlas"),
                 "--nprobe", "8", "--top-n", "3"])
    out, err = capsys.readouterr()
    assert code == 0, err
    first = [s["hits"][0]["id"] for s in json.loads(out)["searches"]]
    assert first == [7, 123]


def test_cli_search_by_text(tiny_model_atlas, capsys):
    code = main(["search", "--text", "Vulpes vulpes", "--atlas", str(tiny_model_atlas / "atlas"), "--format", "table"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "text: Vulpes vulpes: 10 hits" in out


def test_cli_search_bad_image_fails_cleanly(tiny_model_atlas, tmp_path, capsys):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo at all, just notes")
    code = main(["search", str(bad), "--atlas", str(tiny_model_atlas / "atlas")])
    _, err = capsys.readouterr()
    assert code == 1 and "notes.jpg is a text file" in err and "Traceback" not in err


def test_cli_text_search_on_pixel_atlas_explains(tmp_path, capsys):
    from helpers.atlases import build_synthetic_atlas
    built = build_synthetic_atlas(tmp_path / "px", 500, "Flat", published_layout=False, model="bioclip-nb/pixel-768")
    code = main(["search", "--text", "fox", "--atlas", str(built.path)])
    _, err = capsys.readouterr()
    assert code == 1 and "cannot embed text" in err


def test_auto_model_choice_never_touches_the_network(tiny_bioclip, empty_hf_cache):
    from bioclip_nb.builder import resolve_model
    from bioclip_nb.layout import PIXEL_MODEL
    assert resolve_model("auto") == PIXEL_MODEL      # nothing cached: the stand-in, at once


def test_auto_model_choice_finds_cached_weights(tiny_bioclip):
    from bioclip_nb.builder import resolve_model
    from bioclip_nb.encoders import bioclip_available
    assert bioclip_available() and resolve_model("auto") == BIOCLIP2
