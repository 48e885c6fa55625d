"""The fast CPU runtimes: exported once, checked against torch, used only when equivalent.

Everything runs for real: the tiny random BioCLIP 2 from the offline Hugging Face cache is
exported with torch.onnx, run by ONNX Runtime and OpenVINO, and compared with torch.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
from helpers.pictures import photo

from bioclip_nb.commands.check import runtime as runtime_line
from bioclip_nb.config import Settings
from bioclip_nb.encoders import load_encoder, runtimes
from bioclip_nb.encoders.bioclip import BioClipEncoder
from bioclip_nb.layout import BIOCLIP2, PIXEL_MODEL


@pytest.fixture(scope="module")
def torch_enc(tiny_bioclip):
    return load_encoder(BIOCLIP2, device="cpu", runtime="torch")


@pytest.fixture
def fresh_home(tmp_path, monkeypatch):
    """A home with no export yet (the export lives under the home's cache)."""
    monkeypatch.setenv("BIOCLIP_NB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def fresh_encoder(runtime: str, background: bool = False) -> BioClipEncoder:
    """A new encoder (not the shared one), so each test sees its own runtime choice."""
    return BioClipEncoder.load(BIOCLIP2, "cpu", runtime, background)


@pytest.mark.parametrize("name", runtimes.FAST_RUNTIMES)
def test_each_runtime_gives_torchs_embeddings_and_predictions(tiny_bioclip, torch_enc, name):
    enc = fresh_encoder(name)
    assert enc.runtime == name, enc.runtime_note
    pics = [photo(200, 150, seed=s) for s in range(6)]
    torch_passes = []
    hook = enc.model.visual.register_forward_hook(lambda *a: torch_passes.append(1))
    try:
        ours = enc.encode_many(pics)
    finally:
        hook.remove()
    assert torch_passes == []                 # the runtime ran the visual tower, not torch
    theirs = torch_enc.encode_many(pics)
    cos = np.array([a.embedding @ b.embedding for a, b in zip(ours, theirs)])
    assert cos.min() >= runtimes.CHECK_COSINE
    if name != "onnxruntime-int8":
        # fp32 runtimes agree to float rounding, so on every photo. int8 promises top-1 agreement
        # on the check images only (the record test): the tiny random model's species scores are
        # near-ties that int8 rounding can reorder on other photos.
        assert cos.min() > 0.99999
        assert [a.predict("species", 1)[0].name for a in ours] == [b.predict("species", 1)[0].name for b in theirs]


def test_the_check_is_recorded_beside_the_export(tiny_bioclip):
    enc = fresh_encoder("onnxruntime")
    record = json.loads((enc.export_dir / runtimes.RECORD).read_text())
    assert record["model_id"] == BIOCLIP2 and record["weights"] == enc.weights
    assert {c["name"] for c in record["candidates"]} == set(runtimes.FAST_RUNTIMES)
    for c in record["candidates"]:
        assert c["passed"] and c["worst_cosine"] >= runtimes.CHECK_COSINE and c["top1_agreement"] == "8/8"
    fastest = min(record["candidates"], key=lambda c: c["seconds_per_photo"])
    assert record["chosen"] in (fastest["name"], "torch")
    assert record["disk_bytes"] == sum(p.stat().st_size for p in enc.export_dir.glob("visual*"))


def test_int8_quantises_every_weight_matrix_with_seven_bit_weights(tiny_bioclip):
    """Every weight matrix of the tower, the attention's output projections (exported as Gemm)
    included, is int8 in the int8 model, and no weight uses the 8th bit: full 8-bit weights
    saturate AVX2's 16-bit pair sums (``quantize_int8``)."""
    import onnx
    from onnx import numpy_helper
    enc = fresh_encoder("onnxruntime")
    fp32 = onnx.load(str(enc.export_dir / "visual.onnx")).graph
    consts = {t.name for t in fp32.initializer}
    matrices = [n for n in fp32.node if n.op_type in ("MatMul", "Gemm") and n.input[1] in consts]
    assert any(n.op_type == "Gemm" for n in matrices)           # the case the rewrite exists for
    int8 = onnx.load(str(enc.export_dir / "visual-int8.onnx")).graph
    assert not [n for n in int8.node if n.op_type in ("MatMul", "Gemm")
                and n.input[1] in {t.name for t in int8.initializer if t.data_type == onnx.TensorProto.FLOAT}]
    quantised = [numpy_helper.to_array(t) for t in int8.initializer if t.data_type == onnx.TensorProto.INT8 and t.dims]
    assert len([w for w in quantised if w.ndim == 2]) == len(matrices)
    assert max(int(np.abs(w.astype(np.int16)).max()) for w in quantised) <= 64


def test_a_record_from_another_cpu_or_library_is_checked_again(tiny_bioclip):
    enc = fresh_encoder("onnxruntime")
    path = enc.export_dir / runtimes.RECORD
    record = runtimes.RuntimeRecord.read(path)
    assert runtimes.current_record(enc.export_dir) == record
    for change in ({"machine": "riscv64 elsewhere x64"}, {"versions": {**record.versions, "onnxruntime": "0.1"}}):
        path.write_text(json.dumps(dataclasses.asdict(dataclasses.replace(record, **change))))
        assert runtimes.current_record(enc.export_dir) is None
    enc.prepare_runtime()                                    # redone: current again
    assert runtimes.current_record(enc.export_dir) is not None


def test_an_export_that_is_not_equivalent_is_never_used(tiny_bioclip, fresh_home, torch_enc):
    """An export of other weights sits where this model's belongs: every fast runtime fails
    the check, and asking for one leaves torch in use, saying why."""
    import open_clip
    import torch
    torch.manual_seed(99)
    other = open_clip.CLIP(**_tiny_cfg())
    directory = fresh_encoder("torch").export_dir
    runtimes.export_onnx(other.visual, directory / "visual.onnx", 224)
    enc = fresh_encoder("openvino")
    assert enc.runtime == "torch"
    assert "did not pass the equivalence check" in enc.runtime_note and "worst cosine" in enc.runtime_note
    record = runtimes.current_record(directory)
    assert record.chosen == "torch" and not any(c.passed for c in record.candidates)
    assert "no faster runtime passed" in record.summary()
    pic = photo(seed=4)
    assert enc.encode(pic).embedding @ torch_enc.encode(pic).embedding > 0.99999
    auto = fresh_encoder("auto")
    assert auto.runtime == "torch"


def test_a_broken_export_falls_back_to_torch(tiny_bioclip, fresh_home):
    enc = fresh_encoder("onnxruntime")
    assert enc.runtime == "onnxruntime"
    (enc.export_dir / "visual.onnx").write_bytes(b"truncated")
    again = fresh_encoder("onnxruntime")
    assert again.runtime == "torch" and "could not be opened" in again.runtime_note
    assert again.encode(photo(seed=1)).embedding.shape == (768,)


def test_auto_prepares_in_the_background_and_answers_meanwhile(tiny_bioclip, fresh_home):
    enc = fresh_encoder("auto", background=True)
    assert enc.runtime == "torch" and "background" in enc.runtime_note
    assert enc.encode(photo(seed=2)).embedding.shape == (768,)       # torch answers while it builds
    assert enc.runtime_ready.wait(120)
    record = runtimes.current_record(enc.export_dir)
    assert enc.runtime == record.chosen and enc.runtime_note == record.summary()
    later = fresh_encoder("auto")                                    # the next process: no waiting
    assert later.runtime == record.chosen and later.runtime_ready.is_set()


def test_auto_without_background_stays_on_torch_and_says_how(tiny_bioclip, fresh_home):
    enc = fresh_encoder("auto", background=False)
    assert enc.runtime == "torch" and "bioclip-nb prepare --runtime" in enc.runtime_note
    assert not (enc.export_dir / runtimes.RECORD).exists()


def test_new_weights_get_a_new_export(tiny_bioclip, tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"x" * 10)
    b.write_bytes(b"y" * 11)
    assert runtimes.weights_hash([a]) != runtimes.weights_hash([b])
    cache = Settings.from_env().cache_dir
    assert (runtimes.export_dir(cache, BIOCLIP2, runtimes.weights_hash([a]))
            != runtimes.export_dir(cache, BIOCLIP2, runtimes.weights_hash([b])))


def test_unknown_runtime_is_refused(tiny_bioclip):
    with pytest.raises(ValueError, match="unknown runtime 'tensorrt'"):
        load_encoder(BIOCLIP2, device="cpu", runtime="tensorrt")


def test_environment_names_the_default_runtime(tiny_bioclip, monkeypatch):
    monkeypatch.setenv("BIOCLIP_NB_RUNTIME", "onnxruntime")
    assert load_encoder(BIOCLIP2, device="cpu").runtime == "onnxruntime"


def test_the_stand_in_needs_no_runtime():
    enc = load_encoder(PIXEL_MODEL, runtime="openvino")
    assert enc.runtime == "numpy"


def test_check_says_which_runtime_encodes(tiny_bioclip, fresh_home):
    settings = Settings.from_env()
    before = runtime_line(BIOCLIP2, settings)
    assert "torch for now" in before.found and "prepare --runtime" in before.fix
    enc = fresh_encoder("onnxruntime")
    after = runtime_line(BIOCLIP2, settings)
    assert after.found == runtimes.current_record(enc.export_dir).summary()
    assert runtime_line(PIXEL_MODEL, settings).found.startswith("numpy")


@pytest.fixture(scope="module")
def bioclip_atlas(torch_enc, tmp_path_factory):
    """A small atlas embedded with the tiny BioCLIP 2, and two query photos."""
    import pandas as pd

    from bioclip_nb.builder import writer
    root = tmp_path_factory.mktemp("runtime-atlas")
    pics = [photo(160, 120, seed=s) for s in range(200)]
    vectors = torch_enc.embed(pics)
    records = pd.DataFrame({"id": np.arange(200), "kingdom": "Animalia", "species": [f"s{i}" for i in range(200)],
                            "url": None})
    index = writer.train_index(vectors, "IVF4,Flat")
    writer.add_vectors(index, vectors)
    writer.write_atlas(root / "atlas", index, records, model=BIOCLIP2, source="runtime test")
    writer.write_atlas(root / "pixel-atlas", index, records, model=PIXEL_MODEL, source="runtime test")
    for s in (11, 150):
        pics[s].save(root / f"{s}.png")
    return root


def test_cli_prepare_runtime_then_search_uses_it(tiny_bioclip, fresh_home, bioclip_atlas, capsys):
    from bioclip_nb.commands.cli import main
    atlas = str(bioclip_atlas / "atlas")
    code = main(["prepare", "--atlas", atlas, "--no-map", "--no-quantizer", "--runtime"])
    out, err = capsys.readouterr()
    assert code == 0, err
    prepared = json.loads(out)["runtime"]
    assert prepared["chosen"] in (*runtimes.FAST_RUNTIMES, "torch") and len(prepared["candidates"]) == 3
    queries = [str(bioclip_atlas / "11.png"), str(bioclip_atlas / "150.png")]
    answers = {}
    for rt in ("torch", "onnxruntime", "openvino"):
        code = main(["search", *queries, "--atlas", atlas, "--local", "--runtime", rt, "--top-n", "5", "--nprobe", "4"])
        out, err = capsys.readouterr()
        assert code == 0, err
        answers[rt] = [[h["id"] for h in s["hits"]] for s in json.loads(out)["searches"]]
    assert answers["torch"][0][0] == 11 and answers["torch"][1][0] == 150
    assert answers["onnxruntime"] == answers["torch"] == answers["openvino"]
    code = main(["prepare", "--atlas", str(bioclip_atlas / "pixel-atlas"), "--no-map", "--no-quantizer", "--runtime"])
    out, err = capsys.readouterr()
    assert code == 0 and json.loads(out)["runtime"]["chosen"] == "numpy"


def _tiny_cfg() -> dict:
    from helpers.tinymodel import TINY_CONFIG
    cfg = TINY_CONFIG["model_cfg"]
    return {"embed_dim": cfg["embed_dim"], "vision_cfg": cfg["vision_cfg"], "text_cfg": cfg["text_cfg"]}


@pytest.fixture(autouse=True)
def _no_exports_left(request):
    yield
    if "fresh_home" in request.fixturenames:
        shutil.rmtree(Settings.from_env().cache_dir / "runtimes", ignore_errors=True)


@pytest.mark.slow
def test_vit_l14_export_is_checked_and_chosen(tmp_path, monkeypatch):
    """BioCLIP 2's real compute (ViT-L/14, random weights under the real id): the export is
    built, every runtime is checked against torch, and the encoder uses what the record chose,
    giving torch's embeddings to the check's tolerance."""
    import huggingface_hub.constants as hf

    from bioclip_nb.testing.randommodel import install_random_bioclip
    install_random_bioclip(tmp_path / "hf")
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("BIOCLIP_NB_HOME", str(tmp_path / "home"))
    enc = BioClipEncoder.load(BIOCLIP2, "cpu", "torch")
    assert len(enc.model.visual.transformer.resblocks) == 24 and enc.model.visual.transformer.width == 1024
    record = enc.prepare_runtime()
    assert {c.name for c in record.candidates} == set(runtimes.FAST_RUNTIMES)
    assert record.disk_bytes > 1_000_000_000          # the fp32 export of ViT-L/14's tower (1.2 GB)
    for c in record.candidates:
        assert c.passed == (c.worst_cosine is not None and c.worst_cosine >= runtimes.CHECK_COSINE
                            and c.top1_agreement == "8/8"), c
    # int8 at ViT-L/14's width: 8-bit weights saturated AVX2's pair sums (worst cosine 0.9950, failed)
    assert record.candidate("onnxruntime-int8").worst_cosine > 0.999
    pics = [photo(300, 200, seed=s) for s in range(3)]
    reference = enc.embed(pics)
    assert enc.use_runtime("auto") == record.chosen
    ours = enc.embed(pics)
    assert (ours * reference).sum(axis=1).min() >= runtimes.CHECK_COSINE
    for name in runtimes.FAST_RUNTIMES:
        used = enc.use_runtime(name)
        assert used == (name if record.candidate(name).passed else "torch"), enc.runtime_note


def test_a_runtime_prepared_for_everybody_is_used_from_the_shared_directory(tiny_bioclip, fresh_home, tmp_path,
                                                                            monkeypatch):
    """``prepare --derived-dir DIR --runtime`` once; every user with BIOCLIP_NB_DERIVED_DIR=DIR
    reads that export and prepares nothing in their own cache."""
    shared = tmp_path / "shared"
    maker = fresh_encoder("torch")
    record = maker.prepare_runtime(cache_dir=shared)
    assert (runtimes.export_dir(shared, BIOCLIP2, maker.weights) / runtimes.RECORD).is_file()
    monkeypatch.setenv("BIOCLIP_NB_DERIVED_DIR", str(shared))
    user = fresh_encoder("auto", background=True)
    assert user.runtime == record.chosen and user.runtime_ready.is_set()
    assert user.export_dir.is_relative_to(shared)
    assert not (fresh_home / "cache" / "runtimes").exists()
