"""Real ``bioclip-nb serve`` processes (and the same app on a thread) on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from bioclip_nb.service.statefile import ServerRecord, read_record


def cli(*args: str, home: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``bioclip-nb ARGS`` as a user would, with its own home."""
    full = dict(os.environ, BIOCLIP_NB_HOME=str(home), **(env or {}))
    return subprocess.run([sys.executable, "-m", "bioclip_nb.commands.cli", *args], env=full, capture_output=True, text=True,
                          timeout=timeout)


def wait_for_record(home: Path, pid: int, timeout: float = 120.0, ready: bool = True) -> ServerRecord:
    """The server's record once it answers (and, with ``ready``, once its encoder is loaded)."""
    from bioclip_nb.errors import ServerError
    from bioclip_nb.service.client import Client
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = read_record(home)
        if record is not None and record.pid == pid:
            try:
                health = Client(record.url, record.token, timeout=5).health()
                if not ready or health["encoder"] != "loading":
                    return record
            except ServerError:
                pass
        time.sleep(0.1)
    raise TimeoutError(f"no server record from pid {pid} under {home}")


@contextmanager
def server_process(atlas: Path, home: Path, *args: str, env: dict | None = None):
    """``bioclip-nb serve --atlas ATLAS --port 0 --idle-minutes 0 ARGS``; yields ``(process, record)``."""
    home.mkdir(parents=True, exist_ok=True)
    log = open(home / "serve.log", "a")
    cmd = [sys.executable, "-m", "bioclip_nb.commands.cli", "serve", "--atlas", str(atlas), "--port", "0", "--idle-minutes", "0",
           *args]
    proc = subprocess.Popen(cmd, env=dict(os.environ, BIOCLIP_NB_HOME=str(home), **(env or {})), stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        record = wait_for_record(home, proc.pid)
        yield proc, record
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


@contextmanager
def server_thread(warm, token: str, port: int = 0, limits=None):
    """The same app on a thread of this process (to hand it a fetcher that resolves test hosts)."""
    import uvicorn

    from bioclip_nb.service.run import bind
    from bioclip_nb.service.server import create_app
    sock = bind("127.0.0.1", port)
    server = uvicorn.Server(uvicorn.Config(create_app(warm, token, limits), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
