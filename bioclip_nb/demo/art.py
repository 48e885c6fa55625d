"""Procedurally drawn specimens for the demo atlas.

Each species is drawn from traits inherited down its lineage, so the pictures carry the
taxonomy the way photos do (crudely): the body plan comes from kingdom, phylum, class and
order (a bird, a fish, a flower, a mushroom...), proportions from the family and genus, the
main colour from the genus, and a second colour and a pattern (stripes, spots, bands) from
the species. Every image then varies in pose, size, position, light and background.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from ..names import clean

SIZE = 160
_CANVAS = 2 * SIZE  # drawn at twice the size, then downsampled (anti-aliasing)
BACKGROUNDS = [(96, 128, 72), (120, 100, 76), (70, 110, 140), (140, 140, 132), (180, 170, 140), (60, 84, 60)]


def _unit(*names: str | None) -> float:
    """A stable number in [0, 1) from names."""
    h = hashlib.blake2b("|".join(n or "-" for n in names).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2**64


def _rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0), 1), min(max(v, 0), 1))
    return int(r * 255), int(g * 255), int(b * 255)


@dataclass(frozen=True)
class Traits:
    plan: str
    aspect: float         # body length / height
    parts: int            # legs, petals, arms...
    part_len: float
    head: float
    primary: tuple[int, int, int]
    secondary: tuple[int, int, int]
    pattern: str          # none, stripes, spots, bands
    pattern_scale: float


def body_plan(lineage: dict[str, str | None]) -> str:
    """The drawing's plan from the upper ranks."""
    k, p, c, o, f = (clean(lineage.get(r)) for r in ("kingdom", "phylum", "class", "order", "family"))
    if k == "Plantae":
        if p == "Bryophyta":
            return "moss"
        if c == "Polypodiopsida":
            return "fern"
        if c in ("Pinopsida", "Ginkgoopsida"):
            return "conifer"
        if o in ("Fagales", "Sapindales"):
            return "tree"
        if f == "Cactaceae":
            return "cactus"
        if o in ("Poales", "Arecales"):
            return "grass"
        return "flower"
    if k == "Fungi":
        if c == "Lecanoromycetes":
            return "lichen"
        if o in ("Polyporales", "Auriculariales"):
            return "bracket"
        if o in ("Pezizales", "Xylariales", "Geastrales", "Phallales"):
            return "cup"
        return "mushroom"
    if k == "Chromista":
        return "kelp"
    if k in ("Protozoa", "Bacteria"):
        return "blob"
    if p == "Chordata":
        if c == "Mammalia":
            return "mammal"
        if c == "Aves":
            return "bird"
        if c is None:
            return "fish"
        if c == "Reptilia":
            return "snake" if f in ("Viperidae", "Colubridae") else "turtle" if o == "Testudines" else "lizard"
        if c == "Amphibia":
            return "frog" if o == "Anura" else "lizard"
    if p == "Arthropoda":
        if c == "Arachnida":
            return "spider"
        if c == "Malacostraca":
            return "crab"
        if o in ("Lepidoptera", "Odonata"):
            return "butterfly" if o == "Lepidoptera" else "dragonfly"
        return "insect"
    if p == "Mollusca":
        return "octopus" if c == "Cephalopoda" else "shell"
    if p in ("Cnidaria", "Echinodermata"):
        return "star" if p == "Echinodermata" else "jelly"
    return "blob"


