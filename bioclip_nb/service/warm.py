"""What the server keeps warm: its atlases (one or several, each under a key), one encoder per
model (the first atlas's loaded at start, in the background; any other's on first use), one image
fetcher for the whole machine, and the encodings of recent queries."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

from ..config import Settings
from ..core.atlas import Atlas
from ..core.locate import atlas_keys
from ..encoders import Encoder, Encoding, EncodingCache, load_encoder
from ..errors import EncoderUnavailableError
from ..images.fetch import ImageFetcher, machine_fetcher
from .batcher import BatchStats, EncodeBatcher


class ModelSlot:
    """One model's encoder, loaded once on a background thread, and its batcher. Thread-safe."""

    def __init__(self, model: str, device: str = "auto", runtime: str | None = None, batch_window: float | None = None,
                 on_done=None):
        self.model = model
        self.device = device
        self.runtime_choice = runtime          # asked for: auto, torch, or a named runtime
        self.batch_window = batch_window
        self._on_done = on_done or (lambda: None)
        self._lock = threading.Lock()
        self._started = False
        self._encoder: Encoder | None = None
        self._batcher: EncodeBatcher | None = None
        self._error: str | None = None
        self._loaded = threading.Event()
        self.load_seconds: float | None = None

    def start(self) -> None:
        """Begin loading (once; later calls do nothing)."""
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._load, name=f"bioclip-nb-load {self.model}", daemon=True).start()

    def _load(self) -> None:
        t0 = time.perf_counter()
        try:
            encoder = load_encoder(self.model, device=self.device, runtime=self.runtime_choice)
            with self._lock:
                self._encoder = encoder
                window = self.batch_window if self.batch_window is not None else default_window(encoder)
                # a window of 0 turns batching off: one forward pass per request, in arrival order
                self._batcher = EncodeBatcher(encoder, window=max(0.0, window), max_batch=16 if window > 0 else 1)
        except EncoderUnavailableError as exc:
            self._error = str(exc)
        except Exception as exc:  # noqa: BLE001 - reported by /health and every encode, never a crash
            self._error = f"the encoder could not be loaded: {type(exc).__name__}: {exc}"
        finally:
            self.load_seconds = time.perf_counter() - t0
            self._on_done()
            self._loaded.set()

    @property
    def state(self) -> str:
        """``idle`` (not asked for yet), ``loading``, ``ready`` or ``unavailable``."""
        if not self._started:
            return "idle"
        if not self._loaded.is_set():
            return "loading"
        return "ready" if self._encoder is not None else "unavailable"

    @property
    def loading(self) -> bool:
        return self._started and not self._loaded.is_set()

    @property
    def error(self) -> str | None:
        return self._error

    @property
    def runtime_state(self) -> dict:
        """How the loaded encoder runs (``runtime``, and ``runtime_note`` saying why); None until loaded."""
        encoder = self._encoder
        if encoder is None:
            return {"runtime": None, "runtime_note": None}
        return {"runtime": encoder.runtime, "runtime_note": encoder.runtime_note}

    def encoder(self, timeout: float | None = None) -> Encoder:
        """The loaded encoder (starts the load if need be, then waits); raises ``EncoderUnavailableError``."""
        self.start()
        if not self._loaded.wait(timeout):
            raise TimeoutError(f"the model {self.model} is still loading; try again in a moment")
        if self._encoder is None:
            raise EncoderUnavailableError(self._error or "no encoder")
        return self._encoder

    def batcher(self, timeout: float | None = None) -> EncodeBatcher:
        self.encoder(timeout)
        return self._batcher

    @property
    def batch_stats(self) -> BatchStats | None:
        """How encodes were grouped so far (None until the encoder is loaded)."""
        return self._batcher.stats if self._batcher is not None else None

    def close(self) -> None:
        if self._batcher is not None:
            self._batcher.close()


