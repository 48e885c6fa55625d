"""Request bodies refused at the door: a body over its route's cap gets 413 before it is parsed.

One server is shared by a whole class, so one client must not be able to make it hold a huge
body in memory (measured before this existed: a 160 MB JSON body to ``/v1/search`` peaked at
13 GB while pydantic parsed it). This ASGI middleware reads each body itself, at most the
route's cap plus one chunk, answers 413 the moment the declared length or the bytes read pass
the cap, and otherwise hands the body on unchanged. The caps live in ``limits.BODY_CAPS``.

Before answering 413 it reads and drops the rest of a body of moderate size (up to
:data:`DRAIN_BYTES` more, for at most :data:`DRAIN_SECONDS`): a server that closes a
connection with unread bytes makes the kernel reset it, and the client may then lose the
answer that says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from .protocol import ATLASES, error_body

#: How much more of a refused body is read (and dropped) so the client receives the 413.
DRAIN_BYTES = 64 * 2**20
DRAIN_SECONDS = 10.0


class BodyCap:
    """ASGI middleware capping request bodies per route (path below ``prefix``)."""

    def __init__(self, app, prefix: str, caps: dict[str, int], default: int):
        self.app = app
        self.prefix = prefix
        self.caps = caps
        self.default = default

    def cap_for(self, path: str) -> int:
        """The cap of a request path (``/v1/search`` and ``/v1/atlases/KEY/search`` -> ``caps["/search"]``)."""
        route = path[len(self.prefix):] if path.startswith(self.prefix) else path
        if route.startswith(ATLASES + "/"):
            route = "/" + route[len(ATLASES) + 1:].partition("/")[2]
        return self.caps.get(route, self.default)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        cap = self.cap_for(scope["path"])
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > cap:
            if int(declared) <= cap + DRAIN_BYTES:
                await _drain(receive)
            await _too_large(send, cap)
            return
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > cap:
                if more:
                    await _drain(receive)
                await _too_large(send, cap)
                return
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _drain(receive) -> None:
    """Read and drop what is left of the body: at most :data:`DRAIN_BYTES`, :data:`DRAIN_SECONDS`."""
    async def drop() -> None:
        read = 0
        while read <= DRAIN_BYTES:
            message = await receive()
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                return
            read += len(message.get("body", b""))

    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(drop(), DRAIN_SECONDS)


async def _too_large(send, cap: int) -> None:
    size = f"{cap / 2**20:.0f} MB" if cap >= 2**20 else f"{cap // 2**10} KB"
    payload = json.dumps(error_body(f"the request body is larger than this route accepts ({size})", "too_large")).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": payload})
