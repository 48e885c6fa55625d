"""Search depth you can touch: a 2-D stand-in for the 768-D index.

A few thousand points, grouped by k-means into regions (the index's cells, drawn as a
Voronoi map). A search looks in the query's ``depth`` nearest regions only, so a query near a
border can miss its true best match just across it at depth 1 and find it at a higher depth.
The same FAISS code as the real index: an ``IndexIVFFlat`` over 2-D points.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np


@dataclass(frozen=True)
class Toy:
    """Points, their regions, and an IVF index over them."""

    points: np.ndarray        # (n, 2) float32
    centroids: np.ndarray     # (regions, 2)
    region: np.ndarray        # (n,) region of each point
    index: faiss.IndexIVFFlat


@dataclass(frozen=True)
class Found:
    """One toy search: what it scanned and what it found."""

    query: np.ndarray
    depth: int
    scanned: np.ndarray       # region numbers, nearest first
    best: int                 # the point the search returned
    truth: int                # the true nearest point

    @property
    def found_truth(self) -> bool:
        return self.best == self.truth


def make_toy(n: int = 3000, regions: int = 12, seed: int = 0) -> Toy:
    """Clumpy 2-D points in the unit square, split into ``regions`` by k-means."""
    rng = np.random.default_rng(seed)
    centres = rng.random((regions * 2, 2))
    points = (centres[rng.integers(0, len(centres), n)] + rng.normal(0, 0.06, (n, 2))).clip(0, 1).astype(np.float32)
    quantizer = faiss.IndexFlatL2(2)
    index = faiss.IndexIVFFlat(quantizer, 2, regions)
    index.cp.seed = seed
    index.train(points)
    index.add(points)
    centroids = quantizer.reconstruct_n(0, regions)
    _, region = quantizer.search(points, 1)
    return Toy(points, centroids, region[:, 0], index)


def search(toy: Toy, query, depth: int) -> Found:
    """The toy index's best match for ``query`` scanning ``depth`` regions, and the true one."""
    q = np.asarray(query, dtype=np.float32).reshape(1, 2)
    toy.index.nprobe = int(depth)
    _, ids = toy.index.search(q, 1)
    _, order = toy.index.quantizer.search(q, int(depth))
    truth = int(np.argmin(((toy.points - q) ** 2).sum(axis=1)))
    return Found(q[0], int(depth), order[0], int(ids[0, 0]), truth)


def depth_needed(toy: Toy, query) -> int:
    """The smallest depth at which the search finds the true best match."""
    for depth in range(1, len(toy.centroids) + 1):
        if search(toy, query, depth).found_truth:
            return depth
    return len(toy.centroids)


def border_query(toy: Toy, seed: int = 1, tries: int = 20000) -> np.ndarray:
    """A query near a border: its true best match lies in another region than its own, so
    depth 1 misses it (the picture the upstream tutorial draws)."""
    rng = np.random.default_rng(seed)
    for q in (0.15 + 0.7 * rng.random((tries, 2))).astype(np.float32):     # away from the edges, to be seen
        if depth_needed(toy, q) >= 2:
            return q
    raise ValueError("no border query found; use more points or regions")


def draw(toy: Toy, found: Found, ax=None, resolution: int = 300):
    """The regions as a Voronoi map (the scanned ones bright), the points, the query (a red X)
    and its true best match (a green star)."""
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 5.5))
    grid = np.stack(np.meshgrid(np.linspace(0, 1, resolution), np.linspace(0, 1, resolution)), -1).reshape(-1, 2)
    _, owner = toy.index.quantizer.search(grid.astype(np.float32), 1)
    owner = owner[:, 0].reshape(resolution, resolution)
    scanned = np.isin(owner, found.scanned)
    ax.imshow(np.where(scanned, 1.0, 0.25), extent=(0, 1, 0, 1), origin="lower", cmap="Blues", vmin=0, vmax=1.4, alpha=0.6)
    ax.contour(np.linspace(0, 1, resolution), np.linspace(0, 1, resolution), owner, levels=np.arange(len(toy.centroids)) + 0.5,
               colors="#555555", linewidths=0.6)
    ax.scatter(toy.points[:, 0], toy.points[:, 1], s=2, c="#888888")
    ax.scatter(*toy.points[found.truth], marker="*", s=260, c="#2ca02c", edgecolors="black", zorder=5, label="true best match")
    ax.scatter(*found.query, marker="x", s=120, c="#d62728", linewidths=3, zorder=6, label="query")
    if not found.found_truth:
        ax.scatter(*toy.points[found.best], marker="o", s=90, facecolors="none", edgecolors="#d62728", linewidths=2,
                   zorder=5, label="what the search found")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xticks([])
    ax.set_yticks([])
    verdict = "found the star" if found.found_truth else "missed the star"
    ax.set_title(f"depth {found.depth}: {len(found.scanned)} of {len(toy.centroids)} regions scanned, {verdict}", fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=3, fontsize=8, frameon=False)
    return ax