class Served:
    """One atlas of the server with its model's slot: what the routes of that atlas use."""

    def __init__(self, key: str, atlas: Atlas, slot: ModelSlot, warm: Warm):
        self.key, self.atlas, self.slot, self.warm = key, atlas, slot, warm

    def encoder(self, timeout: float | None = None) -> Encoder:
        return self.slot.encoder(timeout)

    def encode(self, data: bytes, image, timeout: float | None = None) -> tuple[str, Encoding]:
        """``(query id, encoding)`` of uploaded bytes by this atlas's model; each distinct upload is
        encoded once per model."""
        batcher = self.slot.batcher(timeout)
        enc = self.warm.encodings.get_or_encode(data, self.atlas.model, lambda: batcher.encode(image, timeout))
        return EncodingCache.key(data), enc

    def encoding(self, query_id: str) -> Encoding | None:
        """A recent query's encoding by this atlas's model (None once forgotten, or never made by it)."""
        return self.warm.encodings.peek(query_id, self.atlas.model)

    def health(self) -> dict:
        """This atlas's model: its state, load time, runtime and batching."""
        stats = self.slot.batch_stats
        return {"encoder": self.slot.state, "encoder_error": self.slot.error, "load_seconds": self.slot.load_seconds,
                "model": self.atlas.model, "atlas": str(self.atlas.path), "key": self.key,
                "batches": stats.__dict__ if stats else None, **self.slot.runtime_state}


class Warm:
    """The loaded parts, shared by every request. Thread-safe.

    ``atlases``: one atlas or several; the first is the default (the plain ``/v1`` routes), each
    is also served under its key (``/v1/atlases/KEY``, see :func:`atlas_keys`)."""

    def __init__(self, atlases: Atlas | Sequence[Atlas], settings: Settings, device: str = "auto",
                 batch_window: float | None = None, runtime: str | None = None,
                 fetcher: ImageFetcher | None = None, load_now: bool = True):
        opened = [atlases] if isinstance(atlases, Atlas) else list(atlases)
        if not opened:
            raise ValueError("a server needs at least one atlas")
        self.settings = settings
        self.fetcher = fetcher or machine_fetcher(settings, Path(opened[0].path))
        self.encodings = EncodingCache(maxsize=256)       # by the hash of the bytes and the model: the query id
        self._lock = threading.Lock()
        self.slots: dict[str, ModelSlot] = {}
        for atlas in opened:
            if atlas.model not in self.slots:
                self.slots[atlas.model] = ModelSlot(atlas.model, device, runtime, batch_window, on_done=self._touch)
        self.served = {key: Served(key, atlas, self.slots[atlas.model], self)
                       for key, atlas in zip(atlas_keys(opened), opened, strict=True)}
        self.default = next(iter(self.served.values()))
        self.started = time.time()
        self._activity = time.monotonic()
        self.in_flight = 0
        if load_now:
            self.default.slot.start()

    @property
    def atlas(self) -> Atlas:
        """The default (first) atlas."""
        return self.default.atlas

    def _touch(self) -> None:
        with self._lock:
            self._activity = time.monotonic()        # loading a model is not idling

    # ------------------------------------------------------------------ activity
    def begin(self) -> None:
        with self._lock:
            self.in_flight += 1
            self._activity = time.monotonic()

    def end(self) -> None:
        with self._lock:
            self.in_flight -= 1
            self._activity = time.monotonic()

    def idle_seconds(self) -> float:
        """Seconds since the last request ended (0 while one runs or a model loads)."""
        with self._lock:
            busy = self.in_flight or any(slot.loading for slot in self.slots.values())
            return 0.0 if busy else time.monotonic() - self._activity

    def close(self) -> None:
        for slot in self.slots.values():
            slot.close()
        self.fetcher.close()
        for served in self.served.values():
            served.atlas.close()


def default_window(encoder: Encoder) -> float:
    """5 ms on a GPU, where one pass over several images costs far less than one pass each;
    0 (no batching) on a CPU, where torch already spreads one image over every core: there
    batching's effect on throughput was within run-to-run noise (-8% and +18% in two runs,
    docs/benchmarks.md), while the first request of a batch waits for the whole batch."""
    return 0.005 if str(getattr(encoder, "device", "cpu")).startswith(("cuda", "mps")) else 0.0
