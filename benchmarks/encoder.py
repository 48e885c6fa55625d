"""Seconds per image: one forward pass for embedding + prediction (ours) against two passes.

The model is open_clip's ``ViT-L-14`` with random weights (the same compute as BioCLIP 2), at
224 px on this CPU. Predictions use a random Tree of Life-sized label matrix. The baseline
embeds the image for search, then calls a pybioclip-style predict that encodes it again.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from bioclip_nb.encoders.bioclip import TreeOfLifeLabels
from bioclip_nb.layout import Rank

from .common import best_of, table


def _labels(n: int, dim: int = 768) -> tuple[TreeOfLifeLabels, torch.Tensor]:
    rng = np.random.default_rng(0)
    names = [[[f"K{i % 5}", f"P{i % 40}", f"C{i % 300}", f"O{i % 1500}", f"F{i % 6000}", f"G{i % 30000}", f"s{i}"], ""]
             for i in range(n)]
    emb = rng.normal(size=(dim, n)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=0)
    return TreeOfLifeLabels(names, emb), torch.from_numpy(emb)


def run(quick: bool = False) -> dict:
    import open_clip
    torch.manual_seed(0)
    model_name = "ViT-B-32" if quick else "ViT-L-14"
    model = open_clip.create_model(model_name, pretrained=None).eval()
    n_labels = 20_000 if quick else 200_000
    labels, txt = _labels(n_labels, model.visual.output_dim)
    img = Image.fromarray((np.random.default_rng(1).random((480, 640, 3)) * 255).astype(np.uint8))
    from bioclip.predict import preprocess_img
    valid = torch.from_numpy(labels.valid)

    def features():
        with torch.no_grad():
            return F.normalize(model.encode_image(preprocess_img(img)[None]), dim=-1)

    def predict_from(feats):
        with torch.no_grad():
            logits = (model.logit_scale.exp() * feats @ txt).masked_fill(~valid, float("-inf"))
            probs = torch.softmax(logits, dim=-1).numpy()[0].astype(np.float64)
        return {rank: labels.top(probs, rank, 5) for rank in Rank}

    def ours():
        feats = features()
        return feats, predict_from(feats)

    def baseline():
        feats = features()              # embed for search
        return feats, predict_from(features())   # predict() encodes the image again

    repeat = 2 if quick else 3
    t_ours = best_of(ours, repeat=repeat)
    t_base = best_of(baseline, repeat=repeat)
    rows = [["embed then predict (two passes)", t_base, 1.0], ["one pass (ours)", t_ours, t_base / t_ours]]
    md = table(["method", "s / image", "speed-up"], rows)
    return {"name": "encoder", "title": f"Encoder: seconds per image, {model_name} random weights, 224 px, "
            f"{n_labels:,} labels, {torch.get_num_threads()} threads", "markdown": md,
            "rows": [dict(zip(["method", "seconds", "speedup"], r)) for r in rows]}


if __name__ == "__main__":
    print(run()["markdown"])
