"""Host policies: how often, how many at once and how many bytes per hour bioclip-nb takes
from each image host. One table, :data:`DEFAULT_POLICIES`; a gate per host enforces it."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class HostPolicy:
    """How we treat one host: spacing between request starts, parallelism, hourly bytes."""

    min_interval: float = 0.0
    max_concurrency: int = 4
    hourly_bytes: int | None = None


#: The policy table. Keys are host names; ``"*"`` is every other host.
DEFAULT_POLICIES: dict[str, HostPolicy] = {
    "static.inaturalist.org": HostPolicy(min_interval=1.0, max_concurrency=1, hourly_bytes=4 * 10**9),
    "inaturalist-open-data.s3.amazonaws.com": HostPolicy(max_concurrency=8),
    "*": HostPolicy(max_concurrency=4),
}


class HostGate:
    """Concurrency cap, spacing and hourly byte budget for one host."""

    def __init__(self, policy: HostPolicy):
        self.policy = policy
        self.sem = threading.BoundedSemaphore(max(1, policy.max_concurrency))
        self.lock = threading.Lock()
        self.next_start = 0.0
        self.window: deque[tuple[float, int]] = deque()
        self.requests = 0
        self.bytes = 0

    # A small margin keeps the spacing true as seen by the server, whose clock starts on
    # receipt (a reused connection arrives sooner than a fresh one).
    MARGIN = 0.05

    def wait_turn(self, cancel: threading.Event | None) -> bool:
        """Block until this host may take another request; False if cancelled."""
        while True:
            with self.lock:
                now = time.monotonic()
                if now >= self.next_start:
                    if self.policy.min_interval:
                        self.next_start = now + self.policy.min_interval + self.MARGIN
                    return True
                delay = self.next_start - now
            if cancel is not None and cancel.wait(min(delay, 0.1)):
                return False
            if cancel is None:
                time.sleep(min(delay, 0.1))

    def back_off(self, seconds: float) -> None:
        with self.lock:
            self.next_start = max(self.next_start, time.monotonic() + seconds)

    def hour_bytes(self) -> int:
        cutoff = time.monotonic() - 3600
        with self.lock:
            while self.window and self.window[0][0] < cutoff:
                self.window.popleft()
            return sum(b for _, b in self.window)

    def over_budget(self) -> bool:
        return self.policy.hourly_bytes is not None and self.hour_bytes() >= self.policy.hourly_bytes

    def account(self, nbytes: int) -> None:
        with self.lock:
            self.requests += 1
            self.bytes += nbytes
            self.window.append((time.monotonic(), nbytes))
