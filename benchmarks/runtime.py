"""Seconds per photo on this CPU: torch eager (baseline) against each exported runtime.

Each figure is the fastest of three interleaved rounds (single photos, batches of 4, batches of
8, in turn), so a slow spell of this shared machine does not land on one configuration only.

BioCLIP 2's image tower (open_clip ViT-L/14, 224 px) with random weights, installed in a
temporary Hugging Face cache under the real model id and loaded by the real encoder, so the
timings include preprocessing and the Tree of Life prediction, as a search does. The export
and its equivalence check are ``BioClipEncoder.prepare_runtime``, as a user's machine runs
them. Agreement is also measured on 16 photos outside the check set.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bioclip_nb.encoders import runtimes
from bioclip_nb.layout import BIOCLIP2
from bioclip_nb.testing.randommodel import VIT_L14, VIT_TINY, install_random_bioclip

from .common import table


@contextlib.contextmanager
def random_model_home(vision_cfg: dict):
    """A temporary Hugging Face cache holding the random model, and a temporary home."""
    import huggingface_hub.constants as hf
    with tempfile.TemporaryDirectory(prefix="bioclip-runtime-") as tmp:
        cache = Path(tmp) / "hf"
        install_random_bioclip(cache, vision_cfg)
        saved = hf.HF_HUB_CACHE, hf.HF_HUB_OFFLINE, os.environ.get("BIOCLIP_NB_HOME")
        hf.HF_HUB_CACHE, hf.HF_HUB_OFFLINE = str(cache), True
        os.environ["BIOCLIP_NB_HOME"] = str(Path(tmp) / "home")
        try:
            yield
        finally:
            hf.HF_HUB_CACHE, hf.HF_HUB_OFFLINE = saved[0], saved[1]
            if saved[2] is None:
                os.environ.pop("BIOCLIP_NB_HOME", None)
            else:
                os.environ["BIOCLIP_NB_HOME"] = saved[2]


def photos(n: int, seed: int) -> list:
    """Photo-sized pictures outside the check set (640x480, varied)."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        base = rng.random((6, 8, 3))
        img = Image.fromarray((base * 255).astype(np.uint8)).resize((640, 480), Image.BICUBIC)
        noise = (rng.normal(0, 12, (480, 640, 3))).clip(-40, 40)
        out.append(Image.fromarray((np.asarray(img) + noise).clip(0, 255).astype(np.uint8)))
    return out


def run(quick: bool = False) -> dict:
    from bioclip_nb.encoders.bioclip import BioClipEncoder
    vision = VIT_TINY if quick else VIT_L14
    name = "tiny ViT" if quick else "ViT-L/14"
    with random_model_home(vision):
        enc = BioClipEncoder.load(BIOCLIP2, "cpu", "torch")
        record = enc.prepare_runtime()
        others = photos(16 if not quick else 4, seed=5)
        one = others[:1]
        reference = enc.encode_many(others)
        rows, rounds = [], 2 if quick else 3
        base = None
        for rt in ("torch", *runtimes.FAST_RUNTIMES):
            if enc.use_runtime(rt) != rt:
                rows.append([rt, "failed: " + enc.runtime_note + _alone(enc, rt, record), "", "", "", "", "", ""])
                continue
            enc.encode(one[0])                                   # warm-up
            times = {1: [], 4: [], 8: []}
            for _ in range(rounds):                              # interleaved, so drifts hit all alike
                for size in times:
                    batch = one if size == 1 else others[:2 * size] if not quick else others
                    t0 = time.perf_counter()
                    enc.encode_many(batch, batch_size=size)
                    times[size].append((time.perf_counter() - t0) / len(batch))
            single, per = min(times[1]), {size: min(t) for size, t in times.items()}
            base = base or single
            got = enc.encode_many(others)
            cos = min(float(a.embedding @ b.embedding) for a, b in zip(got, reference))
            top1 = sum(a.predict("species", 1)[0].name == b.predict("species", 1)[0].name for a, b in zip(got, reference))
            checked = record.candidate(rt)
            rows.append([rt + (" (chosen)" if rt == record.chosen else ""), single, base / single, per[4], per[8],
                         "baseline" if checked is None else f"{checked.worst_cosine:.4f}, top-1 {checked.top1_agreement}",
                         f"{cos:.4f}", f"{top1}/{len(others)}"])
    md = table(["runtime", "s / photo", "speed-up", "s / photo, batches of 4", "s / photo, batches of 8",
                "check: worst cosine, top-1", f"{len(others)} other photos: worst cosine", "top-1 same"], rows)
    md += (f"\n\nExport (ONNX, then every weight matrix to int8 with 7-bit weights) and check: {record.export_seconds:.0f} s to export, "
           f"{record.disk_bytes / 2**20:,.0f} MB on disk; chosen by the check: **{record.chosen}**. "
           f"Threshold: worst cosine >= {runtimes.CHECK_COSINE} and the same top-1 species on "
           f"{len(runtimes.check_images())} check images. Random weights put species scores in near-ties, so "
           "top-1 on other photos is a harsher test than a trained model's.")
    return {"name": "runtime", "title": f"Encoder runtimes: seconds per photo, {name} random weights, 224 px, "
            f"{os.cpu_count()} cores", "markdown": md, "record": {"chosen": record.chosen,
            "torch_seconds": record.torch_seconds, "export_seconds": record.export_seconds, "disk_bytes": record.disk_bytes},
            "rows": [dict(zip(["runtime", "seconds", "speedup", "batch4", "batch8", "check", "other_cos", "other_top1"], r))
                     for r in rows]}


def _alone(enc, rt: str, record) -> str:
    """What a runtime that failed the check would have given: its visual tower alone on the
    check images, against torch's (as the check times them), or '' if it does not run at all."""
    import torch
    pixels = torch.stack([enc.preprocess(img.convert("RGB")) for img in runtimes.check_images()]).numpy()
    try:
        alone = runtimes.seconds_per_photo(runtimes.open_visual(rt, enc.export_dir), pixels)
    except Exception:  # noqa: BLE001 - a runtime that does not run has no time to report
        return ""
    return (f"; unused, its visual tower alone took {alone:.3g} s per photo against torch's "
            f"{record.torch_seconds:.3g} s ({record.torch_seconds / alone:.2f}x)")


if __name__ == "__main__":
    print(run()["markdown"])
