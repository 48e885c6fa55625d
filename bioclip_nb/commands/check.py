"""``bioclip-nb check``: one screen saying what works here and, for what does not, the fix.

Each check returns a :class:`Line`; none raises, none downloads, none builds the demo.
"""

from __future__ import annotations

import platform
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .._version import __version__
from ..config import Settings
from ..layout import BIOCLIP2, INDEX_FILE, METADATA_FILE


@dataclass(frozen=True)
class Line:
    """One diagnosis: what was checked, whether it is fine, what was found, and the fix."""

    topic: str
    ok: bool
    found: str
    fix: str = ""
    warning: bool = False        # works, but worth knowing (e.g. no GPU)

    def render(self) -> str:
        mark = "ok  " if self.ok and not self.warning else ("note" if self.ok else "FIX ")
        text = f"{mark}  {self.topic:<12} {self.found}"
        return text + (f"\n{'':18}-> {self.fix}" if self.fix else "")


def python() -> Line:
    v = sys.version_info
    ok = v >= (3, 11)
    return Line("python", ok, f"{platform.python_version()} ({sys.executable}), bioclip-nb {__version__}",
                "" if ok else "bioclip-nb needs Python 3.11 or newer: create the venv with python3.11")


def torch_device() -> Line:
    try:
        import torch
    except ImportError as exc:
        return Line("torch", False, f"not importable ({exc})",
                    "pip install torch (CPU only: pip install torch --index-url https://download.pytorch.org/whl/cpu)")
    if torch.cuda.is_available():
        return Line("torch", True, f"{torch.__version__}; CUDA: {torch.cuda.get_device_name(0)} (searches encode on the GPU)")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return Line("torch", True, f"{torch.__version__}; Apple MPS")
    return Line("torch", True, f"{torch.__version__}; CPU only, {torch.get_num_threads()} threads "
                f"(about 1 s per photo with BioCLIP 2)", warning=True,
                fix="fine for a few searches; for a class, run one bioclip-nb serve on a GPU node (docs/osc/README.md)")


def weights(model: str | None, needed: bool, settings: Settings | None = None) -> Line | list[Line]:
    """The atlas's model (BioCLIP 2 for other atlases: the published atlas and text search use
    it) in the Hugging Face cache; a problem only when the atlas was built with it. A model whose
    Tree of Life labels are embedded here (BioCLIP 2.5) also says whether they are prepared."""
    from huggingface_hub import constants

    from ..encoders import bioclip_available
    from ..layout import display_name, model_spec
    spec = model_spec(model) if model else None
    model_id = model if spec is not None and spec.from_hub else BIOCLIP2
    name, repo = display_name(model_id), model_id.removeprefix("hf-hub:")
    cache = constants.HF_HUB_CACHE
    if bioclip_available(model_id):
        if spec is not None and spec.kind == "openclip":
            return [Line("model", True, f"{name} weights and Tree of Life names are in the Hugging Face cache ({cache})"),
                    labels(model_id, settings or Settings.from_env())]
        return Line("model", True, f"{name} weights and Tree of Life labels are in the Hugging Face cache ({cache})")
    fix = (f"it downloads on first use if huggingface.co is reachable; offline, copy a cache holding {repo} "
           "and imageomics/TreeOfLife-200M and point HF_HUB_CACHE at it")
    if needed:
        return Line("model", False, f"{name} is not in the Hugging Face cache ({cache}), and this atlas needs it", fix)
    return Line("model", True, f"{name} is not in the Hugging Face cache ({cache}); this atlas does not need it",
                fix + " (for the published atlas and text search)", warning=True)


