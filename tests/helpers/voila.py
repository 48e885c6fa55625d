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
def running(cmd: list[str], url: str, log_path: Path, env: dict, timeout: float, cwd: Path | None = None):
    """Start ``cmd``, wait until ``url`` answers 200, yield the process; stop it afterwards."""
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.3)
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError(f"{cmd[2]} did not start; see {log_path}")
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextmanager
def voila_server(atlas: Path, home: Path, timeout: float = 90.0, env: dict | None = None, args: tuple[str, ...] = ()):
    """Serve the dashboard notebook on ``atlas`` (``args`` for Voilà, e.g. ``--theme=dark``);
    yield ``(base_url, process)``."""
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    cmd = [sys.executable, "-m", "voila", str(ROOT / "notebooks" / "dashboard.ipynb"), "--no-browser",
           f"--port={port}", "--Voila.ip=127.0.0.1", "--VoilaConfiguration.show_tracebacks=False", *args]
    env = dict(os.environ, BIOCLIP_NB_ATLAS=str(atlas), BIOCLIP_NB_HOME=str(home), **(env or {}))
    with running(cmd, base, home / f"voila-{port}.log", env, timeout, cwd=ROOT) as proc:
        yield base, proc


def choose_files(page, act, files) -> None:
    """Run ``act`` (a click or a key press on the upload button) and give the file chooser ``files``.

    Playwright asks Chromium to intercept file choosers when the first listener arrives and does
    not wait for the answer, so a press sent at once can open a chooser nobody sees (puppeteer#6040,
    a CI flake here). A user whose dialog did not appear presses again; so does this, once.
    """
    choosers: list = []

    def listener(chooser) -> None:          # a function: Playwright tags its handlers with attributes
        choosers.append(chooser)

    page.on("filechooser", listener)
    try:
        for wait_ms in (5_000, 30_000):
            act()
            for _ in range(wait_ms // 100):
                if choosers:
                    choosers[0].set_files(files)
                    return
                page.wait_for_timeout(100)
        raise AssertionError("the upload button opened no file chooser, after two presses")
    finally:
        page.remove_listener("filechooser", listener)


def upload(page, paths: Path | list[Path]) -> None:
    """Choose a file (or several) through the FileUpload widget, as a user would."""
    files = [str(p) for p in paths] if isinstance(paths, list) else str(paths)
    choose_files(page, lambda: page.click("text=Upload photo"), files)


def kernel_memory_mb(proc) -> list[float]:
    """Resident memory of each kernel started by the Voilà server."""
    import psutil
    kids = psutil.Process(proc.pid).children(recursive=True)
    return [round(k.memory_info().rss / 2**20, 1) for k in kids if "ipykernel" in " ".join(k.cmdline())]


def search_page(page, base: str, query: Path, top_n: int = 10) -> None:
    """Open the dashboard, upload ``query``, search, and wait until every card has settled
    (a picture, or the reason it has none)."""
    page.goto(base, timeout=120_000)
    page.wait_for_selector("text=Upload photo", timeout=120_000)
    upload(page, query)
    page.wait_for_selector(".bnb-status:has-text('encoded')", timeout=60_000)
    page.click("button:has-text('Search')")
    page.wait_for_function(f"document.querySelectorAll('.bnb-tile').length >= {top_n}", timeout=60_000)
    settled(page, top_n)


def settled(page, top_n: int) -> None:
    """Wait until ``top_n`` cards hold a picture or say why not ("loading..." is .bnb-loading)."""
    page.wait_for_function("document.querySelectorAll('.bnb-tile img.bnb-thumb, .bnb-tile .bnb-missing').length >= "
                           f"{top_n} && !document.querySelector('.bnb-tile .bnb-loading') "
                           "&& !document.querySelector('.bnb-status.working')", timeout=60_000)


@contextmanager
def jupyterlab_server(root: Path, env: dict, timeout: float = 120.0):
    """JupyterLab serving ``root`` with no token (127.0.0.1 only); yield its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", f"--port={port}",
           "--ServerApp.ip=127.0.0.1", "--ServerApp.token=", "--ServerApp.password=", f"--ServerApp.root_dir={root}",
           "--LabApp.news_url=None"]
    with running(cmd, base + "/api", root / f"lab-{port}.log", dict(os.environ, **env), timeout):
        yield base
