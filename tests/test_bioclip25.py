"""BioCLIP 2.5 Huge through open_clip, on a tiny random model under its real id, offline:
embeddings, text, the Tree of Life labels embedded here (resumable), predictions, and the
atlas commands that name it."""

from __future__ import annotations

import json

import numpy as np
import open_clip
import pytest
import torch
from helpers.pictures import photo
from helpers.tinymodel import TINY_LABELS

from bioclip_nb.encoders import openclip
from bioclip_nb.encoders.bioclip import BioClipEncoder
from bioclip_nb.layout import BIOCLIP25, MODELS, Rank


def _load(root, compute=False) -> BioClipEncoder:
    return BioClipEncoder.load_open_clip(BIOCLIP25, device="cpu", runtime="torch", compute_labels=compute,
                                         labels_root=root)


def test_the_registry_knows_bioclip_25():
    spec = MODELS[BIOCLIP25]
    assert (spec.dim, spec.display_name, spec.kind, spec.predicts, spec.embeds_text) == (
        1024, "BioCLIP 2.5 Huge", "openclip", True, True)


def test_without_its_labels_it_embeds_and_says_why_it_does_not_predict(tiny_bioclip25, tmp_path):
    enc = _load(tmp_path)
    e = enc.encode(photo(seed=4))
    assert e.embedding.shape == (1024,) and abs(np.linalg.norm(e.embedding) - 1) < 1e-5
    assert e.predictions == {} and "prepare --labels" in e.note
    text = enc.encode_text("Vulpes lagopus")
    assert text.shape == (1024,) and abs(np.linalg.norm(text) - 1) < 1e-5


def test_its_labels_are_its_own_text_tower_over_the_published_names(tiny_bioclip25, tmp_path):
    enc = _load(tmp_path, compute=True)
    assert len(enc.labels.names) == len(TINY_LABELS) and enc.labels_note == ""
    # recomputed here, independently: the prompt in BioCLIP's training form through the model
    model, tokenizer = tiny_bioclip25["model"].eval(), open_clip.get_tokenizer(BIOCLIP25)
    fox = TINY_LABELS.index(next(e for e in TINY_LABELS if e[1] == "Arctic fox"))
    assert openclip.prompt(TINY_LABELS[fox]) == ("a photo of Animalia Chordata Mammalia Carnivora Canidae Vulpes lagopus "
                                                 "with common name Arctic fox.")
    with torch.no_grad():
        want = torch.nn.functional.normalize(model.encode_text(tokenizer([openclip.prompt(TINY_LABELS[fox])])).float(), dim=-1)
    got = enc._txt[:, fox].cpu()
    assert torch.allclose(got, want[0], atol=2e-3)            # stored as float16
    # predictions: one pass, every rank, the species the scores say
    e = enc.encode(photo(seed=4))
    assert set(e.predictions) == set(Rank) and e.note == ""
    with torch.no_grad():
        logits = (enc.model.logit_scale.exp() * torch.from_numpy(e.embedding)[None] @ enc._txt)[0]
    best = TINY_LABELS[int(logits.argmax())][0]
    assert e.predict("species", 1)[0].name == f"{best[5]} {best[6]}"
    # a second load reads them, computing nothing
    calls = []
    hook = enc.model.register_forward_hook(lambda *a: calls.append(1))
    again = _load(tmp_path)
    hook.remove()
    assert again.labels is not None and np.allclose(again._txt.numpy(), enc._txt.numpy())


