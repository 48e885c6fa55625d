"""A tiny, randomly initialised BioCLIP 2 in a Hugging Face cache, under the real ids.

pybioclip and open_clip then load ``hf-hub:imageomics/bioclip-2`` and the Tree of Life label
files from ``imageomics/TreeOfLife-200M`` exactly as they would the real ones, offline.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from bioclip_nb.testing.hfcache import put_in_hf_cache

TINY_CONFIG = {
    "model_cfg": {
        "embed_dim": 768,
        "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "head_width": 32, "patch_size": 32},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
    },
    "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]},
}

#: Tree of Life labels: ``[[kingdom, phylum, class, order, family, genus, epithet], common]``.
#: The fishes have an empty class, as in the real file.
TINY_LABELS = [
    [["Animalia", "Chordata", "Mammalia", "Carnivora", "Canidae", "Vulpes", "vulpes"], "Red fox"],
    [["Animalia", "Chordata", "Mammalia", "Carnivora", "Canidae", "Vulpes", "lagopus"], "Arctic fox"],
    [["Animalia", "Chordata", "Mammalia", "Carnivora", "Canidae", "Canis", "lupus"], "Gray wolf"],
    [["Animalia", "Chordata", "Mammalia", "Carnivora", "Felidae", "Lynx", "lynx"], "Eurasian lynx"],
    [["Animalia", "Chordata", "Aves", "Passeriformes", "Paridae", "Parus", "major"], "Great tit"],
    [["Animalia", "Chordata", "Aves", "Passeriformes", "Paridae", "Cyanistes", "caeruleus"], "Blue tit"],
    [["Animalia", "Chordata", "Aves", "Strigiformes", "Strigidae", "Strix", "aluco"], "Tawny owl"],
    [["Animalia", "Chordata", "", "Perciformes", "Percidae", "Perca", "fluviatilis"], "European perch"],
    [["Animalia", "Chordata", "", "Cypriniformes", "Cyprinidae", "Cyprinus", "carpio"], "Common carp"],
    [["Animalia", "Arthropoda", "Insecta", "Lepidoptera", "Nymphalidae", "Vanessa", "atalanta"], "Red admiral"],
    [["Animalia", "Arthropoda", "Insecta", "Hymenoptera", "Apidae", "Bombus", "terrestris"], "Buff-tailed bumblebee"],
    [["Plantae", "Tracheophyta", "Magnoliopsida", "Asterales", "Asteraceae", "Bellis", "perennis"], "Common daisy"],
    [["Plantae", "Tracheophyta", "Magnoliopsida", "Rosales", "Rosaceae", "Rosa", "canina"], "Dog rose"],
    [["Plantae", "Tracheophyta", "Pinopsida", "Pinales", "Pinaceae", "Pinus", "sylvestris"], "Scots pine"],
    [["Fungi", "Basidiomycota", "Agaricomycetes", "Agaricales", "Amanitaceae", "Amanita", "muscaria"], "Fly agaric"],
    [["Fungi", "Basidiomycota", "Agaricomycetes", "Boletales", "Boletaceae", "Boletus", "edulis"], ""],
    [["Animalia", "Mollusca", "Gastropoda", "Stylommatophora", "Helicidae", "Helix", "pomatia"], "Roman snail"],
    [["Animalia", "Chordata", "Amphibia", "Anura", "Ranidae", "Rana", "temporaria"], "Common frog"],
]
#: Index of the all-zero text-embedding column (as ~1.8% of the real file's columns are).
ZERO_COLUMN = 5


def tiny_clip_state(seed: int = 0) -> tuple[bytes, object]:
    """Random weights for the tiny config, saved with ``torch.save``."""
    import open_clip
    import torch
    torch.manual_seed(seed)
    cfg = TINY_CONFIG["model_cfg"]
    model = open_clip.CLIP(embed_dim=cfg["embed_dim"], vision_cfg=cfg["vision_cfg"], text_cfg=cfg["text_cfg"])
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getvalue(), model


def tiny_text_embeddings(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(768, len(TINY_LABELS))).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=0, keepdims=True)
    emb[:, ZERO_COLUMN] = 0.0
    return emb


def install_tiny_bioclip(cache: Path, seed: int = 0) -> dict:
    """Fill ``cache`` with the tiny model and label files; return what was written."""
    weights, _ = tiny_clip_state(seed)
    put_in_hf_cache(cache, "imageomics/bioclip-2", {
        "open_clip_config.json": json.dumps(TINY_CONFIG).encode(),
        "open_clip_pytorch_model.bin": weights,
    })
    emb = tiny_text_embeddings(seed)
    buf = io.BytesIO()
    np.save(buf, emb)
    put_in_hf_cache(cache, "imageomics/TreeOfLife-200M", {
        "embeddings/txt_emb_species.npy": buf.getvalue(),
        "embeddings/txt_emb_species.json": json.dumps(TINY_LABELS).encode(),
    }, repo_type="dataset")
    return {"labels": TINY_LABELS, "text_embeddings": emb}


def install_tiny_bioclip25(cache: Path, seed: int = 1) -> dict:
    """A tiny random model under BioCLIP 2.5 Huge's id (1024-d, as the real ViT-H/14). Its Tree
    of Life names are BioCLIP 2's (:func:`install_tiny_bioclip` writes them); no label
    embeddings are published for it."""
    import open_clip
    import torch
    torch.manual_seed(seed)
    cfg = dict(TINY_CONFIG["model_cfg"], embed_dim=1024)
    model = open_clip.CLIP(**cfg)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    put_in_hf_cache(cache, "imageomics/bioclip-2.5-vith14", {
        "open_clip_config.json": json.dumps(dict(TINY_CONFIG, model_cfg=cfg)).encode(),
        "open_clip_pytorch_model.bin": buf.getvalue(),
    })
    return {"model": model}
