"""A real HTTP image host on 127.0.0.1, with faults on demand and a request log.

Paths (``<n>`` is any number, used as a seed for the picture):

``/photos/<n>/original.jpg`` and ``/photos/<n>/medium.jpg``   originals and small variants
``/img/<n>.jpg``            a picture             ``/404/...``  not found
``/429/...``                429 with ``Retry-After: 1`` on the first request of that path, then the picture
``/429-always/...``         429 every time, ``Retry-After: 1``      ``/500/...`` server error
``/503/...``                503 with ``Retry-After: 1``, every time
``/slow-headers/...``       waits ``hang`` seconds before answering
``/slow-body/...``          sends a byte every 0.5 s                ``/big/...``  declares 200 MB
``/big-chunked/...``        streams 64 MB without a length        ``/html/...`` an HTML page
``/octet/...``              a JPEG labelled ``application/octet-stream``
``/429-long/...``           429 with ``Retry-After: 3600`` (beyond what we wait)
``/429-date/...``           as ``/429/`` with ``Retry-After`` an HTTP date about 2 s ahead
``/redirect/<k>/...``       k redirects, then the picture        ``/redirect-file/...`` to ``file:///etc/passwd``
``/garbage/...``            ``image/jpeg`` that is not one
``/redirect-to?url=URL``    one redirect to any URL (for the address guard's tests)
"""

from __future__ import annotations

import io
import re
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Request:
    path: str
    start: float       # time.monotonic() when the request line arrived
    end: float
    concurrent: int    # requests in flight when this one arrived (itself included)
    headers: dict = field(default_factory=dict, compare=False)   # as the request sent them


def picture(seed: int, size: tuple[int, int] = (640, 480), quality: int = 90, noise: bool = False) -> bytes:
    """A JPEG: smooth colours from ``seed`` (or noise, to make a big file)."""
    rng = np.random.default_rng(seed)
    w, h = size
    if noise:
        arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    else:
        y, x = np.mgrid[0:h, 0:w] / max(w, h)
        c = rng.random(3)
        arr = (np.stack([np.sin(7 * x + c[0] * 6), np.cos(5 * y + c[1] * 6), np.sin(3 * (x + y) + c[2] * 6)], -1) * 127 + 128).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