def traits(lineage: dict[str, str | None]) -> Traits:
    """Traits inherited down the lineage (see the module docstring)."""
    fam, gen, sp = lineage.get("family"), lineage.get("genus"), lineage.get("species")
    order = lineage.get("order")
    u_f, u_g, u_s = _unit(order, fam), _unit(fam, gen), _unit(gen, sp)
    u_s2, u_s3 = _unit(gen, sp, "2"), _unit(gen, sp, "3")
    hue = _unit(gen, "hue")
    primary = _rgb(hue + 0.06 * (u_s - 0.5), 0.45 + 0.5 * _unit(gen, "sat"), 0.45 + 0.5 * _unit(gen, "val"))
    hue2 = hue + 0.25 + 0.5 * _unit(gen, "hue2")
    secondary = _rgb(hue2 + 0.3 * (u_s - 0.5), 0.45 + 0.5 * u_s2, 0.3 + 0.65 * u_s3)
    return Traits(
        plan=body_plan(lineage),
        aspect=1.2 + 0.6 * u_f + 0.9 * u_g,
        parts=int(3 + 3 * u_f + 6 * u_g),
        part_len=0.5 + 0.5 * u_g,
        head=0.3 + 0.25 * u_f,
        primary=primary,
        secondary=secondary,
        pattern=("none", "stripes", "spots", "bands")[int(4 * _unit(gen, "pattern"))],
        pattern_scale=0.5 + _unit(gen, sp, "scale"),
    )


