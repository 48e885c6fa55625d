"""Running the server: ``serve`` in the foreground, ``start`` in the background, ``stop``.

One server per ``BIOCLIP_NB_HOME``: its record (``statefile``) says where it listens and holds
its token. It stops by itself after ``idle_minutes`` without a request, and removes its record
on the way out (a record left by a killed server is found stale and removed by the next reader).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from ..config import ENV_HOME, ENV_SERVER_LOG, Settings
from .statefile import ServerRecord, new_token, read_record, remove_record, write_private, write_record

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine."""
    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or an ``OSError`` saying the port is taken and what to do."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise OSError(f"port {port} on {host} is already in use (another bioclip-nb server, or another "
                          f"program); choose another with --port, or see bioclip-nb status") from None
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def read_token(path: Path) -> str:
    """The token kept in ``path``, created (0600) if the file does not exist yet."""
    path = Path(path).expanduser()
    if path.is_file():
        token = path.read_text(encoding="utf-8").strip()
        if len(token) < 16:
            raise ValueError(f"{path} holds no usable token (16 characters or more); delete it to get a new one")
        return token
    token = new_token()
    write_private(path, token + "\n")
    return token


def serve(atlas: Path | Sequence[Path], settings: Settings, host: str = "127.0.0.1", port: int = 8765, device: str = "auto",
          runtime: str | None = None,
          idle_minutes: float = 30.0, token_file: Path | None = None, batch_window: float | None = None,
          max_concurrent: int = 32, timeout: float = 120.0, announce=print) -> int:
    """Serve ``atlas`` (or several: the first is the default, each is also at ``/v1/atlases/KEY``)
    until stopped (SIGTERM/SIGINT), or idle for ``idle_minutes`` (0: never)."""
    import uvicorn

    from ..core.atlas import Atlas
    from .server import Limits, create_app
    from .warm import Warm

    running = read_record(settings.home)
    if running is not None:
        raise OSError(f"a bioclip-nb server already runs from {settings.home} ({running.url}, pid {running.pid}); "
                      "use it, or stop it with bioclip-nb stop")
    token = read_token(token_file) if token_file else new_token()
    paths = [atlas] if isinstance(atlas, str | Path) else list(atlas)
    atlases: list[Atlas] = []
    try:
        for path in paths:
            atlases.append(Atlas.open(path, settings=settings))     # refuse a broken atlas before listening
    except BaseException:
        for done in atlases:
            done.close()
        raise
    opened = atlases[0]
    sock = bind(host, port)
    url = f"http://{'[' + host + ']' if ':' in host else host}:{sock.getsockname()[1]}"
    warm = Warm(atlases, settings, device=device, runtime=runtime, batch_window=batch_window)
    app = create_app(warm, token, Limits(max_concurrent=max_concurrent, timeout=timeout))
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=GRACE_SECONDS, access_log=False)
    server = uvicorn.Server(config)
    record = ServerRecord(url=url, token=token, pid=os.getpid(), atlas=str(opened.path), model=opened.model,
                          started=time.time(), idle_minutes=idle_minutes, log=os.environ.get(ENV_SERVER_LOG))
    where = write_record(settings.home, record)
    if not is_loopback(host):
        announce(f"warning: listening on {host}, beyond this machine; every request must carry the token "
                 f"(in {token_file or where}). Use it only on a trusted network (e.g. a cluster's internal one).")
    announce(f"bioclip-nb server on {url} (pid {os.getpid()}), atlas {opened.path}")
    for key, served in list(warm.served.items())[1:]:
        announce(f"also atlas {served.atlas.path} ({served.atlas.model}) at {url}/v1/atlases/{key}; its model loads on first use")
    announce(f"token and address in {where}; OpenAPI docs at {url}/docs")
    announce(f"stops after {idle_minutes:g} idle minutes; stop now with: bioclip-nb stop" if idle_minutes
             else "no idle shutdown; stop with: bioclip-nb stop")
    if idle_minutes:
        threading.Thread(target=_idle_watch, args=(server, warm, idle_minutes * 60), daemon=True).start()
    received: list[int] = []
    previous = _on_stop_signals(server, received)
    try:
        server.run(sockets=[sock])
    finally:
        remove_record(settings.home, pid=os.getpid())
        warm.close()
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    why = signal.Signals(received[0]).name if received else "idle or asked to"
    print(f"bioclip-nb server: stopped ({why}); its record {where} is removed", file=sys.stderr, flush=True)
    return 0


