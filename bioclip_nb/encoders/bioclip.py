"""BioCLIP 2 (and BioCLIP) through pybioclip.

One vision forward pass per image gives both the search embedding and the taxonomic
prediction at every rank: the unit-norm image features are multiplied with the Tree of Life
text embeddings once, and the species probabilities are summed into each rank.

Text-embedding columns that are all zeros (about 1.8% of the published file) are masked, so
a prediction never lands on them, and empty ranks (``""``) are reported as missing.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..errors import EncoderUnavailableError
from ..layout import BIOCLIP2, PIXEL_MODEL, RANKS, Rank, display_name
from ..names import clean, scientific_name
from . import runtimes
from .base import Encoding, Prediction
from .within import Within

log = logging.getLogger("bioclip_nb.encoders")

WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
                "open_clip_pytorch_model.bin")


# --------------------------------------------------------------------------- labels
class TreeOfLifeLabels:
    """The Tree of Life label set, grouped by rank for fast probability sums."""

    def __init__(self, names: list, embeddings: np.ndarray):
        if embeddings.ndim != 2 or embeddings.shape[1] != len(names):
            raise EncoderUnavailableError(
                f"Tree of Life labels do not match: {len(names)} names for text embeddings of shape {embeddings.shape}")
        self.valid = np.abs(embeddings).sum(axis=0) > 0          # all-zero columns are masked
        self.names = names
        self.codes: list[np.ndarray] = []
        self.groups: list[list[tuple[str | None, ...]]] = []
        lineages = [tuple(clean(v) for v in entry[0][:7]) for entry in names]
        for depth in range(len(RANKS)):
            keys: dict[tuple, int] = {}
            codes = np.empty(len(names), dtype=np.int64)
            for i, lin in enumerate(lineages):
                codes[i] = keys.setdefault(lin[:depth + 1], len(keys))
            self.codes.append(codes)
            self.groups.append(list(keys))
        self.common = [clean(entry[1]) if len(entry) > 1 else None for entry in names]

    def top(self, probs: np.ndarray, rank: Rank, k: int) -> tuple[Prediction, ...]:
        """Top ``k`` taxa at ``rank`` from species probabilities."""
        depth = rank.index
        sums = np.bincount(self.codes[depth], weights=probs, minlength=len(self.groups[depth]))
        order = np.argsort(-sums, kind="stable")[:k]
        out = []
        for g in order:
            if sums[g] <= 0:
                break
            lineage = self.groups[depth][g]
            if rank is Rank.SPECIES:
                genus, epithet = lineage[5], lineage[6]
                name = scientific_name(genus, epithet) if epithet else None
                best = int(np.argmax(np.where(self.codes[depth] == g, probs, -1)))
                common = self.common[best]
            else:
                name, common = lineage[depth], None
            out.append(Prediction(rank, name, lineage, float(sums[g]), common))
        return tuple(out)


# --------------------------------------------------------------------------- BioCLIP
class BioClipEncoder:
    """BioCLIP 2 (or any Tree of Life model pybioclip supports). Load with :meth:`load`."""

    def __init__(self, model_id: str, classifier, labels: TreeOfLifeLabels | None, device: str,
                 weights: str = ""):
        import torch
        self.model_id = model_id
        self.weights = weights                      # content hash of the weight file (keys the export)
        self.device = device
        self._clf = classifier
        # pybioclip wraps the model in torch.compile; call the original module directly so the
        # first query does not wait for a compilation (and CPUs without a compiler still work).
        self.model = getattr(classifier.model, "_orig_mod", classifier.model)
        self.model.eval()
        self.preprocess = classifier.preprocess
        self.labels = labels
        self.dim = int(self.model.visual.output_dim)
        txt = classifier.txt_embeddings if labels is not None else None
        self._txt = txt.float() if txt is not None else None
        self._valid = torch.from_numpy(labels.valid).to(device) if labels is not None else None
        self._lock = threading.Lock()
        self._tokenizer = None
        self._masks: dict[tuple, object] = {}       # restriction -> labels kept (see ``predict``)
        self._visual: runtimes.Visual | None = None  # None: torch's eager visual tower
        self.runtime = "torch"
        self.runtime_note = ""                       # why the runtime is what it is, for people
        self.runtime_ready = threading.Event()       # set once the runtime is settled
        self.runtime_ready.set()
        self.labels_note = ""                        # why there are no predictions (labels not prepared)
        self._pending_labels: tuple[Path | None, str] | None = None   # where labels may yet appear (see _adopt_labels)

    @classmethod
    def load(cls, model_id: str = BIOCLIP2, device: str = "auto", runtime: str = "auto",
             background: bool = True) -> BioClipEncoder:
        """Load weights and Tree of Life labels (from the Hugging Face cache when offline), then
        choose the runtime of the visual tower (see :meth:`use_runtime`)."""
        device = pick_device(device)
        weights = _require_weights(model_id)
        try:
            from bioclip import TreeOfLifeClassifier
            clf = TreeOfLifeClassifier(model_str=model_id, device=device)
        except (OSError, ValueError, RuntimeError) as exc:
            raise EncoderUnavailableError(_unavailable(model_id, f"its Tree of Life label files could not be loaded ({_short(exc)})")) from None
        txt = clf.txt_embeddings.detach().cpu().numpy()
        labels = TreeOfLifeLabels(clf.txt_names, txt)
        encoder = cls(model_id, clf, labels, device, runtimes.weights_hash([weights]))
        encoder.use_runtime(runtime, background=background)
        return encoder

    @classmethod
    def load_open_clip(cls, model_id: str, device: str = "auto", runtime: str = "auto", background: bool = True,
                       compute_labels: bool = False, labels_root: Path | None = None,
                       progress: bool = False) -> BioClipEncoder:
        """A Tree of Life model pybioclip does not serve (BioCLIP 2.5), through open_clip, with
        the label embeddings computed once by its text tower (see :mod:`.openclip`): read from
        ``labels_root`` (default: the shared derived directory if it holds them, else the user's
        cache), or computed there now with ``compute_labels``."""
        from . import openclip
        device = pick_device(device)
        digest = runtimes.weights_hash([_require_weights(model_id)])
        root = labels_root or openclip.labels_root(model_id, digest)
        clf = openclip.load_classifier(model_id, device, root, digest, compute_labels, progress)
        labels = (TreeOfLifeLabels(clf.txt_names, clf.txt_embeddings.cpu().numpy())
                  if clf.txt_embeddings is not None else None)
        encoder = cls(model_id, clf, labels, device, digest)
        if labels is None:
            encoder.labels_note = openclip.missing_labels_reason(model_id, clf.txt_names is not None)
            if clf.txt_names is not None:
                encoder._pending_labels = (labels_root, digest)
        encoder.use_runtime(runtime, background=background)
        return encoder

    # ----------------------------------------------------------------------- runtime
    def use_runtime(self, runtime: str = "auto", background: bool = True) -> str:
        """Run the visual tower with ``runtime`` (see :mod:`.runtimes`); returns the one in use.

        ``auto`` takes the fastest runtime that passed this machine's equivalence check. When
        none was checked yet, ``background=True`` prepares one in a thread (torch answers
        meanwhile; ``runtime_ready`` is set when done), otherwise torch is used. A named runtime
        is prepared now if needed; one that fails its check leaves torch in use, with the reason
        in ``runtime_note``. GPUs keep torch."""
        if runtime not in runtimes.RUNTIMES:
            raise ValueError(f"unknown runtime {runtime!r}: use one of {', '.join(runtimes.RUNTIMES)}")
        if runtime == "torch":
            return self._switch(None, "torch", "torch, as asked")
        if self.device != "cpu":
            if runtime != "auto":
                raise ValueError(f"the {runtime} runtime runs on CPUs; on {self.device}, use torch")
            return self._switch(None, "torch", f"torch on {self.device}")
        record = runtimes.current_record(self.export_dir)
        if record is None and runtime == "auto":
            if not background:
                return self._switch(None, "torch", "torch: no faster runtime is prepared on this machine yet "
                                    "(`bioclip-nb prepare --runtime` makes one, about a minute)")
            self.runtime_ready.clear()
            self.runtime_note = "torch while a faster runtime is prepared and checked in the background"
            threading.Thread(target=self._prepare_then_use, name="bioclip-nb runtime", daemon=True).start()
            return "torch"
        if record is None:
            record = self.prepare_runtime()
        return self._apply(record, runtime)

    @property
    def export_dir(self) -> Path:
        """Where this model's exported visual tower and its check record live: the shared
        prepared directory (``BIOCLIP_NB_DERIVED_DIR``, from ``prepare --derived-dir --runtime``)
        if it holds a record made on this kind of machine, else the user's cache."""
        from ..config import Settings
        settings = Settings.from_env()
        if settings.derived is not None:
            shared = runtimes.export_dir(settings.derived, self.model_id, self.weights)
            if runtimes.current_record(shared) is not None:
                return shared
        return runtimes.export_dir(settings.cache_dir, self.model_id, self.weights)

    def prepare_runtime(self, log_to=log.info, cache_dir: Path | None = None) -> runtimes.RuntimeRecord:
        """Export the visual tower, check and time each runtime against torch (once per weights,
        machine and library versions; another process building it is waited for). ``cache_dir``:
        where to keep it (``prepare --derived-dir``), instead of :attr:`export_dir`."""
        import torch
        directory = self.export_dir if cache_dir is None else runtimes.export_dir(cache_dir, self.model_id, self.weights)
        with runtimes.build_lock(directory, wait=True):
            record = runtimes.current_record(directory)
            if record is not None:
                return record
            pixels = torch.stack([self.preprocess(img.convert("RGB")) for img in runtimes.check_images()]).numpy()
            return runtimes.prepare_runtime(self.model_id, self.weights, self.model.visual, pixels.shape[-1], pixels,
                                            self._top1 if self.labels is not None else None, directory, log_to)

    def _top1(self, feats: np.ndarray) -> np.ndarray:
        """The top-1 species label of each row of features (what the check compares)."""
        import torch
        f = torch.nn.functional.normalize(torch.from_numpy(feats).float(), dim=-1).to(self.device)
        return self._logits(f, self._valid).argmax(dim=-1).cpu().numpy()

    def _logits(self, feats, allowed):
        """The Tree of Life logits of unit features, labels outside ``allowed`` at -inf."""
        import torch
        with torch.no_grad():
            logits = self.model.logit_scale.exp().float() * feats @ self._txt
            return logits.masked_fill(~allowed, float("-inf"))

    def _prepare_then_use(self) -> None:
        try:
            self._apply(self.prepare_runtime(), "auto")
        except Exception as exc:  # a failed export never stops the encoder: torch goes on
            self._switch(None, "torch", f"torch: preparing a faster runtime failed ({_short(exc)})")
        finally:
            self.runtime_ready.set()

    def _apply(self, record: runtimes.RuntimeRecord, runtime: str) -> str:
        name = record.chosen if runtime == "auto" else runtime
        if name == "torch":
            return self._switch(None, "torch", record.summary())
        checked = record.candidate(name)
        if checked is None or not checked.passed:
            why = checked.error if checked is not None else "it was not checked"
            log.warning("%s did not pass the equivalence check (%s); using torch", name, why)
            return self._switch(None, "torch", f"torch: {name} did not pass the equivalence check ({why})")
        try:
            visual = runtimes.open_visual(name, self.export_dir)
        except Exception as exc:  # a broken or missing export: torch, and say so
            return self._switch(None, "torch", f"torch: the {name} export could not be opened ({_short(exc)})")
        return self._switch(visual, name, record.summary() if runtime == "auto" else
                            f"{name} (asked for): {checked.seconds_per_photo:.3g} s per photo against torch's "
                            f"{record.torch_seconds:.3g} s, worst cosine {checked.worst_cosine:.4f}")

    def _switch(self, visual: runtimes.Visual | None, name: str, note: str) -> str:
        with self._lock:
            self._visual, self.runtime, self.runtime_note = visual, name, note
        return name

    def _features(self, images: list[Image.Image]):
        import torch
        import torch.nn.functional as F
        batch = torch.stack([self.preprocess(img.convert("RGB")) for img in images])
        with self._lock, torch.no_grad():
            if self._visual is None:
                feats = self.model.encode_image(batch.to(self.device))
            else:
                feats = torch.from_numpy(self._visual(batch.numpy()))
        return F.normalize(feats.float(), dim=-1)

    def _adopt_labels(self) -> None:
        """Take up label embeddings prepared since this encoder was loaded (``prepare --labels``
        run elsewhere, while a dashboard or a server kept this encoder): the next prediction has
        them, with no restart. A few file checks per call, only while they are missing."""
        pending = self._pending_labels
        if pending is None:
            return
        import torch

        from . import openclip
        root, digest = pending
        directory = openclip.labels_dir(root or openclip.labels_root(self.model_id, digest), self.model_id, digest)
        emb = openclip.cached_label_embeddings(directory, self._clf.txt_names)
        if emb is None:
            return
        txt = torch.from_numpy(np.ascontiguousarray(emb)).to(self.device)
        labels = TreeOfLifeLabels(self._clf.txt_names, emb)
        with self._lock:
            self._clf.txt_embeddings = txt
            self._txt, self._valid = txt.float(), torch.from_numpy(labels.valid).to(self.device)
            self.labels, self.labels_note, self._pending_labels = labels, "", None

    def _predictions(self, feats, k: int, within: Within | None = None) -> list[dict[Rank, tuple[Prediction, ...]]]:
        import torch
        self._adopt_labels()
        if self.labels is None:
            return [{} for _ in range(len(feats))]
        allowed = self._valid if within is None else self._valid & self._keep(within)
        with torch.no_grad():
            probs = torch.softmax(self._logits(feats, allowed), dim=-1).cpu().numpy().astype(np.float64)
        return [{rank: self.labels.top(p, rank, k) for rank in Rank} for p in probs]

    def predict(self, embedding: np.ndarray, within: Within | None = None,
                k: int = 5) -> dict[Rank, tuple[Prediction, ...]]:
        """Predictions at every rank from an embedding (no forward pass), over the whole Tree of
        Life or only ``within`` (a taxon or a checklist). Raises ``ValueError`` for names the
        labels do not hold."""
        import torch
        feats = torch.from_numpy(np.asarray(embedding, dtype=np.float32).reshape(1, -1)).to(self.device)
        return self._predictions(feats, k, within)[0]

    def _keep(self, within: Within):
        """The labels inside ``within`` (pybioclip's taxa filter), cached per restriction."""
        import torch
        from bioclip.predict import Rank as TolRank
        key = (within.rank, within.names)
        with self._lock:
            mask = self._masks.get(key)
        if mask is None:
            try:
                keep = self._clf.create_taxa_filter(TolRank[within.rank.name], list(within.names))
            except ValueError as exc:
                raise ValueError(f"{display_name(self.model_id)}'s Tree of Life labels do not hold every name in "
                                 f"{within.label}: {exc}") from None
            mask = torch.from_numpy(np.array(keep, dtype=bool)).to(self.device)
            if not bool((mask & self._valid).any()):
                raise ValueError(f"no label of {display_name(self.model_id)} lies within {within.label}")
            with self._lock:
                if len(self._masks) >= 16:
                    self._masks.pop(next(iter(self._masks)))
                self._masks[key] = mask
        return mask

    def encode(self, image: Image.Image, k: int = 5) -> Encoding:
        """Embedding and predictions at every rank from one forward pass."""
        return self.encode_many([image], k=k)[0]

    @property
    def batch_size(self) -> int:
        """Images per forward pass: :data:`.runtimes.CPU_BATCH` on a CPU (measured), 16 on a GPU."""
        return runtimes.CPU_BATCH if self.device == "cpu" else 16

    def encode_many(self, images: list[Image.Image], k: int = 5, batch_size: int | None = None,
                    progress: bool = False) -> list[Encoding]:
        """:meth:`encode` for many images, in batches (:attr:`batch_size` by default), with an
        optional progress bar."""
        batch_size = batch_size or self.batch_size
        out: list[Encoding] = []
        for start in tqdm(range(0, len(images), batch_size), disable=not progress, desc="encoding", unit="batch"):
            feats = self._features(images[start:start + batch_size])
            preds = self._predictions(feats, k)
            emb = feats.cpu().numpy().astype(np.float32)
            out.extend(Encoding(e, self.model_id, p, self.labels_note) for e, p in zip(emb, preds))
        return out

    def embed(self, images: list[Image.Image]) -> np.ndarray:
        """Unit embeddings only ``(n, dim)``, for building atlases."""
        return self._features(images).cpu().numpy().astype(np.float32)

    def encode_text(self, text: str) -> np.ndarray:
        """A name or description, through pybioclip's tokenizer and prompt templates."""
        import torch
        import torch.nn.functional as F
        from bioclip.predict import OPENA_AI_IMAGENET_TEMPLATE, create_bioclip_tokenizer
        text = (text or "").strip()
        if not text:
            raise ValueError("the text query is empty; type a name or a description")
        if self._tokenizer is None:
            self._tokenizer = create_bioclip_tokenizer(self.model_id)
        tokens = self._tokenizer([t(text) for t in OPENA_AI_IMAGENET_TEMPLATE]).to(self.device)
        with self._lock, torch.no_grad():
            feats = F.normalize(self.model.encode_text(tokens).float(), dim=-1).mean(dim=0)
        return (feats / feats.norm()).cpu().numpy().astype(np.float32)


