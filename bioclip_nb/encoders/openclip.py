"""Tree of Life models pybioclip does not serve (BioCLIP 2.5 Huge), through open_clip.

The weights load with open_clip from the Hugging Face cache, under the model's hub id. The
Tree of Life label *names* are the ones BioCLIP 2 publishes (``txt_emb_species.json`` in
``imageomics/TreeOfLife-200M``); their text embeddings under this model do not exist anywhere,
so :func:`label_embeddings` computes them once with the model's own text tower, one prompt per
name in BioCLIP's training form ("a photo of Animalia Chordata ... Vulpes lagopus with common
name Arctic fox."). That is hours for ~950,000 names on a CPU: it runs in resumable chunks with
progress, into the derived data (``bioclip-nb prepare --labels``), and until it is complete
the encoder embeds photos and text but predicts nothing, and says why.

One forward pass still gives both the embedding and the predictions, as for BioCLIP 2: the
encoder is :class:`.bioclip.BioClipEncoder` with this module's :class:`OpenClipClassifier` in
place of pybioclip's.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..errors import EncoderUnavailableError
from ..layout import RANKS, display_name
from ..names import clean

log = logging.getLogger("bioclip_nb.encoders")

#: Where the Tree of Life label names come from (BioCLIP 2's published label set).
NAMES_REPO = "imageomics/TreeOfLife-200M"
NAMES_FILE = "embeddings/txt_emb_species.json"
#: Names per chunk of :func:`label_embeddings` (one file each: the unit of resuming).
CHUNK = 4096
DONE = "txt_emb_species.npy"


def prompt(entry: list) -> str:
    """BioCLIP's training text for a label: its taxonomic names, then its common name."""
    lineage, common = entry[0], (entry[1] if len(entry) > 1 else "")
    words = " ".join(w for w in (clean(x) for x in lineage[:7]) if w)
    common = clean(common)
    return f"a photo of {words} with common name {common}." if common else f"a photo of {words}."


def label_names() -> list | None:
    """The published Tree of Life names from the Hugging Face cache (downloaded when online),
    or None where they cannot be had."""
    from huggingface_hub import hf_hub_download
    try:
        path = hf_hub_download(NAMES_REPO, NAMES_FILE, repo_type="dataset")
    except Exception as exc:  # offline without a copy, gated, a broken cache: no names, say why
        log.info("Tree of Life names unavailable: %s", exc)
        return None
    return json.loads(Path(path).read_text())


def labels_dir(root: Path, model_id: str, weights: str) -> Path:
    """Where one model's label embeddings live (keyed by its weights: new weights, new labels)."""
    slug = model_id.removeprefix("hf-hub:").replace("/", "--")
    return root / "labels" / f"{slug}-{weights[:12]}"


def labels_root(model_id: str, weights: str, settings=None) -> Path:
    """Where to read a model's label embeddings: the shared derived directory
    (``BIOCLIP_NB_DERIVED_DIR``, from ``prepare --derived-dir --labels``) if it holds them,
    else the user's cache."""
    from ..config import Settings
    settings = settings or Settings.from_env()
    if settings.derived is not None and (labels_dir(settings.derived, model_id, weights) / DONE).is_file():
        return settings.derived
    return settings.cache_dir


def names_digest(names: list) -> str:
    return hashlib.sha256(json.dumps(names).encode()).hexdigest()[:16]


def cached_label_embeddings(directory: Path, names: list) -> np.ndarray | None:
    """The finished label embeddings ``(dim, n)`` float32 for ``names``, or None."""
    done = directory / DONE
    record = directory / "labels.json"
    if not (done.is_file() and record.is_file()):
        return None
    if json.loads(record.read_text()).get("names") != names_digest(names):
        return None                                      # made for another name list
    return np.load(done, mmap_mode="r").astype(np.float32)


