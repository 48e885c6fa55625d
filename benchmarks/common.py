"""Shared helpers for benchmarks: timing, markdown tables, the results file."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

#: Set by ``python -m benchmarks --smoke`` (the test suite's run) and inherited by child processes.
SMOKE_ENV = "BIOCLIP_NB_BENCH_SMOKE"


def smoke() -> bool:
    """Whether this is a smoke run: the smallest sizes that still run every line of every
    benchmark (what the test suite does so the code never rots); its numbers mean nothing."""
    return os.environ.get(SMOKE_ENV) == "1"


def best_of(fn: Callable[[], object], repeat: int = 3, warmup: int = 1) -> float:
    """Median wall time of ``fn`` in seconds over ``repeat`` runs, after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def table(headers: list[str], rows: list[list]) -> str:
    """A GitHub markdown table."""
    def cell(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