def pick_device(device: str = "auto") -> str:
    """``auto`` -> cuda, then mps, then cpu."""
    if device != "auto":
        return device
    import torch
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def _require_weights(model_id: str) -> Path:
    """The weights file, found before open_clip loads it: fail early and clearly when it is not
    here (open_clip would build a random model)."""
    from huggingface_hub import hf_hub_download
    repo = model_id.removeprefix("hf-hub:")
    try:
        hf_hub_download(repo, "open_clip_config.json")
    except Exception as exc:  # huggingface_hub raises many kinds (offline, HTTP, missing entry)
        raise EncoderUnavailableError(_unavailable(model_id, f"its configuration could not be loaded ({_short(exc)})")) from None
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError
    for name in WEIGHT_FILES:
        try:
            return Path(hf_hub_download(repo, name))
        except (EntryNotFoundError, LocalEntryNotFoundError):  # not under this name: try the next
            continue
        except Exception as exc:  # present but unreadable (permissions, a broken cache): say so
            raise EncoderUnavailableError(
                _unavailable(model_id, f"its weights file {name} could not be read ({_short(exc)})")) from None
    raise EncoderUnavailableError(_unavailable(model_id, "no weights file was found"))


def _unavailable(model_id: str, why: str) -> str:
    return (f"The model {model_id} is not available here: {why}. Connect to the internet once so "
            "it can be downloaded (about 1.7 GB), or point HF_HOME (or HF_HUB_CACHE) at a copy of "
            "the Hugging Face cache that holds it. Without it, atlases built with "
            f"{PIXEL_MODEL} still work.")


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def weights_file(model_id: str = BIOCLIP2) -> Path | None:
    """The model's weights file in the local Hugging Face cache, or None (no network)."""
    from huggingface_hub import try_to_load_from_cache
    repo = model_id.removeprefix("hf-hub:")
    for name in WEIGHT_FILES:
        found = try_to_load_from_cache(repo, name)
        if isinstance(found, str):
            return Path(found)
    return None


