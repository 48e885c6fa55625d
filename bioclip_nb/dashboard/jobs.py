"""Long work off the kernel's message thread, with its results applied in one place.

A widget callback runs on the kernel's message loop: while it runs, the page cannot answer.
So anything that may take longer than a blink (fetching images, the full-size image of a
selected result, a ZIP of the results, the atlas map) is a :class:`Job` on a worker thread.
Its progress and its result are handed to :meth:`JobRunner.apply`, which runs them on the
kernel's event loop when there is one (a live notebook or Voilà page) and otherwise under one
lock (tests, scripts): widgets are only ever changed from one place at a time.

Jobs belong to a search ``generation``. A new search cancels the jobs of older generations,
and a cancelled job's results never reach the page.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

log = logging.getLogger("bioclip_nb.dashboard")


class Job:
    """One piece of background work: its cancel flag, its generation and its thread."""

    def __init__(self, runner: JobRunner, name: str, generation: int | None):
        self.runner = runner
        self.name = name
        self.generation = generation
        self.cancel = threading.Event()
        self.thread: threading.Thread | None = None

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def apply(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` in the one place widgets are changed, unless this job was cancelled."""
        def guarded() -> None:
            if not self.cancelled:
                fn()
        self.runner.apply(guarded)

    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


class JobRunner:
    """Starts jobs on threads and applies their results on the UI's event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None):
        if loop is None:
            try:
                loop = asyncio.get_running_loop()     # the kernel's loop, when built inside a cell
            except RuntimeError:
                loop = None
        self.loop = loop
        self.generation = 0
        self._jobs: list[Job] = []
        self._lock = threading.RLock()

    def apply(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` on the event loop (from any thread), or here under the UI lock."""
        loop = self.loop
        if loop is not None and loop.is_running() and threading.current_thread() is not threading.main_thread():
            loop.call_soon_threadsafe(self._run_logged, fn)
        else:
            self._run_logged(fn)

    def _run_logged(self, fn: Callable[[], Any]) -> None:
        with self._lock:
            try:
                fn()
            except Exception:  # a failure while showing a result must not kill the loop
                log.error("applying a background result failed:\n%s", traceback.format_exc())

    def new_generation(self) -> int:
        """A new search: cancel every job of the older ones; return the new generation."""
        with self._lock:
            self.generation += 1
            for job in self._jobs:
                if job.generation is not None and job.generation < self.generation:
                    job.cancel.set()
            return self.generation

    def start(self, name: str, work: Callable[[Job], Any], on_error: Callable[[BaseException], None],
              generation: int | None = None, replace: bool = True) -> Job:
        """Run ``work(job)`` on a thread. ``replace`` cancels a running job of the same name;
        an exception ends in ``on_error`` (applied in the UI's place, never a traceback on the page)."""
        job = Job(self, name, generation)
        with self._lock:
            if replace:
                for old in self._jobs:
                    if old.name == name:
                        old.cancel.set()
            self._jobs = [j for j in self._jobs if j.alive()]
            self._jobs.append(job)

        def run() -> None:
            try:
                work(job)
            except Exception as exc:  # the thread has no caller: report it where the user looks
                if not job.cancelled:
                    log.error("background job %s failed:\n%s", name, traceback.format_exc())
                    job.apply(lambda error=exc: on_error(error))

        job.thread = threading.Thread(target=run, name=f"bioclip-{name}", daemon=True)
        job.thread.start()
        return job

    def running(self, name: str | None = None) -> list[Job]:
        """Jobs still running (of one name)."""
        with self._lock:
            return [j for j in self._jobs if j.alive() and (name is None or j.name == name)]

    def wait(self, timeout: float = 60.0, name: str | None = None) -> None:
        """Block until the running jobs (of one name) are done, and the jobs they started too
        (tests, scripts): the gallery's job starts the occurrence lookup when it ends."""
        deadline = time.monotonic() + timeout
        while (jobs := [j for j in self.running(name) if j.thread is not threading.current_thread()]):
            for job in jobs:
                job.thread.join(max(0.0, deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                return
