"""The JupyterLab launcher entry: a real Jupyter server with jupyter-server-proxy starts the
dashboard behind its own URL (as under JupyterHub), and stops it when the server goes."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest
import requests
from helpers.voila import free_port

from bioclip_nb.commands.launcher import setup_proxy


def test_the_entry_starts_the_dashboard_under_the_proxy_path(monkeypatch):
    monkeypatch.delenv("BIOCLIP_NB_SERVER", raising=False)
    spec = setup_proxy()
    cmd = spec["command"]
    assert cmd[1:4] == ["-m", "bioclip_nb.commands.cli", "dashboard"] and "--server" not in cmd
    assert cmd[cmd.index("--base-url") + 1] == "{base_url}bioclip-nb/" and "--exit-with-parent" in cmd
    assert spec["absolute_url"] is True and spec["launcher_entry"]["title"] == "bioclip-nb"
    assert open(spec["launcher_entry"]["icon_path"]).read().startswith("<svg")
    monkeypatch.setenv("BIOCLIP_NB_SERVER", "http://127.0.0.1:8765")     # server-backed kernels
    cmd = setup_proxy()["command"]
    assert cmd[cmd.index("--server") + 1] == "http://127.0.0.1:8765"


def _children(proc: subprocess.Popen) -> list[psutil.Process]:
    try:
        return psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.mark.slow
def test_jupyter_lab_lists_and_proxies_the_dashboard(demo_atlas, tmp_path):
    port, token, base = free_port(), "t" * 32, "/user/ana/"
    env = dict(os.environ, BIOCLIP_NB_ATLAS=str(demo_atlas), BIOCLIP_NB_HOME=str(tmp_path / "home"))
    env.pop("BIOCLIP_NB_SERVER", None)
    log = open(tmp_path / "jupyter.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "jupyter", "server", "--no-browser", "--allow-root", f"--port={port}",
                               f"--ServerApp.token={token}", f"--ServerApp.base_url={base}", f"--ServerApp.root_dir={tmp_path}"],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    root, auth = f"http://127.0.0.1:{port}{base}", {"Authorization": f"token {token}"}
    started = []
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                info = requests.get(root + "server-proxy/servers-info", headers=auth, timeout=5)
                if info.status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, (tmp_path / "jupyter.log").read_text()[-2000:]
            time.sleep(1)
        entry = next(s for s in info.json()["server_processes"] if s["name"] == "bioclip-nb")
        assert entry["launcher_entry"]["enabled"] and entry["launcher_entry"]["title"] == "bioclip-nb"
        assert requests.get(f"http://127.0.0.1:{port}{entry['launcher_entry']['icon_url']}", headers=auth,
                            timeout=10).text.startswith("<svg")
        page = requests.get(root + "bioclip-nb/", headers=auth, timeout=300)     # starts the dashboard on demand
        assert page.status_code == 200, page.text[:500]
        assert f"{base}bioclip-nb/voila/" in page.text            # Voila's own links carry the proxy path
        assert requests.get(root + "bioclip-nb/", timeout=30, allow_redirects=False).status_code in (302, 401, 403)  # no token: refused
        started = _children(server)
        assert any("voila" in " ".join(p.cmdline()) for p in started)
    finally:
        server.kill()                         # as a crash, an OOM kill or a hub's culler would: no clean-up
        server.wait(30)
        log.close()
    gone, alive = psutil.wait_procs(started, timeout=60)
    leftover = [" ".join(p.cmdline())[:120] for p in alive]
    for p in alive:
        p.kill()
    assert leftover == []                     # the dashboard, Voila and the kernels still stop with the server
