"""Host policies, kept per machine: how often, how many at once and how many bytes per hour
bioclip-nb takes from each image host.

A policy is a promise to a host, so it holds for every process on the machine that shares one
state directory (every Voilà kernel, CLI run and build worker; by default
``$BIOCLIP_NB_HOME/state``): their gates meet in one SQLite file, :class:`HostLedger`.

* **Spacing** is guaranteed by construction: a request may start only ``min_interval`` after
  the previous one to the host *was answered* (its response headers arrived), so the host
  sees at least that gap between the two requests it receives, whatever the jitter.
* **Concurrency**: at most ``max_concurrency`` requests in flight per host, across
  processes; a request in flight is a row with its process id, so a crashed process's slot
  is reclaimed.
* **Budget**: bytes per host over the last hour. A request is admitted only while the bytes
  used plus one body cap for every request still in flight stay under the budget (otherwise
  it waits for them, or is refused once the budget is spent), so concurrent fetches can
  exceed the budget by at most one body cap.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("bioclip_nb.images")

#: The ledger file inside a state directory.
LEDGER_FILE = "hosts.sqlite"
WINDOW = 3600.0          # seconds of the byte budget
POLL = 0.02              # seconds between looks at a busy host
MAX_WAIT = 120.0         # a turn further away than this is stale (a clock jump): start over


@dataclass(frozen=True)
class HostPolicy:
    """How we treat one host: spacing between requests, parallelism, hourly bytes."""

    min_interval: float = 0.0
    max_concurrency: int = 4
    hourly_bytes: int | None = None


#: The policy table. Keys are host names; ``"*"`` is every other host.
DEFAULT_POLICIES: dict[str, HostPolicy] = {
    "static.inaturalist.org": HostPolicy(min_interval=1.0, max_concurrency=1, hourly_bytes=4 * 10**9),
    "inaturalist-open-data.s3.amazonaws.com": HostPolicy(max_concurrency=8),
    "api.gbif.org": HostPolicy(min_interval=0.1, max_concurrency=3),     # occurrence records (JSON)
    "*": HostPolicy(max_concurrency=4),
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS turns (host TEXT PRIMARY KEY, next_start REAL NOT NULL);
CREATE TABLE IF NOT EXISTS inflight (token TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL,
                                     started REAL NOT NULL);
CREATE TABLE IF NOT EXISTS usage (host TEXT NOT NULL, t REAL NOT NULL, bytes INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS usage_host_t ON usage (host, t);
"""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class HostLedger:
    """The shared state of every host's gate: one SQLite file per state directory, or (with
    ``path=None``, or when the directory cannot be written) this process's memory only."""

    def __init__(self, path: Path | None = None):
        self.path: Path | None = None
        self._local = threading.local()
        self._memory: sqlite3.Connection | None = None
        self._memory_lock = threading.Lock()
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self.path = path
                self._con().executescript(_SCHEMA)
            except (OSError, sqlite3.Error) as exc:
                log.warning("host policies cannot be shared through %s (%s); keeping them for this "
                            "process only", path, exc)
                self.path = None          # an unwritable state directory: this process only
        if self.path is None:
            self._memory = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            self._memory.executescript(_SCHEMA)

    @property
    def shared(self) -> bool:
        """Whether other processes see this ledger (False: this process's memory only)."""
        return self.path is not None

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            _write_ahead_log(con)
            con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
        return con

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (across processes for a file ledger, across threads in memory)."""
        lock = self._memory_lock if self._memory is not None else contextlib.nullcontext()
        with lock:
            con = self._memory if self._memory is not None else self._con()
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # ------------------------------------------------------------------ the gate
    def try_acquire(self, host: str, policy: HostPolicy, body_cap: int) -> tuple[str | None, float, bool]:
        """One attempt to start a request: ``(token, 0, False)`` when it may go now,
        ``(None, seconds to wait, False)`` when it must wait, ``(None, 0, True)`` when the
        host's hourly budget is spent."""
        now = time.time()
        with self._tx() as con:
            for token, pid, started in con.execute("SELECT token, pid, started FROM inflight WHERE host = ?",
                                                   (host,)).fetchall():
                if not _pid_alive(pid) or started < now - WINDOW:
                    con.execute("DELETE FROM inflight WHERE token = ?", (token,))
            n = con.execute("SELECT count(*) FROM inflight WHERE host = ?", (host,)).fetchone()[0]
            if policy.hourly_bytes is not None:
                used = con.execute("SELECT coalesce(sum(bytes), 0) FROM usage WHERE host = ? AND t > ?",
                                   (host, now - WINDOW)).fetchone()[0]
                if used >= policy.hourly_bytes:
                    return None, 0.0, True
                if n and used + body_cap * n >= policy.hourly_bytes:
                    return None, POLL, False       # what is in flight may spend the rest: wait for it
            if n >= max(1, policy.max_concurrency):
                return None, POLL, False
            row = con.execute("SELECT next_start FROM turns WHERE host = ?", (host,)).fetchone()
            next_start = row[0] if row and row[0] - now <= MAX_WAIT else 0.0
            if now < next_start:
                return None, next_start - now, False
            token = uuid.uuid4().hex
            con.execute("INSERT INTO inflight VALUES (?, ?, ?, ?)", (token, host, os.getpid(), now))
            con.execute("INSERT INTO turns VALUES (?, ?) ON CONFLICT (host) DO UPDATE SET next_start = excluded.next_start",
                        (host, now + policy.min_interval))
            return token, 0.0, False

    def release(self, host: str, token: str, nbytes: int, answered_at: float | None,
                policy: HostPolicy) -> None:
        """End a request: free its slot, count its bytes, and space the next request from the
        moment this one was answered."""
        now = time.time()
        anchor = answered_at if answered_at is not None else now
        with self._tx() as con:
            con.execute("DELETE FROM inflight WHERE token = ?", (token,))
            if nbytes:
                con.execute("INSERT INTO usage VALUES (?, ?, ?)", (host, now, int(nbytes)))
            con.execute("DELETE FROM usage WHERE t < ?", (now - WINDOW,))
            con.execute("INSERT INTO turns VALUES (?, ?) ON CONFLICT (host) DO UPDATE SET "
                        "next_start = max(next_start, excluded.next_start)", (host, anchor + policy.min_interval))

    def back_off(self, host: str, seconds: float) -> None:
        """No request to ``host`` for ``seconds`` (the host asked, with Retry-After)."""
        with self._tx() as con:
            con.execute("INSERT INTO turns VALUES (?, ?) ON CONFLICT (host) DO UPDATE SET "
                        "next_start = max(next_start, excluded.next_start)", (host, time.time() + seconds))

    def hour_bytes(self, host: str) -> int:
        """Bytes taken from ``host`` in the last hour, by every process sharing this ledger."""
        with self._tx() as con:
            row = con.execute("SELECT coalesce(sum(bytes), 0) FROM usage WHERE host = ? AND t > ?",
                              (host, time.time() - WINDOW)).fetchone()
        return int(row[0])


