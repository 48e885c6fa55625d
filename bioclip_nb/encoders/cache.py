"""Encodings keyed by a hash of the uploaded bytes, so an upload is encoded once."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable

from .base import Encoding


class EncodingCache:
    """Encodings keyed by a hash of the uploaded bytes (bounded, least recently used out)."""

    def __init__(self, maxsize: int = 64):
        self.maxsize = maxsize
        self._items: OrderedDict[tuple[str, str], Encoding] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(data: bytes) -> str:
        """The cache key of some bytes."""
        return hashlib.blake2b(data, digest_size=16).hexdigest()

    def get_or_encode(self, data: bytes, model_id: str, encode: Callable[[], Encoding]) -> Encoding:
        """The cached encoding of ``data`` for ``model_id``, or ``encode()`` and remember it."""
        key = (self.key(data), model_id)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
        enc = encode()
        with self._lock:
            self.misses += 1
            self._items[key] = enc
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return enc

    def peek(self, key: str, model_id: str) -> Encoding | None:
        """The encoding kept under ``key`` (a :meth:`key` of some bytes) for ``model_id``, or None;
        not counted as a hit or a miss."""
        with self._lock:
            enc = self._items.get((key, model_id))
            if enc is not None:
                self._items.move_to_end((key, model_id))
            return enc

    def __len__(self) -> int:
        return len(self._items)
