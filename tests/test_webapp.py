"""`bioclip-nb dashboard` owns what it starts: real processes, real Chromium, checked with psutil."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest
from helpers.voila import CHROMIUM, CHROMIUM_ARGS, free_port

from bioclip_nb.commands.webapp import ServeOptions, describe, voila_command

needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium")


def test_voila_command_carries_the_cull_settings():
    cmd = voila_command(ServeOptions(port=9000, cull_idle=0.5, open_browser=False))
    assert "--MappingKernelManager.cull_idle_timeout=30" in cmd and "--MappingKernelManager.cull_interval=15" in cmd
    assert "--MappingKernelManager.cull_connected=True" in cmd and "--no-browser" in cmd
    assert not any("cull" in a for a in voila_command(ServeOptions(cull_idle=0)))
    text = describe(ServeOptions(cull_idle=30), "http://localhost:8866/")
    assert "Ctrl+C" in text and "idle for 30 minutes" in text
    assert "kept" in describe(ServeOptions(cull_idle=0), "u")


def test_cull_idle_must_be_minutes(capsys):
    from bioclip_nb.commands.cli import main
    with pytest.raises(SystemExit) as exc:
        main(["dashboard", "--cull-idle", "soon"])
    assert exc.value.code == 2 and "takes minutes" in capsys.readouterr().err


class Command:
    """`bioclip-nb dashboard` in a subprocess, with its whole process tree tracked."""

    def __init__(self, atlas, home, cull_idle: float = 30.0):
        self.port = free_port()
        env = dict(os.environ, BIOCLIP_NB_HOME=str(home))
        self.log = open(home / f"dashboard-{self.port}.log", "w")   # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bioclip_nb.commands.cli", "dashboard", "--atlas", str(atlas), "--no-browser",
             "--port", str(self.port), "--cull-idle", str(cull_idle)],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}/"
        # Wait for the port, not the page: every page request starts a kernel.
        if not _wait_until(lambda: _listening(self.port), timeout=120, step=0.3):
            raise RuntimeError(f"the dashboard did not start; see {self.log.name}")
        self.tree = self.processes()

    def processes(self) -> list[psutil.Process]:
        try:
            me = psutil.Process(self.proc.pid)
            return [me, *me.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kernels(self) -> list[psutil.Process]:
        return [p for p in self.processes()[1:] if _is_kernel(p)]

    def output(self) -> str:
        self.log.flush()
        return open(self.log.name).read()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _is_kernel(p: psutil.Process) -> bool:
    try:
        return "ipykernel" in " ".join(p.cmdline())
    except psutil.NoSuchProcess:
        return False


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def _wait_until(condition, timeout: float, step: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def _open_pages(cmd: Command, n: int) -> set[int]:
    """Open ``n`` dashboard pages, each up to its widgets, then close the browser without running
    the pages' unload handlers (as a crash, a lost network or a killed browser does). Returns
    the pids of the kernels seen."""
    from playwright.sync_api import sync_playwright
    seen: set[int] = set()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for _ in range(n):
            page = browser.new_page()
            page.goto(cmd.base, timeout=120_000)
            page.wait_for_selector("text=Upload photo", timeout=120_000)
            seen |= {k.pid for k in cmd.kernels()}
        browser.close()
    return seen


@pytest.mark.slow
@pytest.mark.browser
@needs_chromium
def test_closed_pages_are_culled_and_sigterm_leaves_nothing(demo_atlas, tmp_path):
    cmd = Command(demo_atlas, tmp_path, cull_idle=0.25)          # 15 s
    assert "Stop it with Ctrl+C" in cmd.output() and "idle for 0.25 minutes" in cmd.output()
    assert len(_open_pages(cmd, 3)) == 3                      # one kernel per page
    # culled within the timeout plus one check interval (and a margin for a slow machine)
    assert _wait_until(lambda: not cmd.kernels(), timeout=15 + 8 + 15), [p.pid for p in cmd.kernels()]
    everything = cmd.processes()
    cmd.proc.send_signal(signal.SIGTERM)
    cmd.proc.wait(30)
    assert _wait_until(lambda: not _alive(everything), timeout=20), [p.cmdline() for p in _alive(everything)]
    assert "stopped (SIGTERM)" in cmd.output()
    cmd.log.close()


@pytest.mark.slow
@pytest.mark.browser
@needs_chromium
@pytest.mark.parametrize("how", [signal.SIGHUP, signal.SIGKILL])
def test_no_way_of_stopping_leaves_a_server_or_kernel(demo_atlas, tmp_path, how):
    cmd = Command(demo_atlas, tmp_path, cull_idle=0)
    assert len(_open_pages(cmd, 2)) == 2
    assert len(cmd.kernels()) == 2                  # no culling: the kernels outlive their pages
    everything = cmd.processes()
    assert len(everything) >= 4                     # the command, Voilà, two kernels
    cmd.proc.send_signal(how)
    cmd.proc.wait(30)
    assert _wait_until(lambda: not _alive(everything), timeout=20), [p.cmdline() for p in _alive(everything)]
    cmd.log.close()