def labels(model_id: str, settings: Settings) -> Line:
    """Whether the Tree of Life label embeddings of an open_clip model are prepared (nothing loaded)."""
    from ..encoders.bioclip import weights_file
    from ..encoders.openclip import DONE, labels_dir, labels_root
    from ..encoders.runtimes import weights_hash
    found = weights_file(model_id)
    digest = weights_hash([found]) if found is not None else ""
    if found is not None and (labels_dir(labels_root(model_id, digest, settings), model_id, digest) / DONE).is_file():
        return Line("labels", True, "Tree of Life labels embedded with this model: predictions at every rank")
    return Line("labels", True, "Tree of Life labels not embedded with this model yet: no predictions (the "
                "neighbours' consensus still shows)", warning=True,
                fix="bioclip-nb prepare --labels embeds them once (hours on a CPU, resumable)")


def atlas(explicit: Path | None, settings: Settings) -> tuple[list[Line], str | None]:
    """The atlas lines and the atlas's model id (None if it cannot be opened)."""
    from ..core.locate import locate_atlas
    from ..errors import AtlasError
    try:
        path = locate_atlas(explicit, settings, build_demo=False)
    except AtlasError:
        demo = settings.demo_dir
        if (demo / INDEX_FILE).is_file():
            path = demo
        else:
            return [Line("atlas", False, "none configured and no demo atlas built yet",
                         "bioclip-nb demo (builds the demo, about 2 minutes), bioclip-nb download (the published "
                         "234M-record atlas), or --atlas DIR / BIOCLIP_NB_ATLAS")], None
    sizes = [f"{rel}: {_size(path / rel)}" for rel in (INDEX_FILE, METADATA_FILE)]
    try:
        from ..core.atlas import Atlas
        with Atlas.open(path, settings=settings) as opened:
            found = f"{path}: {opened.count:,} records, {opened.nlist:,} cells, model {opened.model} ({'; '.join(sizes)})"
            return [Line("atlas", True, found), _derived(opened), full_vectors(opened)], opened.model
    except (AtlasError, OSError, ValueError) as exc:
        return [Line("atlas", False, f"{path}: {exc}", "rebuild it, or download it again with bioclip-nb download")], None


def _derived(opened) -> Line:
    from ..core.quantizer import SIDECAR
    names = {"scope counts": "scope_counts.json", "atlas map": "map-xy.npy"}
    if opened.nlist >= 1024:
        names["HNSW quantizer"] = SIDECAR
    have = [k for k, v in names.items() if opened.derived(v).is_file()]
    if opened.metadata.hit_columns is not None:
        have.append("hit columns")
    missing = [k for k in [*names, "hit columns"] if k not in have]
    if not missing:
        return Line("derived", True, f"prepared: {', '.join(have)}")
    later = ("each is computed on first need" if "hit columns" not in missing else
             "computed on first need, except the hit columns: without them each search looks its rows up in "
             "DuckDB, about 5 ms more")
    return Line("derived", True, f"not yet computed: {', '.join(missing)} ({later})", warning=True,
                fix=f"bioclip-nb prepare --atlas {opened.path} computes them once, so nobody waits for them")


def full_vectors(opened) -> Line:
    """Whether searches of the atlas are ranked exactly (full vectors) or by its PQ codes alone."""
    info = opened.exactness.info()
    if info is None:
        return Line("exactness", True, "no full vectors: results are ranked by 16-byte PQ codes (approximate order "
                    "and similarity)", warning=True,
                    fix=f"bioclip-nb prepare --atlas {opened.path} --embeddings PARQUET_DIR joins the published "
                        "embeddings (TreeOfLife-200M-Embeddings), so searches rank exactly")
    missing = info["records_without_vector"]
    return Line("exactness", True, f"full vectors ({info['source']}): results re-ranked exactly"
                + (f"; {missing:,} records have no vector and keep their PQ estimate" if missing else ""))