#: Seconds in-flight requests get to finish once a stop signal arrives.
GRACE_SECONDS = 10
#: Signals that stop the server cleanly: in-flight requests finish, its record (with the token) goes.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _on_stop_signals(server, received: list[int]) -> dict:
    """Make each stop signal ask uvicorn to shut down gracefully, never kill the process before
    ``serve`` has cleaned up. (uvicorn handles SIGTERM and SIGINT while it runs, then re-raises
    them once it has stopped: with the default handlers back, that re-raise would end the process
    before the record is removed. SIGHUP it does not handle at all.) Returns the previous handlers."""
    def stop(signum, _frame):
        received.append(signum)
        server.should_exit = True

    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}


def _idle_watch(server, warm, idle_seconds: float) -> None:
    step = min(5.0, max(0.2, idle_seconds / 10))
    while not server.should_exit:
        time.sleep(step)
        if warm.idle_seconds() >= idle_seconds:
            print(f"bioclip-nb server: idle for {idle_seconds / 60:g} minutes, stopping", file=sys.stderr, flush=True)
            server.should_exit = True


def start_background(atlas: Path | Sequence[Path], settings: Settings, device: str = "auto", runtime: str | None = None,
                     idle_minutes: float = 30.0,
                     wait: float = 900.0, on_wait=None) -> ServerRecord:
    """Start ``bioclip-nb serve`` detached (any free port) and wait until its model is loaded.

    Raises ``RuntimeError`` with the end of its log if it does not come up."""
    from .client import Client, ServerUnavailableError
    log = settings.home / "server.log"
    settings.home.mkdir(parents=True, exist_ok=True)
    paths = [atlas] if isinstance(atlas, str | Path) else list(atlas)
    cmd = [sys.executable, "-m", "bioclip_nb.commands.cli", "serve", *[a for p in paths for a in ("--atlas", str(p))], "--port", "0",
           "--device", device, *(["--runtime", runtime] if runtime else []), "--idle-minutes", f"{idle_minutes:g}"]
    env = dict(os.environ, **{ENV_HOME: str(settings.home), ENV_SERVER_LOG: str(log)})
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env, start_new_session=True)
    deadline = time.monotonic() + wait
    announced = False
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited at start ({_tail(log)})")
        record = read_record(settings.home)
        if record is not None and record.pid == proc.pid:
            try:
                health = Client(record.url, record.token, timeout=5).health()
            except ServerUnavailableError:
                health = None
            if health is not None and health["encoder"] != "loading":
                return record
            if health is not None and not announced and on_wait is not None:
                on_wait(record)
                announced = True
        time.sleep(0.2)
    proc.terminate()
    raise RuntimeError(f"the server did not get ready within {wait:.0f} s ({_tail(log)})")


def _tail(log: Path, lines: int = 3) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return " / ".join(text[-lines:]) or f"see {log}"


def stop(settings: Settings, grace: float = 10.0) -> ServerRecord | None:
    """Stop this home's server (SIGTERM, then SIGKILL after ``grace`` s); its record, or None if none ran."""
    record = read_record(settings.home)
    if record is None:
        return None
    try:
        os.kill(record.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and record.alive():
        time.sleep(0.1)
    if record.alive():
        os.kill(record.pid, signal.SIGKILL)
    remove_record(settings.home)
    return record