class BudgetSpent(Exception):
    """The host's hourly byte budget is used up."""


class Cancelled(Exception):
    """The caller gave up waiting for a turn."""


class HostGate:
    """One host's policy, applied through the ledger; counts this process's own traffic."""

    def __init__(self, host: str, policy: HostPolicy, ledger: HostLedger):
        self.host = host
        self.policy = policy
        self.ledger = ledger
        self.requests = 0
        self.bytes = 0
        self._lock = threading.Lock()

    def acquire(self, body_cap: int, cancel: threading.Event | None = None) -> Turn:
        """A :class:`Turn` once the host may take a request (:class:`BudgetSpent` when its
        hourly budget is used up, :class:`Cancelled` when ``cancel`` is set meanwhile)."""
        while True:
            token, wait, spent = self.ledger.try_acquire(self.host, self.policy, body_cap)
            if token is not None:
                return Turn(self, token)
            if spent:
                raise BudgetSpent(self.host)
            if cancel is not None:
                if cancel.wait(min(wait, 0.25)):
                    raise Cancelled(self.host)
            else:
                time.sleep(min(wait, 0.25))

    def back_off(self, seconds: float) -> None:
        self.ledger.back_off(self.host, seconds)

    def hour_bytes(self) -> int:
        return self.ledger.hour_bytes(self.host)

    def _count(self, nbytes: int) -> None:
        with self._lock:
            self.requests += 1
            self.bytes += nbytes


class Turn:
    """One admitted request. Mark when it was answered, count its bytes, then :meth:`release`
    (or use it as a context manager)."""

    def __init__(self, gate: HostGate, token: str):
        self.gate = gate
        self.token = token
        self.answered_at: float | None = None
        self.nbytes = 0

    def answered(self) -> None:
        """The response headers arrived: the next request is spaced from now."""
        self.answered_at = time.time()

    def release(self) -> None:
        self.gate._count(self.nbytes)
        self.gate.ledger.release(self.gate.host, self.token, self.nbytes, self.answered_at, self.gate.policy)

    def __enter__(self) -> Turn:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _write_ahead_log(con: sqlite3.Connection, attempts: int = 50) -> None:
    """Put the ledger in WAL mode. Switching needs a moment alone with the file, and SQLite does
    not wait for it (its busy timeout does not cover this), so processes starting together (a
    class opening its dashboards) retry for a few seconds instead of failing."""
    for attempt in range(attempts):
        try:
            if con.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                con.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05 + 0.05 * (attempt % 4))
