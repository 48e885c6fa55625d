"""A BioCLIP 2-shaped model with random weights in a Hugging Face cache, under the real ids.

The vision tower is open_clip's ViT-L/14 at 224 px (BioCLIP 2's compute); the text tower is
one narrow layer (only the image features are timed and compared), and the Tree of Life
labels are a small random set. Weights are stored in float16 to halve the file (about 0.6 GB);
open_clip loads them into a float32 model as it would the real ones.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from .hfcache import put_in_hf_cache

#: ViT-L/14 at 224 px, BioCLIP 2's image tower.
VIT_L14 = {"image_size": 224, "layers": 24, "width": 1024, "patch_size": 14}
#: A tiny image tower for quick runs.
VIT_TINY = {"image_size": 224, "layers": 2, "width": 64, "head_width": 32, "patch_size": 32}
_TEXT = {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1}


def random_labels(n: int = 64, dim: int = 768, seed: int = 0) -> tuple[list, np.ndarray]:
    """``n`` Tree of Life-style labels and unit text embeddings ``(dim, n)``."""
    rng = np.random.default_rng(seed)
    names = [[["Animalia", f"P{i % 3}", f"C{i % 6}", f"O{i % 12}", f"F{i % 24}", f"G{i % 48}", f"s{i}"], f"thing {i}"]
             for i in range(n)]
    emb = rng.normal(size=(dim, n)).astype(np.float32)
    return names, emb / np.linalg.norm(emb, axis=0, keepdims=True)


def install_random_bioclip(cache: Path, vision_cfg: dict = VIT_L14, seed: int = 0,
                           model_repo: str = "imageomics/bioclip-2", labels_repo: str = "imageomics/TreeOfLife-200M",
                           n_labels: int = 64) -> None:
    """Write config, float16 random weights and labels into ``cache`` under the real repo ids."""
    import open_clip
    import torch
    torch.manual_seed(seed)
    cfg = {"embed_dim": 768, "vision_cfg": vision_cfg, "text_cfg": _TEXT}
    model = open_clip.CLIP(**cfg)
    buf = io.BytesIO()
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}, buf)
    put_in_hf_cache(cache, model_repo, {
        "open_clip_config.json": json.dumps({"model_cfg": cfg, "preprocess_cfg": {
            "mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]}}).encode(),
        "open_clip_pytorch_model.bin": buf.getvalue(),
    })
    names, emb = random_labels(n_labels, seed=seed)
    out = io.BytesIO()
    np.save(out, emb)
    put_in_hf_cache(cache, labels_repo, {"embeddings/txt_emb_species.npy": out.getvalue(),
                                         "embeddings/txt_emb_species.json": json.dumps(names).encode()},
                    repo_type="dataset")