class LocalHTTP:
    """A threaded HTTP server on a free port of 127.0.0.1, for tests: :meth:`start` (or use it
    as a context manager), ``base``, :meth:`stop`. Subclasses build their handler in ``start``."""

    _server: ThreadingHTTPServer | None = None
    #: The Content-Type of an answer that names none.
    content_type = "application/octet-stream"

    def __init__(self):
        self.log: list[Request] = []
        self._lock = threading.Lock()
        self._active = 0

    def start(self) -> LocalHTTP:
        raise NotImplementedError

    def _logged(self, h: BaseHTTPRequestHandler, answer) -> None:
        """Answer one request with ``answer(h)``, logging when it came, went and how many were in flight."""
        start = time.monotonic()
        with self._lock:
            self._active += 1
            concurrent = self._active
        try:
            answer(h)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with self._lock:
                self._active -= 1
                self.log.append(Request(h.path, start, time.monotonic(), concurrent, dict(h.headers.items())))

    def _send(self, h, code: int, body: bytes = b"", ctype: str | None = None, headers: dict | None = None) -> None:
        h.send_response(code)
        h.send_header("Content-Type", ctype or self.content_type)
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # a client that hung up is part of the test
                pass

        self._server = Server(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"


class ImageHost(LocalHTTP):
    """Start with :meth:`start` (or as a context manager); ``base`` is ``http://127.0.0.1:PORT``."""

    content_type = "image/jpeg"

    def __init__(self, latency: float = 0.0, hang: float = 30.0, original_size=(640, 480),
                 original_bytes: int | None = None, medium_bytes: int | None = None):
        self.latency = latency
        self.hang = hang
        self.original_size = original_size
        self.original_bytes = original_bytes
        self.medium_bytes = medium_bytes
        super().__init__()
        self._seen: set[str] = set()
        self._pictures: dict[tuple, bytes] = {}
        self._server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> ImageHost:
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                host._handle(self)

        self._serve(Handler)
        return self

    def url(self, path: str) -> str:
        return self.base + path

    def requests_for(self, pattern: str = "", settle: float = 5.0) -> list[Request]:
        """Logged requests whose path contains ``pattern``, once no request is in flight (so a
        request still being answered is counted too); waits at most ``settle`` seconds."""
        self.wait_idle(settle)
        with self._lock:
            return [r for r in self.log if pattern in r.path]

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no request is being answered; False if one still is after ``timeout``."""
        deadline = time.monotonic() + timeout
        while self._active and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._active

    def bytes_for(self, kind: str, seed: int) -> bytes:
        """The exact body served for ``original`` or ``medium`` of ``seed``."""
        key = (kind, seed)
        if key not in self._pictures:
            if kind == "original":
                data = self._sized(seed, self.original_size, self.original_bytes)
            else:
                data = self._sized(seed, (320, 240), self.medium_bytes)
            self._pictures[key] = data
        return self._pictures[key]

    @staticmethod
    def _sized(seed: int, size, target: int | None) -> bytes:
        if target is None:
            return picture(seed, size)
        side = 256
        for _ in range(3):   # calibrate bytes per pixel of a noise JPEG, then resize to fit
            data = picture(seed, (side, side), quality=95, noise=True)
            side = max(16, int(side * (target / len(data)) ** 0.5))
        return data

    # ------------------------------------------------------------------ serving
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        def answer(h: BaseHTTPRequestHandler) -> None:
            if self.latency:
                time.sleep(self.latency)
            self._route(h)
        self._logged(h, answer)

    def _route(self, h) -> None:
        path = h.path.split("?")[0]
        seed = int((re.findall(r"(\d+)", path) or ["0"])[-1]) % 100_000
        if m := re.match(r"^/photos/(\d+)/(original|medium)\.", path):
            return self._send(h, 200, self.bytes_for(m.group(2), int(m.group(1))))
        if path.startswith("/img/"):
            return self._send(h, 200, picture(seed))
        if path.startswith("/404/"):
            return self._send(h, 404, b"not found", "text/plain")
        if path.startswith("/429-always/"):
            return self._send(h, 429, b"slow down", "text/plain", {"Retry-After": "1"})
        if path.startswith("/429/"):
            with self._lock:
                first = path not in self._seen
                self._seen.add(path)
            if first:
                return self._send(h, 429, b"slow down", "text/plain", {"Retry-After": "1"})
            return self._send(h, 200, picture(seed))
        if path.startswith("/429-date/"):
            with self._lock:
                first = path not in self._seen
                self._seen.add(path)
            if first:
                when = formatdate(time.time() + 2, usegmt=True)    # an HTTP date, 1 to 2 s ahead
                return self._send(h, 429, b"slow down", "text/plain", {"Retry-After": when})
            return self._send(h, 200, picture(seed))
        if path.startswith("/429-long/"):
            return self._send(h, 429, b"slow down", "text/plain", {"Retry-After": "3600"})
        if path.startswith("/500/"):
            return self._send(h, 500, b"oops", "text/plain")
        if path.startswith("/503/"):
            return self._send(h, 503, b"busy", "text/plain", {"Retry-After": "1"})
        if path.startswith("/slow-headers/"):
            time.sleep(self.hang)
            return self._send(h, 200, picture(seed))
        if path.startswith("/slow-body/"):
            body = picture(seed)
            h.send_response(200)
            h.send_header("Content-Type", "image/jpeg")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            for i in range(0, len(body), 64):
                h.wfile.write(body[i:i + 64])
                h.wfile.flush()
                time.sleep(0.5)
            return None
        if path.startswith("/big/"):
            h.send_response(200)
            h.send_header("Content-Type", "image/jpeg")
            h.send_header("Content-Length", str(200 * 2**20))
            h.end_headers()
            h.wfile.write(b"\xff\xd8" + b"\x00" * 1024)
            return None
        if path.startswith("/big-chunked/"):
            h.send_response(200)
            h.send_header("Content-Type", "image/jpeg")
            h.send_header("Connection", "close")
            h.end_headers()
            block = b"\x00" * 2**20
            for _ in range(64):
                h.wfile.write(block)
            return None
        if path.startswith("/html/"):
            return self._send(h, 200, b"<html><body>Sign in</body></html>", "text/html; charset=utf-8")
        if path.startswith("/octet/"):
            return self._send(h, 200, picture(seed), "application/octet-stream")
        if path.startswith("/garbage/"):
            return self._send(h, 200, b"\xff\xd8\xff" + b"nonsense" * 100, "image/jpeg")
        if m := re.match(r"^/redirect/(\d+)/(.*)$", path):
            k = int(m.group(1))
            target = f"/redirect/{k - 1}/{m.group(2)}" if k > 1 else f"/img/{m.group(2)}"
            return self._send(h, 302, b"", "text/plain", {"Location": target})
        if path.startswith("/redirect-file/"):
            return self._send(h, 302, b"", "text/plain", {"Location": "file:///etc/passwd"})
        if path == "/redirect-to":
            target = parse_qs(urlsplit(h.path).query).get("url", [""])[0]
            return self._send(h, 302, b"", "text/plain", {"Location": target})
        return self._send(h, 404, b"no route", "text/plain")