def runtime(model: str | None, settings: Settings) -> Line:
    """Which runtime encodes photos for the atlas's model on this CPU (read from the record of
    its equivalence check; nothing is loaded)."""
    from ..encoders.bioclip import weights_file
    from ..encoders.runtimes import current_record, export_dir, weights_hash
    from ..layout import model_spec
    spec = model_spec(model) if model else None
    if spec is None or not spec.from_hub:
        return Line("runtime", True, "numpy (the stand-in model needs no faster runtime)" if spec else
                    "no atlas model to run")
    weights = weights_file(model)
    if weights is None:
        return Line("runtime", True, "torch, once the model's weights are here")
    record = current_record(export_dir(settings.cache_dir, model, weights_hash([weights])))
    if record is None:
        return Line("runtime", True, "torch for now: no faster runtime was checked on this machine yet; the "
                    "dashboard and the server prepare one in the background", warning=True,
                    fix="bioclip-nb prepare --runtime does it now (about a minute)")
    return Line("runtime", True, record.summary())


def disk(settings: Settings) -> Line:
    where = settings.home if settings.home.exists() else settings.home.parent
    while not where.exists():
        where = where.parent
    free = shutil.disk_usage(where).free
    ok = free >= 5 * 2**30
    return Line("disk", ok, f"{free / 2**30:.1f} GB free at {where}",
                "" if ok else "free space, or set BIOCLIP_NB_HOME to a larger disk (the published atlas needs ~6 GB)")


def writable(topic: str, directory: Path, fix: str) -> Line:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory):
            pass
        return Line(topic, True, f"{directory} is writable")
    except OSError as exc:
        return Line(topic, False, f"{directory} is not writable ({exc.strerror or exc})", fix)


def server(settings: Settings) -> Line:
    from ..errors import ServerError
    from ..service.client import Client, resolve
    try:
        url, token = resolve(None, None, settings)
    except ServerError:
        return Line("server", True, "none running (bioclip-nb search starts one; bioclip-nb serve runs one)", warning=True)
    try:
        h = Client(url, token, timeout=5, retries=0).health()
    except ServerError as exc:
        return Line("server", False, str(exc), "bioclip-nb status; restart it with bioclip-nb serve")
    return Line("server", True, f"{url}: {h['atlas']}, model {h['encoder']}")


def run_checks(explicit_atlas: Path | None = None, settings: Settings | None = None, out=print) -> int:
    """Print every check; exit status 1 if any needs fixing."""
    from ..layout import model_spec
    settings = settings or Settings.from_env()
    atlas_lines, model = _safely(lambda: atlas(explicit_atlas, settings), ([], None))
    spec = model_spec(model) if model else None
    checks: list[Callable[[], Line | list[Line]]] = [
        python, torch_device, lambda: weights(model, spec is not None and spec.from_hub, settings),
        lambda: atlas_lines,
        lambda: runtime(model, settings),
        lambda: disk(settings),
        lambda: writable("host policy", settings.state_dir, "set BIOCLIP_NB_STATE_DIR to a directory every kernel can "
                         "write (docs/osc/README.md); without it each process keeps the policy for itself"),
        lambda: writable("image cache", settings.image_cache_dir, "set BIOCLIP_NB_HOME to a writable directory; "
                         "images are otherwise fetched again each time"),
        lambda: server(settings),
    ]
    lines: list[Line] = []
    for check in checks:
        got = _safely(check, None)
        for line in got if isinstance(got, list) else [got]:
            out(line.render())
            lines.append(line)
    bad = [x.topic for x in lines if not x.ok]
    out(f"\n{len(lines) - len(bad)} of {len(lines)} fine" + (f"; fix: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


def _safely(check, default):
    try:
        return check()
    except Exception as exc:  # noqa: BLE001 - a diagnosis must finish; say which check broke
        line = Line("check", False, f"{type(exc).__name__}: {exc}", "report this as a bug")
        return [line] if default is None else ([line], None)


def _size(path: Path) -> str:
    try:
        n = path.stat().st_size
    except OSError:
        return "missing"
    return f"{n / 2**30:.2f} GB" if n >= 2**30 else f"{n / 2**20:.1f} MB"
