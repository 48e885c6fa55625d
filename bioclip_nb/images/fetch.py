"""Polite, fast image fetching from the records' original hosts.

* one pooled ``requests`` session with a User-Agent naming bioclip-nb, its version and URL;
* per-host policies in one table (:data:`DEFAULT_POLICIES`), overridable: iNaturalist's
  ``static.inaturalist.org`` gets one request at a time, at most one per second, and an
  hourly byte budget that is enforced (past it: ``budget_exceeded``, no request);
* small variants where the host has them (iNaturalist ``/original.`` -> ``/medium.``),
  thumbnails of at most 256 px, the full image only when a result is opened;
* a bounded on-disk cache (``diskcache``), so a repeated search makes no requests;
* connect/read timeouts and a total deadline, a body-size cap enforced while streaming,
  at most 3 redirects, only ``http``/``https`` and ``atlas:`` files inside the atlas,
  429/503 retried once within ``Retry-After`` bounds;
* every outcome is a :class:`FetchResult` with a :class:`FetchStatus`; nothing raises for
  one bad image, and results arrive as they complete.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
from PIL import Image, UnidentifiedImageError

from .._version import __version__
from ..layout import ATLAS_URL_SCHEME
from .guard import AddressGuard, BlockedAddress, pinned_session
from .policy import DEFAULT_POLICIES, LEDGER_FILE, BudgetSpent, Cancelled, HostGate, HostLedger, HostPolicy, Turn
from .uploads import to_rgb

PROJECT_URL = "https://github.com/Imageomics/bioclip-nb"
USER_AGENT = f"bioclip-nb/{__version__} (+{PROJECT_URL})"
THUMB_PX = 256
FULL_PX = 2048
INAT_HOSTS = ("static.inaturalist.org", "inaturalist-open-data.s3.amazonaws.com")
#: The variant that fetches a JSON document (an occurrence record) instead of an image.
JSON = "json"


class FetchStatus(str, Enum):
    """The outcome of fetching one image."""

    OK = "ok"
    NO_URL = "no_url"
    NOT_FOUND = "not_found"
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    TOO_LARGE = "too_large"
    NOT_IMAGE = "not_image"
    BLOCKED = "blocked"
    BUDGET_EXCEEDED = "budget_exceeded"
    ERROR = "error"


@dataclass(frozen=True)
class FetchResult:
    """One image's outcome. ``data`` is JPEG/PNG bytes ready to display when ``status`` is ok."""

    key: object
    url: str | None
    status: FetchStatus
    message: str = ""
    data: bytes | None = None
    size: tuple[int, int] | None = None
    nbytes: int = 0              # bytes transferred over the network for this result
    from_cache: bool = False
    variant: str = "thumb"

    @property
    def ok(self) -> bool:
        return self.status is FetchStatus.OK

    def image(self) -> Image.Image | None:
        """The image, decoded (None unless ok)."""
        return Image.open(io.BytesIO(self.data)) if self.data else None


def variant_url(url: str, variant: str) -> str:
    """The URL to fetch for a variant: iNaturalist's ``medium`` size for thumbnails."""
    if variant != "thumb":
        return url
    parts = urlsplit(url)
    if parts.hostname in INAT_HOSTS and "/original." in parts.path:
        return urlunsplit(parts._replace(path=parts.path.replace("/original.", "/medium.")))
    return url


@dataclass
class FetchLimits:
    """Timeouts and sizes."""

    connect_timeout: float = 3.05
    read_timeout: float = 8.0
    total_timeout: float = 15.0
    max_bytes: int = 25 * 2**20
    max_redirects: int = 3
    max_retry_after: float = 5.0


#: ``state_dir``'s default: the machine's host ledger (``Settings.state_dir``).
MACHINE = "machine"