def weights_cached(model_id: str = BIOCLIP2) -> bool:
    """Whether BioCLIP's weights and Tree of Life labels are already in the local Hugging Face
    cache (no network is touched: 'auto' model choices must not wait on a hub)."""
    from bioclip.predict import get_tol_repo_id
    from huggingface_hub import try_to_load_from_cache

    def cached(repo: str, name: str, repo_type: str = "model") -> bool:
        return isinstance(try_to_load_from_cache(repo, name, repo_type=repo_type), str)

    from ..layout import model_spec
    from .openclip import NAMES_FILE, NAMES_REPO
    repo = model_id.removeprefix("hf-hub:")
    spec = model_spec(model_id)
    if spec is not None and spec.kind == "openclip":      # its label embeddings are made here (prepare --labels)
        return (cached(repo, "open_clip_config.json") and any(cached(repo, w) for w in WEIGHT_FILES)
                and cached(NAMES_REPO, NAMES_FILE, "dataset"))
    try:
        labels = get_tol_repo_id(model_id)
    except ValueError:
        return False
    return (cached(repo, "open_clip_config.json") and any(cached(repo, w) for w in WEIGHT_FILES)
            and cached(labels, "embeddings/txt_emb_species.npy", "dataset")
            and cached(labels, "embeddings/txt_emb_species.json", "dataset"))
