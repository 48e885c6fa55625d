"""100 result cards in the browser: one anywidget (ours) against five ipywidgets per card (previous).

    python -m benchmarks.cards

Voilà (a real server) runs a notebook that draws a page of N synthetic results and fills
every thumbnail, one way or the other; Debian's Chromium times from navigation until every
card shows its picture. The kernel counts the widgets each way creates and the time it spends
building them. The previous gallery is reproduced below as it was: per card a VBox of the
picture (an HTML placeholder, then an Image), an HTML caption, and an HBox of a Details
Button and a mark ToggleButton, each widget with its Layout (and Style) models.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from .common import smoke, table

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
WAYS = {"previous": "five ipywidgets per card (and their layouts)", "ours": "one anywidget for every card"}


#: The previous gallery's placeholder while a picture loads (as it drew it; the dashboard's
#: cards now draw their own).
LOADING = '<div class="bnb-missing bnb-loading">loading...</div>'

def page_of_results(n: int) -> tuple:
    """A synthetic page: hits (the columns the cards read) and a JPEG thumbnail per hit."""
    import pandas as pd
    from PIL import Image
    rng = np.random.default_rng(0)
    hits = pd.DataFrame({"id": np.arange(1000, 1000 + n), "rank": np.arange(1, n + 1),
                         "common_name": [f"Common name {i}" for i in range(n)], "genus": "Vulpes",
                         "species": [f"species{i}" for i in range(n)], "similarity": np.linspace(0.95, 0.5, n),
                         "exact": True})
    def jpeg() -> bytes:
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (160, 160, 3), dtype=np.uint8)).save(buf, "JPEG", quality=70)
        return buf.getvalue()
    return hits, [jpeg() for _ in range(n)]


def previous_gallery(hits, thumbs) -> object:
    """The gallery as it was before the cards became one widget (built and filled)."""
    import ipywidgets as w

    from bioclip_nb.dashboard import html
    grid = w.GridBox([], layout=w.Layout(grid_template_columns="repeat(auto-fill, 176px)", grid_gap="8px"))
    tiles = []
    for _, row in hits.iterrows():
        details = w.Button(description="Details", layout=w.Layout(width="78px"))
        mark = w.ToggleButton(value=False, description="☆ Mark", layout=w.Layout(width="78px"))
        caption = (f'<div class="bnb-caption"><b>#{int(row["rank"])}</b> {html.escape(row["common_name"])}<br>'
                   f'<span class="sci">{html.escape(html.scientific(row))}</span><br>similarity {row["similarity"]:.3f}</div>')
        tile = w.VBox([w.HTML(LOADING), w.HTML(caption), w.HBox([details, mark])], layout=w.Layout(width="172px"))
        tile.add_class("bnb-tile")
        tiles.append(tile)
    grid.children = tiles
    for tile, data in zip(tiles, thumbs):            # the pictures arrive: each placeholder becomes an Image
        img = w.Image(value=data, format="jpeg", layout=w.Layout(width="160px", height="160px", object_fit="contain"))
        img.add_class("bnb-thumb")
        old = tile.children[0]
        tile.children = (img, *tile.children[1:])
        old.close()
    return grid


def our_gallery(hits, thumbs) -> object:
    from bioclip_nb.dashboard.cards import Gallery
    from bioclip_nb.images.fetch import FetchResult, FetchStatus
    gallery = Gallery(lambda hit_id: None)
    gallery.show(hits)
    for hit_id, data in zip(hits["id"], thumbs):
        gallery.fill(FetchResult(int(hit_id), None, FetchStatus.OK, data=data))
    return gallery.widget


def show(way: str, n: int) -> object:
    """The notebook's cell: build one way's gallery of ``n`` and report the kernel's side."""
    import ipywidgets as w
    hits, thumbs = page_of_results(n)
    before = len(w.Widget.widgets)
    t0 = time.perf_counter()
    widget = (previous_gallery if way == "previous" else our_gallery)(hits, thumbs)
    seconds = time.perf_counter() - t0
    report = w.HTML(f'<pre id="bnb-report">{json.dumps({"widgets": len(w.Widget.widgets) - before, "kernel_s": seconds})}</pre>')
    return w.VBox([report, widget])


def _notebook(folder: Path, way: str, n: int) -> Path:
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"from benchmarks.cards import show\nshow({way!r}, {n})")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / f"cards-{way}.ipynb"
    nbformat.write(nb, path)
    return path


def _serve(folder: Path, port: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "voila", str(folder), "--no-browser", f"--port={port}",
                             "--Voila.ip=127.0.0.1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("voila did not start")


def measure(n: int, repeat: int) -> list[list]:
    """One row per way: widgets, kernel seconds, and seconds until every card shows its picture."""
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(ROOT / "tests"))
    from helpers.voila import CHROMIUM_ARGS, free_port
    rows = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        folder = Path(tmp)
        for way in WAYS:
            _notebook(folder, way, n)
        port = free_port()
        server = _serve(folder, port)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for way, label in WAYS.items():
                times, report = [], {}
                for _ in range(repeat):
                    page = browser.new_page(viewport={"width": 1500, "height": 1000})
                    page.goto(f"http://127.0.0.1:{port}/voila/render/cards-{way}.ipynb", timeout=180_000)
                    page.wait_for_function(f"document.querySelectorAll('.bnb-tile img.bnb-thumb').length >= {n}",
                                           timeout=180_000, polling="raf")
                    times.append(page.evaluate("performance.now()") / 1000)
                    report = json.loads(page.locator("#bnb-report").inner_text())
                    page.close()
                rows.append([label, report["widgets"], report["kernel_s"], statistics.median(times)])
        finally:
            browser.close()
            server.terminate()
            server.wait(10)
    return rows


def run(quick: bool = False, workdir: Path | None = None) -> dict:
    n = 20 if smoke() else 100
    repeat = 1 if smoke() else 3
    rows = measure(n, repeat)
    md = table(["gallery", "widgets", "kernel s (build and fill)", "page s (navigation to every picture shown)"], rows)
    md += (f"\n\n{n} cards with 160 px JPEG thumbnails, filled as the fetcher fills them; Voilà and Debian's Chromium, "
           f"median of {repeat} page loads (each starts a kernel: the same for both). The page time includes Voilà's "
           "kernel start and the notebook's run.")
    return {"name": "cards", "title": f"Gallery cards: {n} results drawn in the browser", "markdown": md,
            "rows": [dict(zip(["gallery", "widgets", "kernel_s", "page_s"], r)) for r in rows]}


if __name__ == "__main__":
    out = run()
    print(out["title"])
    print(out["markdown"])
