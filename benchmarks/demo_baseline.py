"""What the demo's accuracy figure means: the stand-in encoder against a plain colour histogram.

The demo's specimens are drawings whose colours follow the lineage, so colour alone finds most
species. This puts the stand-in encoder's held-out accuracy beside that of the foreground colour
histogram, nearest neighbour over the same atlas images, in one run: the demo is a smoke test of
the pipeline, not evidence of retrieval quality.

    python -m benchmarks.demo_baseline [--demo DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from bioclip_nb import Atlas, load_encoder
from bioclip_nb.encoders.pixel import SIZE, foreground
from bioclip_nb.layout import IMAGES_DIR, PIXEL_MODEL, QUERIES_DIR, VECTORS_FILE

from .common import table


def colour_histogram(image: Image.Image) -> np.ndarray:
    """The subject's colours: a 4x4x4 RGB histogram of the foreground pixels, unit length."""
    rgb = np.asarray(image.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR), dtype=np.float64) / 255
    fg = foreground(rgb)
    q = np.minimum((rgb * 4).astype(int), 3)
    hist = np.bincount((q[..., 0] * 16 + q[..., 1] * 4 + q[..., 2]).ravel(), weights=fg.ravel().astype(float),
                       minlength=64)
    hist = np.sqrt(hist)
    return hist / max(np.linalg.norm(hist), 1e-12)


def _accuracy(found: pd.DataFrame, truth: pd.DataFrame) -> tuple[float, float]:
    species = (found["genus"].to_numpy() == truth["genus"].to_numpy()) & \
              (found["species"].to_numpy() == truth["species"].to_numpy())
    return float(species.mean()), float((found["genus"].to_numpy() == truth["genus"].to_numpy()).mean())


def measure(demo: Path) -> dict:
    """Held-out top-1 accuracy at species and genus: histogram, stand-in exact, stand-in IVF-PQ."""
    truth = pd.read_csv(demo / QUERIES_DIR / "index.csv")
    queries = [Image.open(demo / QUERIES_DIR / f) for f in truth["file"]]
    with Atlas.open(demo) as atlas:
        if atlas.model != PIXEL_MODEL:
            raise ValueError(f"{demo} was embedded with {atlas.model}; this compares the pixel stand-in")
        rows = atlas.lookup(np.arange(atlas.count))
        # every specimen's copy is kept (a few records have no URL, as in the real corpus)
        images = [Image.open(demo / IMAGES_DIR / f"{int(i):07d}.jpg") for i in rows["id"]]
        hist_db = np.stack([colour_histogram(im) for im in images])
        hist_q = np.stack([colour_histogram(im) for im in queries])
        by_hist = rows.iloc[np.argmax(hist_q @ hist_db.T, axis=1)].reset_index(drop=True)
        encoder = load_encoder(PIXEL_MODEL)
        vectors = np.stack([encoder.encode(im).embedding for im in queries])
        exact = rows.iloc[np.argmax(vectors @ np.load(demo / VECTORS_FILE).T, axis=1)].reset_index(drop=True)
        hits = atlas.search(vectors, top_n=1, nprobe=min(16, atlas.nlist))
        ivfpq = hits.reset_index(drop=True)
    results = {"colour histogram, exact": _accuracy(by_hist, truth),
               "stand-in encoder, exact": _accuracy(exact, truth),
               f"stand-in encoder, IVF-PQ nprobe {min(16, atlas.nlist)} (the README's figure)": _accuracy(ivfpq, truth)}
    return {"queries": len(truth), "images": len(rows), "results": results}


def demo_atlas(quick: bool = False, workdir: Path | None = None) -> Path:
    """The demo atlas with the stand-in encoder (fewer drawings per species when ``quick``),
    built in ``workdir`` unless it is there already."""
    from bioclip_nb.demo import build_demo
    workdir = workdir or Path(tempfile.mkdtemp(prefix="bioclip-demo-bench-"))
    per_species = 8 if quick else 38
    demo = workdir / f"demo-{per_species}"
    if not (demo / QUERIES_DIR / "index.csv").is_file():
        build_demo(demo, model=PIXEL_MODEL, per_species=per_species, force=True, progress=False)
    return demo


def run(quick: bool = False, workdir: Path | None = None) -> dict:
    """The benchmark suite's entry: builds a demo (smaller when ``quick``) in ``workdir``."""
    m = measure(demo_atlas(quick, workdir))
    rows = [[name, f"{sp:.0%}", f"{ge:.0%}"] for name, (sp, ge) in m["results"].items()]
    md = (f"{m['queries']} held-out drawings against {m['images']:,} atlas images; top hit of the right species "
          "and genus.\n\n" + table(["method", "species", "genus"], rows) +
          "\n\nColour alone finds most of the demo's species: the demo shows the pipeline works end to "
          "end, not how well BioCLIP 2 (or the stand-in) retrieves real photos.")
    return {"title": "The demo atlas is a smoke test: colour histogram against the stand-in encoder",
            "markdown": md, "results": m}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.demo_baseline", description=__doc__.splitlines()[0])
    p.add_argument("--demo", type=Path, default=None, help="a demo atlas (default: build one in a temporary folder)")
    args = p.parse_args(argv)
    result = run(workdir=None) if args.demo is None else {"markdown": "", "results": measure(args.demo)}
    if args.demo is not None:
        m = result["results"]
        print(table(["method", "species", "genus"], [[k, f"{a:.0%}", f"{b:.0%}"] for k, (a, b) in m["results"].items()]))
    else:
        print(result["markdown"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