def label_embeddings(model, tokenizer, names: list, directory: Path, device: str = "cpu", batch: int = 64,
                     progress: bool = True, on_chunk: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Embed every name's prompt with ``model``'s text tower: unit vectors ``(dim, n)``.

    Resumable: each chunk of :data:`CHUNK` names is saved as it is finished, and a rerun
    starts after the last saved chunk. The result is kept as float16 (``txt_emb_species.npy``)
    with a record of the names it was made for."""
    import torch
    import torch.nn.functional as F
    cached = cached_label_embeddings(directory, names)
    if cached is not None:
        return cached
    directory.mkdir(parents=True, exist_ok=True)
    chunks = range(0, len(names), CHUNK)
    bar = tqdm(total=len(names), desc="Tree of Life labels", unit="name", disable=not progress)
    parts = []
    for start in chunks:
        part = directory / f"chunk-{start // CHUNK:05d}.npy"
        if not part.is_file():
            texts = [prompt(e) for e in names[start:start + CHUNK]]
            out = []
            with torch.no_grad():
                for i in range(0, len(texts), batch):
                    feats = model.encode_text(tokenizer(texts[i:i + batch]).to(device))
                    out.append(F.normalize(feats.float(), dim=-1).cpu().numpy())
            tmp = part.with_suffix(".partial.npy")
            np.save(tmp, np.concatenate(out).astype(np.float16))
            tmp.replace(part)
        parts.append(part)
        bar.update(min(CHUNK, len(names) - start))
        if on_chunk is not None:
            on_chunk(min(start + CHUNK, len(names)), len(names))
    bar.close()
    emb = np.concatenate([np.load(p) for p in parts]).T            # (dim, n), as the published files
    tmp = directory / "txt_emb_species.partial.npy"
    np.save(tmp, np.ascontiguousarray(emb))
    tmp.replace(directory / DONE)
    (directory / "labels.json").write_text(json.dumps({"names": names_digest(names), "count": len(names)}))
    for p in parts:
        p.unlink()
    return emb.astype(np.float32)


class OpenClipClassifier:
    """What :class:`.bioclip.BioClipEncoder` needs of a classifier, for an open_clip model:
    the model, its preprocessing, the label names and their text embeddings (None until
    computed), and a taxa filter with pybioclip's meaning."""

    def __init__(self, model, preprocess, names: list | None, txt_embeddings):
        self.model = model
        self.preprocess = preprocess
        self.txt_names = names
        self.txt_embeddings = txt_embeddings

    def create_taxa_filter(self, rank, user_values: list[str]) -> list[bool]:
        """Labels whose name at ``rank`` (a ``bioclip.predict.Rank``; species as a binomial) is
        one of ``user_values``; ``ValueError`` names any value no label has."""
        depth = RANKS.index(rank.get_label())
        values = [_at(entry[0], depth) for entry in self.txt_names]
        known = set(values)
        unknown = [v for v in user_values if v not in known]
        if unknown:
            raise ValueError(f"Unknown {rank.get_label()} received: {', '.join(unknown)}. "
                             f"Only known {rank.get_label()} may be used.")
        wanted = set(user_values)
        return [v in wanted for v in values]


def _at(lineage: list, depth: int) -> str:
    if depth == 6:
        return f"{lineage[5]} {lineage[6]}"
    return lineage[depth]


def load_classifier(model_id: str, device: str, labels_root: Path, weights: str,
                    compute_labels: bool = False, progress: bool = False) -> OpenClipClassifier:
    """The model from the Hugging Face cache and, if already computed (or ``compute_labels``),
    its Tree of Life label embeddings."""
    import open_clip
    import torch
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(model_id, device=device)
    except (OSError, ValueError, RuntimeError) as exc:
        raise EncoderUnavailableError(f"{display_name(model_id)} could not be loaded: {str(exc)[:200]}") from None
    model.eval()
    names = label_names()
    txt = None
    if names is not None:
        directory = labels_dir(labels_root, model_id, weights)
        emb = (label_embeddings(model, open_clip.get_tokenizer(model_id), names, directory, device, progress=progress)
               if compute_labels else cached_label_embeddings(directory, names))
        txt = torch.from_numpy(np.ascontiguousarray(emb)).to(device) if emb is not None else None
    return OpenClipClassifier(model, preprocess, names, txt)


def missing_labels_reason(model_id: str, names_found: bool) -> str:
    """Why an open_clip model makes no prediction yet, in a sentence for people."""
    if not names_found:
        return (f"the Tree of Life names ({NAMES_REPO}, {NAMES_FILE}) are not in the Hugging Face cache; "
                f"connect once to download them, then run `bioclip-nb prepare --labels`")
    return (f"{display_name(model_id)}'s Tree of Life labels are not prepared yet: `bioclip-nb prepare --labels` "
            "embeds the ~950,000 names once with the model's text tower (hours on a CPU; resumable)")
