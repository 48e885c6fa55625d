"""Encode requests that arrive close together share one forward pass.

A worker thread takes the first waiting image, waits ``window`` seconds (a few milliseconds)
for others, and encodes up to ``max_batch`` of them with one ``encode_many`` call. On a CPU a
batch of 8 costs less than 8 single passes; on a GPU much less. Each caller gets its own
``Encoding`` (or the exception of its own image) through a future.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

from PIL import Image

from ..encoders import Encoder, Encoding


@dataclass
class BatchStats:
    """How the batcher has grouped its work."""

    requests: int = 0
    passes: int = 0
    largest: int = 0


class EncodeBatcher:
    """Groups concurrent :meth:`submit` calls into ``encode_many`` passes (``window=0``: one by one)."""

    def __init__(self, encoder: Encoder, window: float = 0.005, max_batch: int = 16, k: int = 5):
        self.encoder = encoder
        self.window = window
        self.max_batch = max_batch
        self.k = k
        self.stats = BatchStats()
        self._queue: queue.Queue[tuple[Image.Image, Future] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="bioclip-nb-encode", daemon=True)
        self._thread.start()

    def submit(self, image: Image.Image) -> Future:
        """A future of the image's :class:`Encoding`."""
        fut: Future = Future()
        self._queue.put((image, fut))
        return fut

    def encode(self, image: Image.Image, timeout: float | None = None) -> Encoding:
        """Encode one image, batched with whatever else arrives (blocking)."""
        return self.submit(image).result(timeout)

    def close(self) -> None:
        """Stop the worker once the queue is drained."""
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.window
            while len(batch) < self.max_batch:
                left = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)          # finish this batch, then stop
                    break
                batch.append(item)
            self._encode(batch)

    def _encode(self, batch: list[tuple[Image.Image, Future]]) -> None:
        live = [(img, fut) for img, fut in batch if fut.set_running_or_notify_cancel()]
        if not live:
            return
        self.stats.requests += len(live)
        self.stats.passes += 1
        self.stats.largest = max(self.stats.largest, len(live))
        try:
            many = getattr(self.encoder, "encode_many", None)
            images = [img for img, _ in live]
            encodings = many(images, k=self.k) if many is not None else [self.encoder.encode(i, k=self.k) for i in images]
        except BaseException as exc:  # noqa: BLE001 - the batch failed together; try each alone so one bad image fails only itself
            if len(live) == 1:
                live[0][1].set_exception(exc)
                return
            for img, fut in live:
                try:
                    fut.set_result(self.encoder.encode(img, k=self.k))
                except BaseException as one:  # noqa: BLE001 - delivered to the caller
                    fut.set_exception(one)
            return
        for (_, fut), enc in zip(live, encodings):
            fut.set_result(enc)