def draw(t: Traits, rng: np.random.Generator) -> Image.Image:
    """One specimen image (RGB, SIZE x SIZE)."""
    W = _CANVAS
    bg = np.clip(np.array(BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))], float) + rng.normal(0, 12, 3), 0, 255)
    y, x = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    shade = x * rng.normal(0, 15) + y * rng.normal(0, 15) + rng.normal(0, 4, (SIZE, SIZE))
    img = Image.fromarray(np.clip(bg + shade[..., None], 0, 255).astype(np.uint8))
    layer = Image.new("RGBA", (W, W), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    jitter = lambda c, s=8: tuple(int(np.clip(v + rng.normal(0, s), 0, 255)) for v in c)  # noqa: E731
    p, s = jitter(t.primary), jitter(t.secondary)
    _PLANS.get(t.plan, _blob)(d, t, p, s, rng, W)
    _pattern(layer, t, s, rng, W)
    layer = layer.rotate(float(rng.normal(0, 12)), resample=Image.Resampling.BILINEAR)
    size = int(SIZE * rng.uniform(0.85, 1.12))
    layer = layer.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    dx, dy = (int(v) for v in rng.normal(0, SIZE * 0.04, 2))
    img.paste(layer, ((SIZE - size) // 2 + dx, (SIZE - size) // 2 + dy), layer)
    light = float(rng.uniform(0.85, 1.15))
    return img.point(lambda v: min(255, int(v * light)))


def _pattern(layer: Image.Image, t: Traits, colour, rng, W) -> None:
    """Stripes, spots or bands in the second colour, only where the body is drawn."""
    if t.pattern == "none":
        return
    alpha = np.asarray(layer)[..., 3] > 0
    pat = Image.new("RGBA", layer.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(pat)
    step = int(W * 0.06 * t.pattern_scale) + 6
    if t.pattern == "stripes":
        for x0 in range(0, W, step * 2):
            d.polygon([(x0, 0), (x0 + step, 0), (x0 + step - W // 3, W), (x0 - W // 3, W)], fill=colour + (255,))
    elif t.pattern == "bands":
        for y0 in range(0, W, step * 2):
            d.rectangle([0, y0, W, y0 + step], fill=colour + (255,))
    else:
        for _ in range(int(40 / t.pattern_scale)):
            cx, cy = rng.uniform(0, W, 2)
            r = step * 0.45
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour + (255,))
    pat_arr = np.asarray(pat).copy()
    pat_arr[..., 3] = np.where(alpha, pat_arr[..., 3], 0)
    layer.alpha_composite(Image.fromarray(pat_arr))


# --------------------------------------------------------------------------- plans
def _ellipse(d, cx, cy, rx, ry, fill):
    d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=fill + (255,))


def _limb(d, x0, y0, angle, length, width, fill):
    x1, y1 = x0 + length * math.cos(angle), y0 + length * math.sin(angle)
    d.line([(x0, y0), (x1, y1)], fill=fill + (255,), width=max(2, int(width)))


def _mammal(d, t, p, s, rng, W):
    cx, cy, rx = W / 2, W / 2, W * 0.26
    ry = rx / t.aspect * 1.3
    for i in range(4):
        _limb(d, cx - rx * 0.7 + i * rx * 0.45, cy + ry * 0.5, math.pi / 2, ry * 1.3 * t.part_len + W * 0.06, W * 0.04, p)
    _limb(d, cx - rx, cy - ry * 0.2, math.pi * (1.1 + 0.2 * t.part_len), rx * 0.9, W * 0.035, p)
    _ellipse(d, cx, cy, rx, ry, p)
    hx, hy, hr = cx + rx * 1.0, cy - ry * 0.8, W * 0.1 * (0.8 + t.head)
    d.polygon([(hx - hr * 0.6, hy - hr * 0.6), (hx - hr * 0.1, hy - hr * 1.6), (hx + hr * 0.2, hy - hr * 0.5)], fill=p + (255,))
    _ellipse(d, hx, hy, hr, hr * 0.85, p)


def _bird(d, t, p, s, rng, W):
    cx, cy, rx = W / 2, W / 2, W * 0.2
    ry = rx / t.aspect * 1.6
    _limb(d, cx - rx * 0.2, cy + ry * 0.6, math.pi / 2, W * 0.14, W * 0.015, (60, 50, 40))
    _limb(d, cx + rx * 0.2, cy + ry * 0.6, math.pi / 2, W * 0.14, W * 0.015, (60, 50, 40))
    d.polygon([(cx - rx * 0.8, cy), (cx - rx * 1.9, cy - ry * 0.4 * t.part_len), (cx - rx * 1.8, cy + ry * 0.5)], fill=p + (255,))
    _ellipse(d, cx, cy, rx, ry, p)
    _ellipse(d, cx - rx * 0.1, cy - ry * 0.1, rx * 0.7, ry * 0.55, s)
    hx, hy, hr = cx + rx * 0.9, cy - ry * 0.9, W * 0.08 * (0.8 + t.head)
    _ellipse(d, hx, hy, hr, hr, p)
    d.polygon([(hx + hr * 0.8, hy - hr * 0.3), (hx + hr * (1.8 + t.part_len), hy), (hx + hr * 0.8, hy + hr * 0.3)], fill=(230, 180, 40, 255))


def _fish(d, t, p, s, rng, W):
    cx, cy, rx = W / 2, W / 2, W * 0.3
    ry = rx / t.aspect
    d.polygon([(cx - rx * 0.8, cy), (cx - rx * 1.4, cy - ry * 0.9), (cx - rx * 1.4, cy + ry * 0.9)], fill=p + (255,))
    d.polygon([(cx - rx * 0.3, cy - ry * 0.8), (cx + rx * 0.2, cy - ry * 1.5 * t.part_len), (cx + rx * 0.4, cy - ry * 0.7)], fill=p + (255,))
    _ellipse(d, cx, cy, rx, ry, p)
    _ellipse(d, cx + rx * 0.65, cy - ry * 0.2, W * 0.02, W * 0.02, (20, 20, 20))


def _snake(d, t, p, s, rng, W):
    pts = [(W * 0.12 + i * W * 0.076, W / 2 + W * 0.12 * math.sin(i * 0.9 + t.part_len * 3)) for i in range(11)]
    d.line(pts, fill=p + (255,), width=int(W * 0.07), joint="curve")
    _ellipse(d, pts[-1][0], pts[-1][1], W * 0.06, W * 0.045, p)


def _lizard(d, t, p, s, rng, W):
    cx, cy, rx = W / 2, W / 2, W * 0.22
    ry = rx / (t.aspect + 1)
    for i, a in enumerate((0.75, 0.25, 0.75, 0.25)):
        _limb(d, cx - rx * 0.6 + (i // 2) * rx * 1.2, cy, math.pi * (a + (0 if i % 2 else 1)), W * 0.12, W * 0.03, p)
    _limb(d, cx - rx, cy, math.pi, W * 0.3 * t.part_len + W * 0.05, W * 0.035, p)
    _ellipse(d, cx, cy, rx, ry, p)
    _ellipse(d, cx + rx * 1.1, cy, W * 0.07, W * 0.05, p)


def _turtle(d, t, p, s, rng, W):
    cx, cy = W / 2, W * 0.55
    _ellipse(d, cx + W * 0.26, cy, W * 0.06, W * 0.05, (110, 120, 70))
    for dx in (-0.15, 0.15):
        _ellipse(d, cx + W * dx, cy + W * 0.1, W * 0.05, W * 0.04, (110, 120, 70))
    d.chord([cx - W * 0.24, cy - W * 0.22, cx + W * 0.24, cy + W * 0.14], 180, 360, fill=p + (255,))


def _frog(d, t, p, s, rng, W):
    cx, cy = W / 2, W * 0.55
    for sgn in (-1, 1):
        _ellipse(d, cx + sgn * W * 0.2, cy + W * 0.08, W * 0.12, W * 0.07, p)
    _ellipse(d, cx, cy, W * 0.22, W * 0.15 * t.head * 2.2, p)
    for sgn in (-1, 1):
        _ellipse(d, cx + sgn * W * 0.08, cy - W * 0.13, W * 0.04, W * 0.04, (230, 200, 60))


def _insect(d, t, p, s, rng, W):
    cx, cy = W / 2, W / 2
    for i in range(3):
        for sgn in (-1, 1):
            _limb(d, cx - W * 0.06 + i * W * 0.06, cy, math.pi / 2 + sgn * (0.6 + 0.3 * i), W * 0.16, W * 0.015, (40, 30, 30))
    _ellipse(d, cx - W * 0.16, cy, W * 0.16 * t.part_len + W * 0.04, W * 0.1, p)
    _ellipse(d, cx + W * 0.03, cy, W * 0.07, W * 0.07, s)
    _ellipse(d, cx + W * 0.14, cy, W * 0.05, W * 0.05, p)


def _butterfly(d, t, p, s, rng, W):
    cx, cy = W / 2, W / 2
    for sgn in (-1, 1):
        _ellipse(d, cx + sgn * W * 0.18, cy - W * 0.12, W * 0.17, W * 0.15 * t.part_len + W * 0.04, p)
        _ellipse(d, cx + sgn * W * 0.13, cy + W * 0.12, W * 0.11, W * 0.1, p)
    _ellipse(d, cx, cy, W * 0.025, W * 0.2, (40, 30, 30))


def _dragonfly(d, t, p, s, rng, W):
    cx, cy = W / 2, W * 0.4
    for sgn in (-1, 1):
        for dy in (0, W * 0.08):
            _ellipse(d, cx + sgn * W * 0.22, cy + dy, W * 0.2, W * 0.035, (200, 220, 230))
    _limb(d, cx, cy, math.pi / 2, W * 0.45, W * 0.035, p)
    _ellipse(d, cx, cy, W * 0.05, W * 0.06, s)


def _spider(d, t, p, s, rng, W):
    cx, cy = W / 2, W / 2
    for i in range(4):
        for sgn in (-1, 1):
            a = (math.pi if sgn < 0 else 0) + sgn * (-0.8 + i * 0.5)
            _limb(d, cx, cy, a, W * 0.3 * t.part_len + W * 0.1, W * 0.015, (40, 30, 30))
    _ellipse(d, cx - W * 0.1, cy, W * 0.13, W * 0.12, p)
    _ellipse(d, cx + W * 0.07, cy, W * 0.06, W * 0.06, s)


def _crab(d, t, p, s, rng, W):
    cx, cy = W / 2, W / 2
    for sgn in (-1, 1):
        for i in range(3):
            _limb(d, cx + sgn * W * 0.12, cy + W * 0.04 * i, math.pi / 2 - sgn * 0.9, W * 0.17, W * 0.02, p)
        _ellipse(d, cx + sgn * W * 0.3, cy - W * 0.18, W * 0.08 * t.part_len + W * 0.03, W * 0.05, p)
    _ellipse(d, cx, cy, W * 0.18 * t.aspect / 1.6, W * 0.13, p)


def _shell(d, t, p, s, rng, W):
    cx, cy = W / 2, W * 0.55
    _ellipse(d, cx, cy + W * 0.1, W * 0.3, W * 0.06, s)
    for i in range(6):
        r = W * 0.2 * (1 - i * 0.14)
        _ellipse(d, cx - W * 0.02 * i, cy - W * 0.02 * i, r, r * 0.9, p if i % 2 == 0 else s)


def _octopus(d, t, p, s, rng, W):
    cx, cy = W / 2, W * 0.4
    for i in range(8):
        a = math.pi * (0.15 + 0.7 * i / 7)
        _limb(d, cx, cy + W * 0.05, a, W * 0.35 * t.part_len + W * 0.1, W * 0.03, p)
    _ellipse(d, cx, cy - W * 0.05, W * 0.16, W * 0.2, p)


def _jelly(d, t, p, s, rng, W):
    cx, cy = W / 2, W * 0.4
    for i in range(t.parts + 3):
        x = cx - W * 0.18 + i * W * 0.36 / (t.parts + 2)
        d.line([(x, cy), (x + W * 0.03, cy + W * 0.3 * t.part_len + W * 0.1)], fill=s + (255,), width=int(W * 0.012))
    d.chord([cx - W * 0.22, cy - W * 0.2, cx + W * 0.22, cy + W * 0.12], 180, 360, fill=p + (255,))


def _star(d, t, p, s, rng, W):
    cx, cy, n = W / 2, W / 2, 5
    pts = []
    for i in range(2 * n):
        r = W * (0.36 if i % 2 == 0 else 0.13)
        a = math.pi * i / n - math.pi / 2
        pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    d.polygon(pts, fill=p + (255,))


def _flower(d, t, p, s, rng, W):
    cx, cy = W / 2, W * 0.38
    d.line([(cx, cy), (cx, W * 0.95)], fill=(60, 120, 50, 255), width=int(W * 0.02))
    for sgn in (-1, 1):
        _ellipse(d, cx + sgn * W * 0.09, W * 0.72, W * 0.09, W * 0.03, (70, 140, 60))
    n = t.parts
    pr = W * (0.1 + 0.1 * t.part_len)
    for i in range(n):
        a = 2 * math.pi * i / n
        _ellipse(d, cx + pr * math.cos(a), cy + pr * math.sin(a), pr * 0.75, pr * 0.75 * (0.4 + t.head), p)
    _ellipse(d, cx, cy, W * 0.05 + t.head * W * 0.05, W * 0.05 + t.head * W * 0.05, s)


def _tree(d, t, p, s, rng, W):
    cx = W / 2
    d.rectangle([cx - W * 0.04, W * 0.5, cx + W * 0.04, W * 0.95], fill=(100, 70, 40, 255))
    for i in range(t.parts):
        a = 2 * math.pi * i / t.parts
        _ellipse(d, cx + W * 0.15 * math.cos(a), W * 0.38 + W * 0.12 * math.sin(a), W * 0.14, W * 0.12, p)
    _ellipse(d, cx, W * 0.38, W * 0.18 * t.aspect / 1.6, W * 0.16, p)


def _conifer(d, t, p, s, rng, W):
    cx = W / 2
    d.rectangle([cx - W * 0.03, W * 0.75, cx + W * 0.03, W * 0.95], fill=(100, 70, 40, 255))
    tiers = 3 + t.parts % 3
    for i in range(tiers):
        top = W * (0.1 + i * 0.15)
        half = W * (0.12 + 0.06 * i) * t.part_len * 1.3
        d.polygon([(cx, top), (cx - half, top + W * 0.25), (cx + half, top + W * 0.25)], fill=p + (255,))


def _cactus(d, t, p, s, rng, W):
    cx = W / 2
    d.rounded_rectangle([cx - W * 0.07, W * 0.2, cx + W * 0.07, W * 0.95], radius=int(W * 0.07), fill=p + (255,))
    for sgn in (-1, 1):
        d.rounded_rectangle([cx + sgn * W * 0.07 - (W * 0.12 if sgn < 0 else 0), W * 0.5, cx + sgn * W * 0.07 + (W * 0.12 if sgn > 0 else 0), W * 0.58], radius=int(W * 0.03), fill=p + (255,))


def _grass(d, t, p, s, rng, W):
    for i in range(t.parts + 4):
        x = W * (0.25 + 0.5 * i / (t.parts + 3))
        d.line([(x, W * 0.95), (x + W * 0.08 * math.sin(i), W * (0.15 + 0.15 * t.part_len))], fill=p + (255,), width=int(W * 0.02))


def _fern(d, t, p, s, rng, W):
    cx = W / 2
    d.line([(cx, W * 0.95), (cx, W * 0.08)], fill=p + (255,), width=int(W * 0.015))
    for i in range(9):
        y = W * (0.15 + i * 0.085)
        length = W * (0.1 + 0.03 * i) * t.part_len * 1.5
        for sgn in (-1, 1):
            _ellipse(d, cx + sgn * length / 2, y, length / 2, W * 0.02, p)


def _moss(d, t, p, s, rng, W):
    for _ in range(60):
        x, y = rng.uniform(W * 0.2, W * 0.8), rng.uniform(W * 0.45, W * 0.85)
        d.line([(x, y), (x + rng.normal(0, W * 0.02), y - W * 0.1 * t.part_len)], fill=p + (255,), width=3)


def _mushroom(d, t, p, s, rng, W):
    cx = W / 2
    d.rectangle([cx - W * 0.04 * t.aspect / 1.5, W * 0.45, cx + W * 0.04 * t.aspect / 1.5, W * 0.9], fill=(235, 225, 205, 255))
    d.chord([cx - W * 0.26, W * (0.5 - 0.35 * t.part_len), cx + W * 0.26, W * 0.6], 180, 360, fill=p + (255,))


def _bracket(d, t, p, s, rng, W):
    for i in range(3):
        y = W * (0.3 + i * 0.17)
        d.chord([W * 0.25, y - W * 0.1, W * (0.7 + 0.1 * t.part_len), y + W * 0.1], 270, 90, fill=(p if i % 2 == 0 else s) + (255,))
    d.rectangle([W * 0.18, W * 0.1, W * 0.3, W * 0.95], fill=(90, 70, 50, 255))


def _cup(d, t, p, s, rng, W):
    cx, cy = W / 2, W * 0.55
    d.chord([cx - W * 0.22, cy - W * 0.22 * t.part_len, cx + W * 0.22, cy + W * 0.2], 0, 180, fill=p + (255,))
    _ellipse(d, cx, cy, W * 0.22, W * 0.06, s)


def _lichen(d, t, p, s, rng, W):
    for _ in range(14):
        x, y = rng.uniform(W * 0.25, W * 0.75, 2)
        r = W * rng.uniform(0.04, 0.1) * t.part_len * 1.4
        _ellipse(d, x, y, r, r * 0.8, p)


def _kelp(d, t, p, s, rng, W):
    for j in range(3):
        x0 = W * (0.35 + 0.15 * j)
        pts = [(x0 + W * 0.05 * math.sin(i * 0.8 + j), W * (0.95 - i * 0.09)) for i in range(10)]
        d.line(pts, fill=p + (255,), width=int(W * 0.05 * t.part_len + 6), joint="curve")


def _blob(d, t, p, s, rng, W):
    for _ in range(7):
        x, y = rng.normal(W / 2, W * 0.08, 2)
        r = W * rng.uniform(0.06, 0.14)
        _ellipse(d, x, y, r, r, p)


_PLANS = {
    "mammal": _mammal, "bird": _bird, "fish": _fish, "snake": _snake, "lizard": _lizard, "turtle": _turtle,
    "frog": _frog, "insect": _insect, "butterfly": _butterfly, "dragonfly": _dragonfly, "spider": _spider,
    "crab": _crab, "shell": _shell, "octopus": _octopus, "jelly": _jelly, "star": _star, "flower": _flower,
    "tree": _tree, "conifer": _conifer, "cactus": _cactus, "grass": _grass, "fern": _fern, "moss": _moss,
    "mushroom": _mushroom, "bracket": _bracket, "cup": _cup, "lichen": _lichen, "kelp": _kelp, "blob": _blob,
}
