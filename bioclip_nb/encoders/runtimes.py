"""Faster CPU runtimes for the visual tower: exported once per model, checked, then used.

On a CPU, encoding the photo is almost all of a search's wait, and PyTorch's eager mode is
not the fastest way to run a ViT there. :func:`prepare_runtime` exports the image encoder to
ONNX once per set of weights and tries each runtime against torch fp32 on :func:`check_images`:

``onnxruntime``
    ONNX Runtime, fp32, every graph optimisation on.
``onnxruntime-int8``
    ONNX Runtime with every weight matrix quantised to int8 (dynamic, per channel, 7-bit
    weights so AVX2's 16-bit pair sums cannot saturate: :func:`quantize_int8`).
``openvino``
    OpenVINO, fp32, tuned for latency.

A runtime *passes* when every check image's embedding has cosine >= :data:`CHECK_COSINE` to
torch's and the top-1 species is the same. The record (``runtime.json``: each candidate's worst
cosine, top-1 agreement, seconds per photo, and the chosen one) is written beside the export,
so ``runtime="auto"`` uses the fastest runtime that passed on this machine, and one that failed
is never used: the encoder stays on torch and says why.

The export lives in ``$BIOCLIP_NB_HOME/cache/runtimes/<model>-<weights hash>/``; new weights
(a new blob in the Hugging Face cache) get a new directory, and a record made on another CPU
or with other library versions is checked again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import platform
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..cache import write_quietly

#: Runtimes that run the exported visual tower, fastest first on this project's CPUs.
FAST_RUNTIMES = ("onnxruntime-int8", "openvino", "onnxruntime")
#: Everything ``load_encoder(runtime=...)`` accepts.
RUNTIMES = ("auto", "torch", *FAST_RUNTIMES)
#: The worst cosine to torch fp32 a runtime may have on the check images.
CHECK_COSINE = 0.995
#: Photos per forward pass on a CPU: one. On 2 cores, batches of 4 or 8 took from 5% less to
#: 14% more per photo than single photos, varying by runtime and run (docs/benchmarks.md,
#: "Encoder runtimes"): one core's worth of work per photo already fills the machine.
CPU_BATCH = 1
#: Bumped when the export or the check changes, so old records are redone
#: (2: int8 for every weight matrix, 7-bit weights).
FORMAT = 2
RECORD = "runtime.json"
Visual = Callable[[np.ndarray], np.ndarray]      # (n, 3, H, W) float32 pixels -> (n, dim) features


@dataclass
class Candidate:
    """How one runtime did against torch fp32 on the check images."""

    name: str
    passed: bool
    worst_cosine: float | None = None
    top1_agreement: str | None = None        # "8/8", or None for a model without labels
    seconds_per_photo: float | None = None
    error: str | None = None


@dataclass
class RuntimeRecord:
    """What :func:`prepare_runtime` found, written to ``runtime.json`` beside the export."""

    model_id: str
    weights: str
    machine: str
    versions: dict
    torch_seconds: float
    candidates: list[Candidate]
    chosen: str
    export_seconds: float
    disk_bytes: int
    format: int = FORMAT
    checked_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    def candidate(self, name: str) -> Candidate | None:
        """The check of runtime ``name`` (None if it was not tried)."""
        return next((c for c in self.candidates if c.name == name), None)

    def summary(self) -> str:
        """One line: what runs, and what it was measured against."""
        if self.chosen == "torch":
            failed = "; ".join(f"{c.name}: {c.error or 'not equivalent'}" for c in self.candidates if not c.passed)
            return f"torch (no faster runtime passed the check{': ' + failed if failed else ''})"
        best = self.candidate(self.chosen)
        return (f"{self.chosen}: {best.seconds_per_photo:.3g} s per photo against torch's {self.torch_seconds:.3g} s, "
                f"worst cosine {best.worst_cosine:.4f}, top-1 species {best.top1_agreement or 'n/a'}")

    @classmethod
    def read(cls, path: Path) -> RuntimeRecord | None:
        """The record at ``path``, or None if missing or unreadable."""
        try:
            raw = json.loads(path.read_text())
            raw["candidates"] = [Candidate(**c) for c in raw["candidates"]]
            return cls(**raw)
        except (OSError, ValueError, TypeError, KeyError):
            return None


# --------------------------------------------------------------------------- where and whether
def default_runtime() -> str:
    """``$BIOCLIP_NB_RUNTIME``, or ``auto``."""
    from ..config import ENV_RUNTIME
    return (os.environ.get(ENV_RUNTIME) or "auto").strip().lower()


def machine_key() -> str:
    """The CPU this record was measured on (a shared home may serve several kinds of node)."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{platform.machine()} {model or platform.processor()} x{os.cpu_count()}"


