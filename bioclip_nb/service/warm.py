"""What the server keeps warm: one atlas, one encoder (loaded once, in the background), one
image fetcher for the whole machine, and the encodings of recent queries."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from ..config import Settings
from ..core.atlas import Atlas
from ..encoders import Encoder, Encoding, EncodingCache, load_encoder
from ..errors import EncoderUnavailableError
from ..images.fetch import ImageFetcher, machine_fetcher
from .batcher import BatchStats, EncodeBatcher


class Warm:
    """The loaded parts, shared by every request. Thread-safe."""

    def __init__(self, atlas: Atlas, settings: Settings, device: str = "auto", batch_window: float | None = None,
                 runtime: str | None = None,
                 fetcher: ImageFetcher | None = None, load_now: bool = True):
        self.atlas = atlas
        self.settings = settings
        self.device = device
        self.runtime_choice = runtime          # asked for: auto, torch, or a named runtime
        self.batch_window = batch_window
        self.fetcher = fetcher or machine_fetcher(settings, Path(atlas.path))
        self.encodings = EncodingCache(maxsize=256)       # by the hash of the bytes: the query id
        self._lock = threading.Lock()
        self._encoder: Encoder | None = None
        self._batcher: EncodeBatcher | None = None
        self._encoder_error: str | None = None
        self._loaded = threading.Event()
        self.started = time.time()
        self.load_seconds: float | None = None
        self._activity = time.monotonic()
        self.in_flight = 0
        if load_now:
            threading.Thread(target=self._load, name="bioclip-nb-load", daemon=True).start()

    # ------------------------------------------------------------------ encoder
    def _load(self) -> None:
        t0 = time.perf_counter()
        try:
            encoder = load_encoder(self.atlas.model, device=self.device, runtime=self.runtime_choice)
            with self._lock:
                self._encoder = encoder
                window = self.batch_window if self.batch_window is not None else default_window(encoder)
                # a window of 0 turns batching off: one forward pass per request, in arrival order
                self._batcher = EncodeBatcher(encoder, window=max(0.0, window), max_batch=16 if window > 0 else 1)
        except EncoderUnavailableError as exc:
            self._encoder_error = str(exc)
        except Exception as exc:  # noqa: BLE001 - reported by /health and every encode, never a crash
            self._encoder_error = f"the encoder could not be loaded: {type(exc).__name__}: {exc}"
        finally:
            self.load_seconds = time.perf_counter() - t0
            with self._lock:
                self._activity = time.monotonic()        # loading the model is not idling
            self._loaded.set()

    @property
    def encoder_state(self) -> str:
        """``loading``, ``ready`` or ``unavailable``."""
        if not self._loaded.is_set():
            return "loading"
        return "ready" if self._encoder is not None else "unavailable"

    @property
    def runtime_state(self) -> dict:
        """How the loaded encoder runs (``runtime``, and ``runtime_note`` saying why); None while loading."""
        encoder = self._encoder
        if encoder is None:
            return {"runtime": None, "runtime_note": None}
        return {"runtime": encoder.runtime, "runtime_note": encoder.runtime_note}

    @property
    def encoder_error(self) -> str | None:
        return self._encoder_error

    def encoder(self, timeout: float | None = None) -> Encoder:
        """The loaded encoder (waits for the load); raises ``EncoderUnavailableError``."""
        if not self._loaded.wait(timeout):
            raise TimeoutError("the model is still loading; try again in a moment")
        if self._encoder is None:
            raise EncoderUnavailableError(self._encoder_error or "no encoder")
        return self._encoder

    @property
    def batch_stats(self) -> BatchStats | None:
        """How encodes were grouped so far (None until the encoder is loaded)."""
        return self._batcher.stats if self._batcher is not None else None

    def batcher(self, timeout: float | None = None) -> EncodeBatcher:
        self.encoder(timeout)
        return self._batcher

    # ------------------------------------------------------------------ encodings
    def encode(self, data: bytes, image, timeout: float | None = None) -> tuple[str, Encoding]:
        """``(query id, encoding)`` of uploaded bytes; each distinct upload is encoded once."""
        batcher = self.batcher(timeout)
        enc = self.encodings.get_or_encode(data, self.atlas.model, lambda: batcher.encode(image, timeout))
        return EncodingCache.key(data), enc

    def encoding(self, query_id: str) -> Encoding | None:
        """A recent query's encoding by its id (None once forgotten)."""
        return self.encodings.peek(query_id, self.atlas.model)

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
        """Seconds since the last request ended (0 while one runs or the model loads)."""
        with self._lock:
            busy = self.in_flight or not self._loaded.is_set()
            return 0.0 if busy else time.monotonic() - self._activity

    def close(self) -> None:
        if self._batcher is not None:
            self._batcher.close()
        self.fetcher.close()
        self.atlas.close()


def default_window(encoder: Encoder) -> float:
    """5 ms on a GPU, where one pass over several images costs far less than one pass each;
    0 (no batching) on a CPU, where torch already spreads one image over every core: there
    batching's effect on throughput was within run-to-run noise (-8% and +18% in two runs,
    docs/benchmarks.md), while the first request of a batch waits for the whole batch."""
    return 0.005 if str(getattr(encoder, "device", "cpu")).startswith(("cuda", "mps")) else 0.0