def test_embedding_the_labels_resumes_after_an_interruption(tiny_bioclip25, tmp_path, monkeypatch):
    model, tokenizer = tiny_bioclip25["model"].eval(), open_clip.get_tokenizer(BIOCLIP25)
    monkeypatch.setattr(openclip, "CHUNK", 5)
    names = TINY_LABELS                                          # 18 names: chunks of 5, 5, 5, 3
    texts: list[str] = []
    real = model.encode_text

    def counted(tokens, *a, **kw):
        texts.append(len(tokens))
        return real(tokens, *a, **kw)

    monkeypatch.setattr(model, "encode_text", counted)

    def stop_after_two(done: int, total: int) -> None:
        if done >= 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        openclip.label_embeddings(model, tokenizer, names, tmp_path, progress=False, on_chunk=stop_after_two)
    assert sorted(p.name for p in tmp_path.glob("chunk-*.npy")) == ["chunk-00000.npy", "chunk-00001.npy"]
    assert sum(texts) == 10
    texts.clear()
    emb = openclip.label_embeddings(model, tokenizer, names, tmp_path, progress=False)
    assert sum(texts) == 8                                       # only the names not yet embedded
    assert emb.shape == (1024, len(names)) and not list(tmp_path.glob("chunk-*.npy"))
    assert np.allclose(np.linalg.norm(emb, axis=0), 1, atol=2e-3)
    # made for another list of names, the stored file is not used
    assert openclip.cached_label_embeddings(tmp_path, names[:-1]) is None
    assert json.loads((tmp_path / "labels.json").read_text())["count"] == len(names)


def test_a_taxon_restriction_means_what_pybioclip_means(tiny_bioclip25, tmp_path):
    from bioclip_nb.encoders.within import Within
    enc = _load(tmp_path, compute=True)
    e = enc.encode(photo(seed=9))
    canids = enc.predict(e.embedding, within=Within.parse("family=Canidae"))
    assert {p.lineage[4] for p in canids[Rank.SPECIES]} == {"Canidae"}
    with pytest.raises(ValueError, match="Felis"):
        enc.predict(e.embedding, within=Within.parse("genus=Felis"))


def test_an_atlas_of_bioclip_25_from_build_to_predictions(tmp_path, tiny_bioclip25, capsys, monkeypatch):
    """Built with the model, the atlas says so; check points at `prepare --labels`, which makes
    them into the cache that the encoder then reads."""
    from helpers.dashatlas import build_dash_atlas

    from bioclip_nb.commands.check import run_checks
    from bioclip_nb.commands.cli import main
    from bioclip_nb.config import Settings
    monkeypatch.setenv("BIOCLIP_NB_HOME", str(tmp_path / "home"))
    atlas = build_dash_atlas(tmp_path / "a", "http://127.0.0.1:9", BIOCLIP25)
    lines: list[str] = []
    assert run_checks(atlas, Settings.from_env(), out=lines.append) == 0
    text = "\n".join(lines)
    assert "BioCLIP 2.5 Huge weights and Tree of Life names are in" in text and "bioclip-nb prepare --labels" in text
    assert main(["info", "--atlas", str(atlas)]) == 0
    assert "BioCLIP 2.5 Huge" in capsys.readouterr().out
    assert main(["prepare", "--atlas", str(atlas), "--no-map", "--labels"]) == 0
    assert json.loads(capsys.readouterr().out)["labels"] == {"model": BIOCLIP25, "labels": len(TINY_LABELS)}
    lines.clear()
    run_checks(atlas, Settings.from_env(), out=lines.append)
    assert "Tree of Life labels embedded with this model" in "\n".join(lines)
    enc = BioClipEncoder.load_open_clip(BIOCLIP25, device="cpu", runtime="torch")     # reads the cache prepare wrote
    assert enc.labels is not None and set(enc.encode(photo(seed=2)).predictions) == set(Rank)


def test_labels_prepared_later_are_taken_up_without_a_restart(tiny_bioclip25, tmp_path):
    """An encoder loaded before `prepare --labels` ran (a dashboard kernel, a server) predicts
    at its next photo once the labels exist; until then it says why it does not."""
    from bioclip_nb.commands.prepare import prepare_labels
    enc = _load(tmp_path)
    first = enc.encode(photo(seed=4))
    assert first.predictions == {} and "prepare --labels" in first.note
    prepare_labels(BIOCLIP25, tmp_path)                          # elsewhere, into the same place
    later = enc.encode(photo(seed=4))
    assert set(later.predictions) == set(Rank) and later.note == ""
    fresh = _load(tmp_path)                                      # the same as an encoder loaded now
    assert [p.name for p in later.predict("species", 3)] == [p.name for p in fresh.encode(photo(seed=4)).predict("species", 3)]
