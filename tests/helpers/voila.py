"""A real Voilà server serving notebooks/dashboard.ipynb, and Debian's Chromium via Playwright."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def voila_server(atlas: Path, home: Path, timeout: float = 90.0, env: dict | None = None):
    """Serve the dashboard notebook on ``atlas``; yield ``(base_url, process)``."""
    port = free_port()
    env = dict(os.environ, BIOCLIP_NB_ATLAS=str(atlas), BIOCLIP_NB_HOME=str(home), **(env or {}))
    log = open(home / f"voila-{port}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "voila", str(ROOT / "notebooks" / "dashboard.ipynb"), "--no-browser",
                             f"--port={port}", "--Voila.ip=127.0.0.1", "--VoilaConfiguration.show_tracebacks=False"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    base = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base, timeout=5) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        raise RuntimeError(f"voila did not start; see {log.name}")
    try:
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def upload(page, path: Path) -> None:
    """Choose a file through the FileUpload widget, as a user would."""
    with page.expect_file_chooser() as chooser:
        page.click("text=Upload photo")
    chooser.value.set_files(str(path))


def kernel_memory_mb(proc) -> list[float]:
    """Resident memory of each kernel started by the Voilà server."""
    import psutil
    kids = psutil.Process(proc.pid).children(recursive=True)
    return [round(k.memory_info().rss / 2**20, 1) for k in kids if "ipykernel" in " ".join(k.cmdline())]