class ImageFetcher:
    """Fetches images under the policy table. Thread-safe; share one per process or session.

    Polite by default: unless told otherwise it keeps the host policies through the machine's
    ledger (``$BIOCLIP_NB_HOME/state``, or ``BIOCLIP_NB_STATE_DIR``), so every process on the
    machine shares each host's spacing and budget, and it checks typed URLs against
    ``BIOCLIP_NB_ALLOW_HOSTS``. :meth:`isolated` is the named opt-out (tests, benchmarks)."""

    def __init__(self, policies: dict[str, HostPolicy] | None = None, cache=None,
                 session: requests.Session | None = None, limits: FetchLimits | None = None,
                 atlas_root: Path | None = None, resolve: dict[str, str] | None = None, workers: int = 8,
                 guard: AddressGuard | None = None, state_dir: Path | str | None = MACHINE):
        if state_dir == MACHINE or guard is None:
            from ..config import Settings
            settings = Settings.from_env()
            state_dir = settings.state_dir if state_dir == MACHINE else state_dir
            guard = guard or AddressGuard(settings.allow_hosts)
        self.policies = {**DEFAULT_POLICIES, **(policies or {})}
        self.guard = guard                       # for URLs a person typed (fetch_user_url)
        self.cache = cache
        self.limits = limits or FetchLimits()
        self.atlas_root = Path(atlas_root).resolve() if atlas_root else None
        self.resolve = dict(resolve or {})   # host -> "http://127.0.0.1:PORT" (tests, mirrors)
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.max_redirects = self.limits.max_redirects
        adapter = requests.adapters.HTTPAdapter(pool_connections=16, pool_maxsize=32, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        # The host policies hold for every process sharing state_dir (see images.policy).
        self.ledger = HostLedger(Path(state_dir) / LEDGER_FILE if state_dir else None)
        self._gates: dict[str, HostGate] = {}
        self._gates_lock = threading.Lock()
        self._workers = workers
        self._lanes: dict[str, ThreadPoolExecutor] = {}

    @classmethod
    def isolated(cls, **kwargs) -> ImageFetcher:
        """A fetcher whose host policies hold for itself alone (no machine-wide ledger): for tests
        and benchmarks that must not wait on, or be spaced by, other processes."""
        return cls(state_dir=None, **kwargs)

    def close(self) -> None:
        with self._gates_lock:
            lanes, self._lanes = list(self._lanes.values()), {}
        for lane in lanes:
            lane.shutdown(wait=False, cancel_futures=True)
        self.session.close()

    # ------------------------------------------------------------------ accounting
    def gate(self, host: str) -> HostGate:
        """The gate of ``host`` (its policy, through the shared ledger)."""
        with self._gates_lock:
            if host not in self._gates:
                self._gates[host] = HostGate(host, self.policy_for(host), self.ledger)
            return self._gates[host]

    def policy_for(self, host: str) -> HostPolicy:
        """The policy of ``host``: its own entry in the table, else the ``"*"`` one."""
        return self.policies.get(host, self.policies["*"])

    def lane(self, host: str) -> ThreadPoolExecutor:
        """The workers of one host: as many as its policy lets run at once, so a slow host
        never holds up the images of another (``""``: files kept in the atlas, and no-URL records)."""
        size = self._workers if not host else max(1, self.policy_for(host).max_concurrency)
        with self._gates_lock:
            if host not in self._lanes:
                self._lanes[host] = ThreadPoolExecutor(max_workers=size, thread_name_prefix=f"bioclip-fetch-{host or 'local'}")
            return self._lanes[host]

    def usage(self) -> dict[str, dict[str, int]]:
        """Per host: requests made, bytes transferred, bytes in the last hour."""
        with self._gates_lock:
            gates = dict(self._gates)
        return {h: {"requests": g.requests, "bytes": g.bytes, "last_hour_bytes": g.hour_bytes()}
                for h, g in gates.items()}

    # ------------------------------------------------------------------ fetching
    def fetch(self, url: str | None, variant: str = "thumb", key: object = None,
              cancel: threading.Event | None = None) -> FetchResult:
        """One image; never raises for a bad URL, host or body."""
        base = FetchResult(key, url, FetchStatus.ERROR, variant=variant)
        if url is None or (isinstance(url, float)) or not str(url).strip():
            return replace(base, status=FetchStatus.NO_URL, message="this record has no image URL")
        url = str(url)
        if url.startswith(ATLAS_URL_SCHEME):
            return self._local(base, url)
        problem = malformed(url)
        if problem:
            return replace(base, status=FetchStatus.BLOCKED, message=problem)
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("http", "https"):
            return replace(base, status=FetchStatus.BLOCKED, message=f"only http and https images are fetched, not {scheme or 'this'}: URLs")
        cache_key = (variant, url)
        if self.cache is not None:
            hit = self.cache.get(cache_key)
            if hit is not None:
                status, data, size, message = hit
                return replace(base, status=FetchStatus(status), data=data, size=size, message=message, from_cache=True)
        result, _ = self._remote(base, variant_url(url, variant), variant, cancel)
        if self.cache is not None:
            if result.ok:
                self.cache.set(cache_key, (result.status.value, result.data, result.size, ""))
            elif result.status is FetchStatus.NOT_FOUND:
                self.cache.set(cache_key, (result.status.value, None, None, result.message), expire=86400)
        return result

    def fetch_many(self, urls: Iterable[tuple[object, str | None]], variant: str = "thumb",
                   cancel: threading.Event | None = None,
                   on_result: Callable[[FetchResult], None] | None = None) -> Iterator[FetchResult]:
        """Fetch ``(key, url)`` pairs in parallel, one lane per host, yielding results as they complete."""
        futures = [self.lane(_lane_of(url)).submit(unless_cancelled, self.fetch, key, url, variant, cancel)
                   for key, url in urls]
        return as_they_come(futures, on_result)

    def _local(self, base: FetchResult, url: str) -> FetchResult:
        if self.atlas_root is None:
            return replace(base, status=FetchStatus.BLOCKED, message="local images are served only from inside an atlas")
        path = (self.atlas_root / url[len(ATLAS_URL_SCHEME):].lstrip("/")).resolve()
        if not path.is_relative_to(self.atlas_root):
            return replace(base, status=FetchStatus.BLOCKED, message="the path leaves the atlas directory")
        if not path.is_file():
            return replace(base, status=FetchStatus.NOT_FOUND, message=f"{path.name} is missing from the atlas")
        return self._decode(base, path.read_bytes(), base.variant, nbytes=0)

    def fetch_user_url(self, url: str | None, variant: str = "full", key: object = None,
                       cancel: threading.Event | None = None) -> FetchResult:
        """An image URL a person typed. Its host, and the host of every redirect, must resolve to
        public addresses (``images.guard``); the connection goes to the address checked. Never
        cached: what a name resolves to may change."""
        base = FetchResult(key, url, FetchStatus.ERROR, variant=variant)
        url = (url or "").strip()
        if not url:
            return replace(base, status=FetchStatus.NO_URL, message="no URL was given")
        session, adapter = pinned_session(USER_AGENT)
        try:
            for _hop in range(self.limits.max_redirects + 1):
                try:
                    host, address = self.guard.check(url)
                except BlockedAddress as exc:
                    return replace(base, status=FetchStatus.BLOCKED, message=str(exc))
                adapter.pin(host, address)
                result, location = self._remote(base, url, variant, cancel, session=session)
                if location is None:
                    return result
                url = urljoin(url, location)
            return replace(base, status=FetchStatus.ERROR,
                           message=f"too many redirects (more than {self.limits.max_redirects})")
        finally:
            session.close()

    def _remote(self, base: FetchResult, url: str, variant: str, cancel,
                session: requests.Session | None = None) -> tuple[FetchResult, str | None]:
        """One request under the host's policy; ``(result, redirect location)``. With ``session``
        (a pinned one) redirects are returned, not followed, so each hop can be checked."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        gate = self.gate(host)
        target = url
        if session is None and host in self.resolve:
            target = self.resolve[host].rstrip("/") + urlunsplit(("", "", parts.path, parts.query, ""))
        for attempt in range(2):
            try:
                turn = gate.acquire(self.limits.max_bytes, cancel)
            except BudgetSpent:
                return replace(base, status=FetchStatus.BUDGET_EXCEEDED,
                               message=f"the hourly download budget for {host} is used up; try again later"), None
            except Cancelled:
                return replace(base, status=FetchStatus.ERROR, message="cancelled"), None
            with turn:
                result, retry_after = self._get(base, target, turn, variant, session)
            if isinstance(result, str):           # a redirect, to be checked before it is followed
                return replace(base, status=FetchStatus.ERROR, message="redirected"), result
            if retry_after is None or attempt == 1:
                return result, None
            gate.back_off(retry_after)
        return result, None

    def _get(self, base: FetchResult, url: str, turn: Turn, variant: str,
             session: requests.Session | None) -> tuple[FetchResult | str, float | None]:
        """Send one request inside its turn; ``(result or redirect location, Retry-After)``."""
        lim = self.limits
        started = time.monotonic()
        follow = session is None
        session = session or self.session
        try:
            with session.get(url, stream=True, timeout=(lim.connect_timeout, lim.read_timeout),
                             allow_redirects=follow) as resp:
                turn.answered()
                code = resp.status_code
                if not follow and code in (301, 302, 303, 307, 308) and resp.headers.get("Location"):
                    return resp.headers["Location"], None
                if code in (429, 503):
                    delay = _retry_after(resp.headers.get("Retry-After"))
                    status = FetchStatus.RATE_LIMITED if code == 429 else FetchStatus.ERROR
                    msg = "the host asked us to slow down (HTTP 429)" if code == 429 else "the host is unavailable (HTTP 503)"
                    ok_to_retry = delay is not None and delay <= lim.max_retry_after
                    return replace(base, status=status, message=msg), (delay if ok_to_retry else None)
                if code in (404, 410):
                    what = "the record" if variant == JSON else "the image"
                    return replace(base, status=FetchStatus.NOT_FOUND, message=f"{what} is gone from its host (HTTP {code})"), None
                if code >= 400:
                    return replace(base, status=FetchStatus.ERROR, message=f"the host answered HTTP {code}"), None
                ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
                if variant == JSON and not ctype.endswith("json"):
                    return replace(base, status=FetchStatus.ERROR, message=f"the host sent {ctype or 'no type'}, not JSON"), None
                if variant != JSON and ctype.startswith(("text/", "application/json")):
                    return replace(base, status=FetchStatus.NOT_IMAGE, message=f"the host sent {ctype}, not an image"), None
                length = resp.headers.get("Content-Length")
                if length and length.isdigit() and int(length) > lim.max_bytes:
                    return replace(base, status=FetchStatus.TOO_LARGE, message=_too_large(int(length), lim.max_bytes)), None
                chunks = []
                for chunk in _chunks(resp):
                    turn.nbytes += len(chunk)
                    if turn.nbytes > lim.max_bytes:
                        return replace(base, status=FetchStatus.TOO_LARGE, nbytes=turn.nbytes,
                                       message=_too_large(turn.nbytes, lim.max_bytes)), None
                    if time.monotonic() - started > lim.total_timeout:
                        return replace(base, status=FetchStatus.TIMEOUT, nbytes=turn.nbytes,
                                       message=f"the host was too slow (over {lim.total_timeout:.0f} s)"), None
                    chunks.append(chunk)
                return self._decode(base, b"".join(chunks), variant, turn.nbytes), None
        except requests.exceptions.Timeout:
            return replace(base, status=FetchStatus.TIMEOUT, nbytes=turn.nbytes, message="the host did not answer in time"), None
        except requests.exceptions.TooManyRedirects:
            return replace(base, status=FetchStatus.ERROR, message=f"too many redirects (more than {lim.max_redirects})"), None
        except requests.exceptions.InvalidSchema:
            return replace(base, status=FetchStatus.BLOCKED, message="redirected to a non-http address"), None
        except requests.exceptions.RequestException as exc:
            return replace(base, status=FetchStatus.ERROR, nbytes=turn.nbytes, message=f"could not reach the host ({type(exc).__name__})"), None

    def _decode(self, base: FetchResult, data: bytes, variant: str, nbytes: int) -> FetchResult:
        if variant == JSON:
            try:
                json.loads(data)
            except ValueError:
                return replace(base, status=FetchStatus.ERROR, nbytes=nbytes, message="the host sent malformed JSON")
            return replace(base, status=FetchStatus.OK, data=data, nbytes=nbytes)
        try:
            img = Image.open(io.BytesIO(data))
            img.load()
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, SyntaxError):
            return replace(base, status=FetchStatus.NOT_IMAGE, nbytes=nbytes, message="the file is not an image we can decode")
        img = to_rgb(img)
        img.thumbnail((THUMB_PX, THUMB_PX) if variant == "thumb" else (FULL_PX, FULL_PX))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=85)
        return replace(base, status=FetchStatus.OK, data=buf.getvalue(), size=img.size, nbytes=nbytes)


def unless_cancelled(fetch: Callable[..., FetchResult], key, url, variant: str,
                     cancel: threading.Event | None) -> FetchResult | None:
    """``fetch(url, variant, key, cancel)``, or None if cancelled before its turn came."""
    if cancel is not None and cancel.is_set():
        return None
    return fetch(url, variant, key, cancel)


def as_they_come(futures: list, on_result: Callable[[FetchResult], None] | None = None) -> Iterator[FetchResult]:
    """The futures' results as they complete (cancelled ones skipped); those not yet started are
    cancelled when the caller stops reading."""
    try:
        for fut in as_completed(futures):
            result = fut.result()
            if result is None:
                continue
            if on_result is not None:
                on_result(result)
            yield result
    finally:
        for fut in futures:
            fut.cancel()


def malformed(url: str) -> str | None:
    """Why ``url`` cannot be requested as it is written (a bad port, an unclosed IPv6 bracket,
    a user name or password in it), or None. Credentials are never sent to an image host."""
    try:
        parts = urlsplit(url)
        parts.port                                         # noqa: B018 - raises for a bad port
    except ValueError as exc:
        return f"the URL is malformed ({exc})"
    if parts.username is not None or parts.password is not None:
        return "the URL carries a user name or password; remove them (bioclip-nb never sends credentials to image hosts)"
    return None


def _lane_of(url: str | None) -> str:
    """The host whose lane fetches ``url`` (``""`` for atlas files, missing and malformed URLs)."""
    if not isinstance(url, str) or url.startswith(ATLAS_URL_SCHEME) or malformed(url):
        return ""
    return urlsplit(url).hostname or ""


def _chunks(resp: requests.Response, size: int = 64 * 1024) -> Iterator[bytes]:
    """The body as it arrives: each piece is what one socket read returned (so a host that
    drips bytes cannot hold us past the total deadline between checks)."""
    raw = resp.raw
    while True:
        chunk = raw.read1(size, decode_content=True)
        if not chunk:
            return
        yield chunk


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _too_large(nbytes: int, limit: int) -> str:
    return f"the image is over {limit / 2**20:.0f} MB ({nbytes / 2**20:.1f} MB)"


def open_image_cache(directory: Path, size_limit: int = 2 * 2**30):
    """The bounded on-disk image cache (``diskcache``), 2 GB by default."""
    import diskcache
    directory.mkdir(parents=True, exist_ok=True)
    return diskcache.Cache(str(directory), size_limit=size_limit, eviction_policy="least-recently-used")


def machine_fetcher(settings, atlas_root: Path | None = None) -> ImageFetcher:
    """The fetcher a process (a kernel, or the one server of a machine) should use: the disk
    cache, the shared host ledger and the typed-URL guard of ``settings`` (a ``config.Settings``).
    An unwritable cache only means images are fetched each time."""
    import sqlite3
    try:
        cache = open_image_cache(settings.image_cache_dir)
    except (OSError, sqlite3.Error):
        cache = None
    return ImageFetcher(cache=cache, atlas_root=atlas_root, guard=AddressGuard(settings.allow_hosts),
                        state_dir=settings.state_dir)


def failure_counts(results: Iterable[FetchResult]) -> tuple[int, Counter]:
    """``(total, Counter of FetchStatus)`` over the results that did not arrive; the dashboard
    turns these into words."""
    results = list(results)
    return len(results), Counter(r.status for r in results if not r.ok)