def library_versions() -> dict:
    """The versions a record depends on (other versions are checked again)."""
    import torch
    out = {"torch": torch.__version__}
    for name in ("onnxruntime", "openvino"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = None
    return out


def export_dir(cache_dir: Path, model_id: str, weights: str) -> Path:
    """Where the export of ``model_id`` with weights ``weights`` (a content hash) lives."""
    slug = model_id.removeprefix("hf-hub:").replace("/", "--")
    return cache_dir / "runtimes" / f"{slug}-{weights[:16]}"


def current_record(directory: Path) -> RuntimeRecord | None:
    """The record in ``directory`` if it was made on this CPU with these libraries."""
    record = RuntimeRecord.read(directory / RECORD)
    if record is None or record.format != FORMAT or record.machine != machine_key():
        return None
    if record.versions != library_versions():
        return None
    return record


# --------------------------------------------------------------------------- the check images
def check_images(n: int = 8, seed: int = 2026) -> list[Image.Image]:
    """A fixed set of varied pictures (shapes, gradients, texture) for the equivalence check."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        size = (int(rng.integers(200, 640)), int(rng.integers(200, 640)))
        y, x = np.mgrid[0:size[1], 0:size[0]] / max(size)
        base = np.stack([np.sin((x * rng.uniform(1, 9)) + c) * 0.5 + 0.5 for c in rng.uniform(0, 6, 3)], -1)
        base = base * (1 - i / (2 * n)) + rng.random((size[1], size[0], 3)) * (i / (2 * n))
        img = Image.fromarray((base * 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(2, 7))):
            x0, y0 = rng.integers(0, size[0] - 20), rng.integers(0, size[1] - 20)
            box = (int(x0), int(y0), int(x0 + rng.integers(10, size[0] // 2)), int(y0 + rng.integers(10, size[1] // 2)))
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
        out.append(img)
    return out


# --------------------------------------------------------------------------- export
def export_onnx(visual, path: Path, image_size: int) -> None:
    """The visual tower as ONNX (fp32, any batch size); weights past 2 GB go to a data file."""
    import torch
    path.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(1, 3, image_size, image_size)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)    # its fused kernel has no ONNX form
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(visual.float().eval(), (dummy,), str(path), input_names=["pixels"],
                              output_names=["features"], opset_version=17, dynamo=False, verbose=False,
                              dynamic_axes={"pixels": {0: "batch"}, "features": {0: "batch"}})
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def quantize_int8(src: Path, dst: Path) -> None:
    """``src`` with every weight matrix quantised to int8: dynamic (activations quantised per
    call), per output channel, with 7-bit weights (``reduce_range``).

    The 7 bits matter on CPUs without VNNI (AVX2 only, like this project's): ONNX Runtime
    multiplies uint8 by int8 with ``vpmaddubsw``, whose 16-bit pair sums saturate with full 8-bit
    weights. Saturated, a random ViT-L/14's features fell to cosine 0.980 against fp32 (0.995 with
    the MLPs alone quantised); with 7-bit weights every matrix quantised keeps 0.9997."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    large = sum(p.stat().st_size for p in src.parent.iterdir() if p.is_file()) > 1_800_000_000  # torch writes a file per big tensor
    logging.disable(logging.WARNING)          # its advice to pre-process goes to the root logger
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # MatMul alone names them all: the quantiser turns the constant-weight Gemms (the
            # attention's output projections) into MatMuls first.
            quantize_dynamic(str(src), str(dst), op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8,
                             per_channel=True, reduce_range=True, use_external_data_format=large)
    finally:
        logging.disable(logging.NOTSET)


# --------------------------------------------------------------------------- running
def open_visual(name: str, directory: Path, threads: int | None = None) -> Visual:
    """A callable running the export in ``directory`` with runtime ``name``."""
    threads = threads or os.cpu_count() or 1
    if name in ("onnxruntime", "onnxruntime-int8"):
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        model = directory / ("visual-int8.onnx" if name == "onnxruntime-int8" else "visual.onnx")
        session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        return lambda pixels: session.run(None, {"pixels": np.ascontiguousarray(pixels, np.float32)})[0]
    if name == "openvino":
        import openvino as ov
        # f32 stated: on CPUs with native bfloat16 (AVX512-BF16, AMX) OpenVINO computes in bf16
        # unless told, and this runtime promises torch's float32 embeddings.
        compiled = ov.Core().compile_model(str(directory / "visual.onnx"), "CPU",
                                           {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
                                            "INFERENCE_PRECISION_HINT": "f32"})
        request = compiled.create_infer_request()
        return lambda pixels: np.array(request.infer({0: np.ascontiguousarray(pixels, np.float32)})[0])
    raise ValueError(f"unknown runtime {name!r}: use one of {', '.join(RUNTIMES)}")


def seconds_per_photo(visual: Visual, pixels: np.ndarray, repeat: int = 5) -> float:
    """The fastest of ``repeat`` single-photo passes, after a warm-up pass (the minimum: other
    work on the machine only ever adds time, so it is the steadiest basis for a choice)."""
    visual(pixels[:1])
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        visual(pixels[:1])
        times.append(time.perf_counter() - t0)
    return min(times)


def worst_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The smallest row-wise cosine between two feature matrices."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(axis=1).min())


@contextlib.contextmanager
def build_lock(directory: Path, wait: bool) -> Iterator[bool]:
    """An exclusive lock on the export directory (True if held): one builder per directory."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def check_candidate(name: str, directory: Path, pixels: np.ndarray, reference: np.ndarray,
                    top1: Callable[[np.ndarray], np.ndarray] | None) -> Candidate:
    """Run ``name`` on the check pixels and compare it with torch's features."""
    try:
        visual = open_visual(name, directory)
        feats = np.concatenate([visual(pixels[i:i + 1]) for i in range(len(pixels))])
    except Exception as exc:  # any runtime or export failure means: not this runtime
        return Candidate(name, False, error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}")
    cos = worst_cosine(feats, reference)
    agree = None
    same = True
    if top1 is not None:
        hits = int((top1(feats) == top1(reference)).sum())
        agree, same = f"{hits}/{len(pixels)}", hits == len(pixels)
    passed = cos >= CHECK_COSINE and same
    return Candidate(name, passed, round(cos, 6), agree, seconds_per_photo(visual, pixels) if passed else None,
                     None if passed else f"worst cosine {cos:.4f}, top-1 {agree or 'n/a'}")


def prepare_runtime(model_id: str, weights: str, visual, image_size: int, pixels: np.ndarray,
                    top1: Callable[[np.ndarray], np.ndarray] | None, directory: Path,
                    log: Callable[[str], None] = lambda _m: None,
                    runtimes: tuple[str, ...] = FAST_RUNTIMES) -> RuntimeRecord:
    """Export ``visual`` into ``directory``, check and time each runtime, write the record.

    ``pixels`` are the preprocessed check images; ``top1`` maps features to top-1 species
    indexes (None for a model without labels)."""
    import torch
    t0 = time.perf_counter()
    onnx_path = directory / "visual.onnx"
    if not onnx_path.is_file():
        log(f"exporting {model_id}'s image encoder to ONNX")
        tmp = directory / ".export"
        shutil.rmtree(tmp, ignore_errors=True)
        export_onnx(visual, tmp / "visual.onnx", image_size)
        for part in tmp.iterdir():
            os.replace(part, directory / part.name)
        tmp.rmdir()
    old = RuntimeRecord.read(directory / RECORD)
    if old is not None and old.format != FORMAT:
        (directory / "visual-int8.onnx").unlink(missing_ok=True)     # quantised another way
    if "onnxruntime-int8" in runtimes and not (directory / "visual-int8.onnx").is_file():
        log("quantising its weights to int8")
        with contextlib.suppress(Exception):      # recorded as a failed candidate below
            quantize_int8(onnx_path, directory / ".visual-int8.onnx")
            os.replace(directory / ".visual-int8.onnx", directory / "visual-int8.onnx")
    export_seconds = time.perf_counter() - t0
    with torch.no_grad():
        reference = torch.cat([visual(torch.from_numpy(pixels[i:i + 1])) for i in range(len(pixels))]).float().numpy()
    torch_seconds = seconds_per_photo(lambda p: visual(torch.from_numpy(p)), pixels)
    candidates = []
    for name in runtimes:
        log(f"checking {name} against torch on {len(pixels)} images")
        candidates.append(check_candidate(name, directory, pixels, reference, top1))
    passed = [c for c in candidates if c.passed and c.seconds_per_photo < torch_seconds]
    chosen = min(passed, key=lambda c: c.seconds_per_photo).name if passed else "torch"
    record = RuntimeRecord(model_id, weights, machine_key(), library_versions(), round(torch_seconds, 4),
                           candidates, chosen, round(export_seconds, 2),
                           sum(p.stat().st_size for p in directory.glob("visual*")))
    write_quietly(directory / RECORD, json.dumps(asdict(record), indent=1).encode())
    log(record.summary())
    return record


def weights_hash(files: list[Path]) -> str:
    """A content hash of the weight files: the Hugging Face cache's blob names are already
    sha256 digests; other files are hashed by name, size and modification time."""
    h = hashlib.sha256()
    for f in files:
        real = f.resolve()
        st = real.stat()
        h.update(f"{real.name}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()
