"""Serve the dashboard with Voilà as a child process that this command owns.

Nothing it starts outlives it:

* SIGTERM, SIGINT and SIGHUP (a SLURM job's end, a service manager, ``kill``, a closed
  terminal) stop Voilà with SIGTERM, which shuts its kernels down; whatever is still alive
  after a grace period is killed, kernels included.
* If this process dies without a chance to clean up (SIGKILL, a crash), the kernel sends
  Voilà SIGTERM (Linux's parent-death signal), and Voilà's kernels exit when Voilà is gone
  (ipykernel watches its parent).
* Kernels idle for ``cull_idle`` minutes are shut down by Voilà's kernel manager (a page
  whose tab vanished without saying goodbye, or one left open and unused); Voilà already
  shuts a kernel down when its page is closed normally.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

#: Seconds Voilà gets to shut its kernels down before what is left is killed.
GRACE = 10.0


@dataclass(frozen=True)
class ServeOptions:
    """How to serve: address, port, browser, and the idle time after which kernels are culled."""

    port: int = 8866
    ip: str = "127.0.0.1"
    open_browser: bool = True
    cull_idle: float = 30.0          # minutes; 0 turns culling off
    base_url: str = "/"              # the path Voilà serves under (behind jupyter-server-proxy: .../bioclip-nb/)


def notebook_path() -> Path:
    """The dashboard notebook shipped inside the package."""
    return Path(str(resources.files("bioclip_nb.notebooks").joinpath("dashboard.ipynb")))


def voila_command(options: ServeOptions) -> list[str]:
    """The Voilà command line for the dashboard notebook under ``options``."""
    cmd = [sys.executable, "-m", "voila", str(notebook_path()), f"--port={options.port}",
           f"--Voila.ip={options.ip}", "--VoilaConfiguration.show_tracebacks=False"]
    if options.base_url != "/":
        cmd.append(f"--Voila.base_url={options.base_url}")
    if options.cull_idle > 0:
        seconds = max(1, round(options.cull_idle * 60))
        cmd += [f"--MappingKernelManager.cull_idle_timeout={seconds}",
                f"--MappingKernelManager.cull_interval={max(1, min(60, seconds // 2))}",
                "--MappingKernelManager.cull_connected=True"]
    if not options.open_browser:
        cmd.append("--no-browser")
    return cmd


def describe(options: ServeOptions, url: str) -> str:
    """What the command prints on start: where, how to stop it, and what it culls."""
    cull = (f"Kernels idle for {options.cull_idle:g} minutes are shut down (a page left open then needs a "
            "reload); change this with --cull-idle MINUTES (0: never)." if options.cull_idle > 0
            else "Idle kernels are kept (--cull-idle 0); each open page holds one until it is closed.")
    return (f"Dashboard: {url}\n"
            f"Stop it with Ctrl+C (or SIGTERM/SIGHUP): Voilà and every kernel it started are shut down.\n{cull}")


def _die_with_parent() -> None:  # runs in the child between fork and exec
    os.setsid()                  # its own process group: a terminal's Ctrl+C reaches us, we stop it
    exit_with_parent()


def exit_with_parent() -> None:
    """Have Linux send this process SIGTERM when its parent dies (``PR_SET_PDEATHSIG``): a
    dashboard started by a Jupyter server (``launcher``) stops, with Voilà and its kernels, when
    that server goes away without stopping it. Elsewhere a no-op."""
    if sys.platform.startswith("linux"):
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)         # PR_SET_PDEATHSIG


def stop_tree(proc: subprocess.Popen, grace: float = GRACE) -> None:
    """Stop Voilà politely (it shuts its kernels down), then kill whatever of its tree is left."""
    import psutil
    try:
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(tree, timeout=grace)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)
    proc.wait()


def serve(atlas: Path | list[Path], options: ServeOptions, env: dict[str, str] | None = None) -> int:
    """Run Voilà on the dashboard notebook for ``atlas`` (or several: a model selector switches)
    until it exits or we are told to stop."""
    paths = [atlas] if isinstance(atlas, str | Path) else atlas
    env = dict(os.environ if env is None else env, BIOCLIP_NB_ATLAS=os.pathsep.join(str(Path(p).resolve()) for p in paths))
    proc = subprocess.Popen(voila_command(options), env=env, preexec_fn=_die_with_parent)
    stopping: list[int] = []

    def on_signal(signum, _frame) -> None:
        stopping.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        while proc.poll() is None and not stopping:
            time.sleep(0.2)
    finally:
        stop_tree(proc)
        for s, handler in previous.items():
            signal.signal(s, handler)
    if stopping:
        sys.stderr.write(f"bioclip-nb dashboard: stopped ({signal.Signals(stopping[0]).name}); "
                         "Voilà and its kernels are shut down\n")
        return 0
    return proc.returncode or 0
