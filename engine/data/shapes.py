"""Procedural asset categories: SDF + colour, deterministic per seed, unbounded in number.

`make_asset(seed, category=None)` builds one textured asset. Each category is a function
of continuous parameters drawn from a seeded numpy Generator; each asset has a named main
colour (the colour that covers most of its surface), other per-part colours from the
palette, and sometimes a pattern (stripes, two-tone, checks, dots) on its main parts.

Assets are built in natural units (resting on z = 0, Z-up), then centred and scaled so
their surface lies inside the ball of radius `FIT_RADIUS` (0.9) around the origin.
The category of seed s is CATEGORIES[s % len(CATEGORIES)] unless given, so any seed
range is balanced; shape parameters come from an independent stream of the same seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..config import FIT_RADIUS
from . import palette as pal
from .sdf import (Box, Recolor, paint, CappedCone, Capsule, Cylinder, Ellipsoid, Extrude, Node, Revolve,
                  RoundBox, Sphere, Torus, Transform, checks, dots,
                  intersect, look_rotation, smooth_union, stripes, subtract, two_tone, union)



# ----------------------------------------------------------------------------- asset

@dataclass
class Asset:
    """A procedural asset: exact-ish SDF and colour at any point of object space."""
    category: str
    params: dict
    colors: dict            # {"main": name, <part>: name, ...}
    node: Node = field(repr=False)
    seed: int = 0
    features: list = field(default_factory=list)    # caption phrases ("four legs")
    adjectives: list = field(default_factory=list)  # shape adjectives ("tall")

    @property
    def main_color(self) -> str:
        return self.colors["main"]

    @property
    def category_index(self) -> int:
        return CATEGORIES.index(self.category)

    @property
    def color_index(self) -> int:
        return pal.color_index(self.colors["main"])

    def sdf(self, points_nx3: torch.Tensor) -> torch.Tensor:
        return self.node.sdf(points_nx3)

    def rgb(self, points_nx3: torch.Tensor) -> torch.Tensor:
        return self.node.eval(points_nx3)[1].clamp(0.0, 1.0)


class Ctx:
    """Draws parameters and colours for one asset and records them."""

    PATTERNS = ("solid", "stripes", "two-tone", "checks", "dots")
    PATTERN_P = (0.6, 0.14, 0.1, 0.09, 0.07)

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.params: dict = {}
        self.colors: dict = {}
        self.rgbs: dict = {}
        self.features: list[str] = []
        self.adjectives: list[str] = []
        self.main = self.color("main")
        self.pattern = str(rng.choice(self.PATTERNS, p=self.PATTERN_P))
        self.params["pattern"] = self.pattern
        self.pattern_color = self.color("pattern", pal.COLOR_NAMES) if self.pattern != "solid" else None

    def u(self, name: str, lo: float, hi: float) -> float:
        v = float(self.rng.uniform(lo, hi))
        self.params[name] = round(v, 4)
        return v

    def i(self, name: str, lo: int, hi: int) -> int:
        v = int(self.rng.integers(lo, hi + 1))
        self.params[name] = v
        return v

    def flag(self, name: str, prob: float) -> bool:
        v = bool(self.rng.random() < prob)
        self.params[name] = v
        return v

    def choice(self, name: str, options):
        v = options[int(self.rng.integers(len(options)))]
        self.params[name] = v
        return v

    def color(self, role: str, options: list[str] | None = None, same_as_main_p: float = 0.0):
        """Colour for a part: the main colour with probability `same_as_main_p`, otherwise a
        palette name from `options` other than the main colour. Returns an RGB triple."""
        if role != "main" and self.rng.random() < same_as_main_p:
            name = self.colors["main"]
        else:
            exclude = () if role == "main" else (self.colors["main"],)
            name = pal.pick(self.rng, options, exclude)
        self.colors[role] = name
        self.rgbs[role] = pal.jitter(name, self.rng)
        return self.rgbs[role]

    @property
    def main_rgb(self):
        """The main colour (RGB). Parts painted with exactly this colour get the asset's
        pattern, applied over the whole asset once it is built (see `pattern_fn`)."""
        return self.rgbs["main"]

    def pattern_fn(self, lo: np.ndarray, hi: np.ndarray):
        """The pattern over the asset's bounding box lo..hi (natural units), or None.
        The main colour keeps most of the surface: stripes 62%, two-tone the upper 68%,
        checks and dots about 70-85%."""
        c1, c2 = self.rgbs["main"], self.rgbs.get("pattern")
        span, size = float(hi[2] - lo[2]), float(np.max(hi - lo))
        if self.pattern == "stripes":
            return stripes(c1, c2, direction=(0.3, 0.2, 1.0), period=size / 8.0, duty=0.62)
        if self.pattern == "two-tone":
            return two_tone(c1, c2, axis=2, split=float(lo[2]) + 0.32 * span)
        if self.pattern == "checks":
            return checks(c1, c2, size=size / 7.0, fill=0.8)
        if self.pattern == "dots":
            return dots(c1, c2, spacing=size / 6.0, radius=size / 26.0)
        return None

    def feature(self, text: str) -> None:
        self.features.append(text)

    def adjective(self, text: str) -> None:
        self.adjectives.append(text)


NUM_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
WOODS = ["brown", "black", "grey", "white"]
DARK = ["black", "grey", "brown"]


# ----------------------------------------------------------------------------- helpers

def _catmull(points, n_per_seg: int = 4) -> np.ndarray:
    """Catmull-Rom spline through 2D control points (passes through every point)."""
    p = np.asarray(points, dtype=np.float64)
    ext = np.concatenate([p[:1] * 2 - p[1:2], p, p[-1:] * 2 - p[-2:-1]])
    out = []
    for i in range(1, len(ext) - 2):
        p0, p1, p2, p3 = ext[i - 1], ext[i], ext[i + 1], ext[i + 2]
        for t in np.linspace(0, 1, n_per_seg, endpoint=False):
            t2, t3 = t * t, t * t * t
            out.append(0.5 * (2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2
                              + (-p0 + 3 * p1 - 3 * p2 + p3) * t3))
    out.append(p[-1])
    return np.asarray(out)


def _shell_profile(outer_rz, t: float) -> np.ndarray:
    """Open-top vessel wall: the outer profile (from the axis at the bottom up to the rim)
    plus its inward offset by wall thickness t, closed back onto the axis."""
    p = np.asarray(outer_rz, dtype=np.float64)
    seg = np.diff(p, axis=0)
    seg /= np.linalg.norm(seg, axis=1, keepdims=True)
    left = np.stack([-seg[:, 1], seg[:, 0]], axis=1)                 # inward normals
    vn = np.concatenate([left[:1], left[:-1] + left[1:], left[-1:]])
    vn /= np.linalg.norm(vn, axis=1, keepdims=True)
    inner = p[1:] + t * vn[1:]
    inner[:, 0] = np.maximum(inner[:, 0], 1e-3)
    return np.concatenate([p, inner[::-1], [[0.0, p[0, 1] + t]]])


def _legs_at(xy, z0: float, z1: float, r: float, color, square: bool = False):
    parts = []
    for x, y in xy:
        if square:
            parts.append(Box((r, r, (z1 - z0) / 2), color).move(x, y, (z0 + z1) / 2))
        else:
            parts.append(Cylinder(r, (z1 - z0) / 2, color).move(x, y, (z0 + z1) / 2))
    return parts


def _ring_xy(n: int, radius: float, phase: float = 0.0):
    return [(radius * math.cos(phase + 2 * math.pi * k / n),
             radius * math.sin(phase + 2 * math.pi * k / n)) for k in range(n)]


def _half_torus_handle(center, R: float, r: float, color, keep_x_above: float) -> Node:
    """A torus ring standing in the xz plane at `center`, cut to the part with
    x > keep_x_above (a mug or teapot handle)."""
    ring = Torus(R, r, color).rot("x", 90).move(*center)
    half = R + r + 0.1
    cut = Box((half, half, half)).move(keep_x_above + half, center[1], center[2])
    return intersect(ring, cut)


# ----------------------------------------------------------------------------- furniture

def chair(c: Ctx) -> Node:
    sw, sd = c.u("seat_width", 0.8, 1.05), c.u("seat_depth", 0.75, 0.95)
    sh, st = c.u("seat_height", 0.8, 1.05), c.u("seat_thickness", 0.07, 0.12)
    back_h = c.u("back_height", 0.7, 1.2)
    round_seat = c.flag("round_seat", 0.3)
    n_legs = c.choice("legs", [3, 4]) if round_seat else 4
    leg_r = c.u("leg_radius", 0.035, 0.06)
    arms = c.flag("armrests", 0.3) and not round_seat
    back = c.choice("back_style", ["panel", "slats", "ladder"])
    leg_col = c.color("legs", WOODS, same_as_main_p=0.5)
    main = c.main_rgb
    top = sh + st / 2
    if round_seat:
        seat = Cylinder(sw / 2, st / 2, main).move(0, 0, sh)
        legs = _legs_at(_ring_xy(n_legs, sw / 2 - 0.1, math.pi / 2), 0, sh, leg_r, leg_col)
        back_y = sw / 2 - 0.05
    else:
        seat = RoundBox((sw / 2, sd / 2, st / 2), 0.025, main).move(0, 0, sh)
        ix, iy = sw / 2 - leg_r - 0.03, sd / 2 - leg_r - 0.03
        legs = _legs_at([(ix, iy), (-ix, iy), (ix, -iy), (-ix, -iy)], 0, sh, leg_r, leg_col,
                        square=c.flag("square_legs", 0.5))
        back_y = sd / 2 - 0.05
    bw = sw / 2 - 0.02 if not round_seat else sw * 0.38
    posts = [Box((0.04, 0.04, back_h / 2), main).move(x, back_y, top + back_h / 2)
             for x in (-bw + 0.04, bw - 0.04)]
    if back == "panel":
        backrest = [RoundBox((bw, 0.04, back_h / 2), 0.02, main).move(0, back_y, top + back_h / 2)]
    elif back == "slats":
        n = c.i("slats", 3, 5)
        xs = np.linspace(-bw + 0.04, bw - 0.04, n + 2)[1:-1]
        backrest = posts + [Box((0.025, 0.025, back_h * 0.4), main).move(x, back_y, top + back_h * 0.45)
                            for x in xs]
        backrest.append(RoundBox((bw, 0.045, 0.06), 0.02, main).move(0, back_y, top + back_h - 0.06))
    else:
        n = c.i("rails", 2, 4)
        zs = np.linspace(top + 0.15, top + back_h - 0.06, n)
        backrest = posts + [RoundBox((bw, 0.03, 0.045), 0.015, main).move(0, back_y, z) for z in zs]
    parts = [seat, *legs, *backrest]
    if arms:
        az = top + c.u("arm_height", 0.2, 0.3)
        for x in (-sw / 2 + 0.04, sw / 2 - 0.04):
            parts.append(RoundBox((0.045, sd / 2, 0.03), 0.02, main).move(x, 0, az))
            parts.append(Cylinder(0.03, (az - top) / 2, main).move(x, -sd / 2 + 0.06, (az + top) / 2))
        c.feature("armrests")
    c.feature(f"{NUM_WORDS[n_legs]} legs")
    c.feature("a round seat" if round_seat else "a square seat")
    c.feature({"panel": "a solid back", "slats": "a slatted back", "ladder": "a ladder back"}[back])
    if back_h > 1.0:
        c.adjective("tall")
    elif back_h < 0.8:
        c.adjective("low")
    return union(*parts)


def table(c: Ctx) -> Node:
    round_top = c.flag("round_top", 0.35)
    tw = c.u("width", 1.4, 2.0)
    td = tw if round_top else c.u("depth", 0.75, 1.1)
    th, tt = c.u("height", 0.7, 0.95), c.u("top_thickness", 0.05, 0.1)
    pedestal = round_top and c.flag("pedestal", 0.5)
    leg_col = c.color("legs", WOODS, same_as_main_p=0.5)
    main = c.main_rgb
    z_top = th - tt / 2
    if round_top:
        top = Cylinder(tw / 2, tt / 2, main).move(0, 0, z_top)
    else:
        top = RoundBox((tw / 2, td / 2, tt / 2), 0.02, main).move(0, 0, z_top)
    parts = [top]
    if pedestal:
        parts.append(Cylinder(c.u("column_radius", 0.06, 0.1), th / 2, leg_col).move(0, 0, th / 2))
        parts.append(CappedCone(0.04, tw * 0.25, tw * 0.18, leg_col).move(0, 0, 0.04))
        c.feature("a single pedestal")
    else:
        r = c.u("leg_radius", 0.04, 0.07)
        if round_top:
            xy = _ring_xy(4, tw / 2 * 0.62, math.pi / 4)
        else:
            xy = [(sx * (tw / 2 - 0.12), sy * (td / 2 - 0.1)) for sx in (-1, 1) for sy in (-1, 1)]
        parts += _legs_at(xy, 0, th - tt, r, leg_col, square=c.flag("square_legs", 0.5))
        if not round_top and c.flag("apron", 0.5):
            parts.append(Box((tw / 2 - 0.1, td / 2 - 0.08, 0.05), leg_col).move(0, 0, th - tt - 0.05))
        c.feature("four legs")
    c.feature("a round top" if round_top else "a rectangular top")
    if th < 0.78:
        c.adjective("low")
    if tw > 1.8:
        c.adjective("long" if not round_top else "large")
    return union(*parts)


def stool(c: Ctx) -> Node:
    r = c.u("seat_radius", 0.27, 0.36)
    h = c.u("height", 0.8, 1.2)
    n = c.choice("legs", [3, 4])
    leg_r = c.u("leg_radius", 0.022, 0.034)
    splay = c.u("splay", 1.0, 1.35)
    leg_col = c.color("legs", WOODS + ["grey"], same_as_main_p=0.7)
    main = c.main_rgb
    st = c.u("seat_thickness", 0.08, 0.13)
    seat = Cylinder(r, st / 2, main).move(0, 0, h - st / 2)
    if c.flag("padded", 0.4):
        seat = smooth_union(seat, Ellipsoid((r * 0.95, r * 0.95, 0.06), main).move(0, 0, h), k=0.04)
        c.feature("a padded seat")
    legs = [Capsule((x * 0.7, y * 0.7, h - st), (x * splay, y * splay, 0.02), leg_r, leg_col)
            for x, y in _ring_xy(n, r, 0.3)]
    parts = [seat, *legs]
    if c.flag("footrest", 0.6):
        z = c.u("footrest_height", 0.25, 0.4) * h
        frac = 1 - z / h
        rr = r * (0.7 * frac + splay * (1 - frac))
        parts.append(Torus(rr, leg_r * 0.8, leg_col).move(0, 0, z))
        c.feature("a footrest ring")
    c.feature(f"{NUM_WORDS[n]} legs")
    if h > 1.05:
        c.adjective("tall")
    return union(*parts)


def sofa(c: Ctx) -> Node:
    L, D = c.u("length", 1.7, 2.4), c.u("depth", 0.8, 1.0)
    sh, bh = c.u("seat_height", 0.38, 0.48), c.u("back_height", 0.8, 1.0)
    aw, ah = c.u("arm_width", 0.12, 0.22), c.u("arm_height", 0.55, 0.7)
    n = c.i("cushions", 2, 3)
    leg_col = c.color("legs", WOODS)
    main = c.main_rgb
    base = RoundBox((L / 2, D / 2, (sh - 0.18) / 2), 0.04, main).move(0, 0, 0.08 + (sh - 0.18) / 2)
    back = RoundBox((L / 2, 0.1, (bh - 0.08) / 2), 0.08, main).move(0, D / 2 - 0.1, 0.08 + (bh - 0.08) / 2)
    arms = [RoundBox((aw / 2, D / 2, (ah - 0.08) / 2), 0.06, main).move(s * (L / 2 - aw / 2), 0, 0.08 + (ah - 0.08) / 2)
            for s in (-1, 1)]
    inner = L - 2 * aw
    cw = inner / n
    cushions = [RoundBox((cw / 2 - 0.01, D / 2 - 0.12, 0.07), 0.05, main).move(
        -inner / 2 + cw * (k + 0.5), -0.08, sh - 0.03) for k in range(n)]
    legs = _legs_at([(sx * (L / 2 - 0.1), sy * (D / 2 - 0.1)) for sx in (-1, 1) for sy in (-1, 1)],
                    0, 0.09, 0.035, leg_col)
    c.feature(f"{NUM_WORDS[n]} seat cushions")
    c.feature("thick armrests" if aw > 0.17 else "slim armrests")
    if L > 2.1:
        c.adjective("long")
    return union(base, back, *arms, *cushions, *legs)


def bed(c: Ctx) -> Node:
    L, W = c.u("length", 1.9, 2.2), c.u("width", 1.0, 1.6)
    fh, mt = c.u("base_height", 0.22, 0.32), c.u("mattress", 0.18, 0.25)
    hb = c.u("headboard", 0.45, 0.8)
    frame_col = c.color("frame", WOODS, same_as_main_p=0.5)     # headboard and legs
    sheet = c.color("sheet", ["white", "grey", "pink", "blue", "yellow"])
    main = c.main_rgb                                             # blanket and upholstered base
    base = RoundBox((L / 2, W / 2, (fh - 0.1) / 2), 0.03, main).move(0, 0, 0.1 + (fh - 0.1) / 2)
    legs = _legs_at([(sx * (L / 2 - 0.06), sy * (W / 2 - 0.06)) for sx in (-1, 1) for sy in (-1, 1)],
                    0, 0.11, 0.04, frame_col, square=True)
    head = RoundBox((0.05, W / 2 + 0.03, (fh + hb) / 2), 0.03, frame_col).move(-L / 2 - 0.02, 0, (fh + hb) / 2)
    mattress = RoundBox((L / 2 - 0.03, W / 2 - 0.03, mt / 2), 0.06, sheet).move(0, 0, fh + mt / 2)
    bl = L * 0.8
    blanket = RoundBox((bl / 2, W / 2 + 0.01, mt / 2 + 0.02), 0.05, main).move(L / 2 - bl / 2, 0, fh + mt / 2 + 0.02)
    n_p = 2 if W > 1.3 else 1
    pillows = [Ellipsoid((0.16, W / (2 * n_p) * 0.8, 0.07), sheet).move(-L / 2 + 0.22, y, fh + mt + 0.04)
               for y in (np.linspace(-W / 4, W / 4, n_p) if n_p == 2 else [0.0])]
    parts = [base, *legs, head, mattress, blanket, *pillows]
    if c.flag("footboard", 0.4):
        parts.append(RoundBox((0.05, W / 2 + 0.03, (fh + 0.2) / 2), 0.03, frame_col).move(L / 2 + 0.02, 0, (fh + 0.2) / 2))
        c.feature("a footboard")
    c.feature(f"{NUM_WORDS[n_p]} pillow" + ("s" if n_p > 1 else ""))
    c.feature("a tall headboard" if hb > 0.65 else "a low headboard")
    c.adjective("wide" if W > 1.35 else "narrow")
    return union(*parts)


def shelf(c: Ctx) -> Node:
    W, D, H = c.u("width", 0.8, 1.3), c.u("depth", 0.3, 0.4), c.u("height", 1.3, 2.0)
    t = c.u("board", 0.035, 0.055)
    n = c.i("shelves", 2, 5)
    main = c.main_rgb
    sides = [Box((t / 2, D / 2, H / 2), main).move(s * (W / 2 - t / 2), 0, H / 2) for s in (-1, 1)]
    zs = np.linspace(t / 2 + 0.04, H - t / 2, n + 1)
    boards = [Box((W / 2 - t, D / 2, t / 2), main).move(0, 0, z) for z in zs]
    parts = sides + boards
    if c.flag("back_panel", 0.7):
        parts.append(Box((W / 2, 0.01, H / 2), main).move(0, D / 2 - 0.01, H / 2))
    else:
        c.feature("an open back")
    if c.flag("books", 0.5):
        gap = zs[1] - zs[0] - t
        for zi in range(min(2, n)):
            parts.append(_book_row(c, -W / 2 + t + 0.02, W / 2 - t - 0.1, gap, D * 0.38)
                         .move(0, -0.02, zs[zi] + t / 2))
        c.feature("books on it")
    c.feature(f"{NUM_WORDS[n]} shelves")
    if H > 1.75:
        c.adjective("tall")
    return union(*parts)


def _book_row(c: Ctx, x0: float, x1: float, gap: float, half_depth: float) -> Node:
    """A row of books standing on z = 0 from x0 to x1: one extruded skyline polygon (in
    the xz plane) coloured per book by its x position (cheaper than a box per book)."""
    edges, heights = [x0], []
    while edges[-1] < x1:
        edges.append(edges[-1] + float(c.rng.uniform(0.035, 0.075)))
        heights.append(gap * float(c.rng.uniform(0.55, 0.85)))
    colors = torch.tensor([pal.jitter(pal.pick(c.rng), c.rng) for _ in heights], dtype=torch.float32)
    poly = [(x0, 0.0)]
    for i, h in enumerate(heights):
        poly += [(edges[i], h), (edges[i + 1], h)]
    poly.append((edges[-1], 0.0))
    inner = torch.tensor(edges[1:-1], dtype=torch.float32)

    def book_color(p):                                  # local frame: x along the row
        return colors.to(p)[torch.bucketize(p[:, 0].contiguous(), inner.to(p))]
    return Extrude(poly, half_depth, book_color).rot("x", 90)


# ----------------------------------------------------------------------------- tableware

def mug(c: Ctx) -> Node:
    R, H = c.u("radius", 0.33, 0.45), c.u("height", 0.7, 1.05)
    taper = c.u("taper", 0.95, 1.15)
    t = c.u("wall", 0.035, 0.055)
    main = c.main_rgb
    outer = [(0, 0), (R - 0.03, 0), (R, 0.03), (R * (taper + 1) / 2, H / 2), (R * taper, H)]
    body = Revolve(_shell_profile(outer, t), main)
    hr = c.u("handle_size", 0.2, 0.28) * H
    handle = _half_torus_handle((R * (1 + taper) / 2, 0, H * 0.5), hr, c.u("handle_thickness", 0.035, 0.055),
                                main, keep_x_above=R * (1 + taper) / 2 - t)
    c.feature("a handle")
    if taper > 1.08:
        c.feature("a flared rim")
    if H / R > 2.3:
        c.adjective("tall")
    elif H / R < 1.9:
        c.adjective("squat")
    return smooth_union(body, handle, k=0.02)


def bowl(c: Ctx) -> Node:
    R, depth = c.u("radius", 0.6, 0.9), c.u("depth", 0.3, 0.5)
    rb = c.u("base", 0.3, 0.5) * R
    t = c.u("wall", 0.035, 0.06)
    main = c.main_rgb
    th = np.linspace(0, math.pi / 2, 10)
    curve = [(rb + (R - rb) * math.sin(a), depth * (1 - math.cos(a))) for a in th]
    outer = [(0, 0), *curve]
    parts = [Revolve(_shell_profile(outer, t), main)]
    if c.flag("foot", 0.5):
        parts.append(Cylinder(rb * 0.8, 0.03, main).move(0, 0, -0.02))
        c.feature("a foot ring")
    c.adjective("deep" if depth / R > 0.6 else "shallow")
    c.feature("a wide rim" if R > 0.78 else "a round rim")
    return union(*parts)


def vase(c: Ctx) -> Node:
    H = c.u("height", 1.2, 1.8)
    r0, r1 = c.u("foot", 0.18, 0.28), c.u("belly", 0.32, 0.5)
    zb = c.u("belly_height", 0.28, 0.5) * H
    r2 = c.u("neck", 0.1, 0.2)
    r3 = r2 * c.u("lip", 1.1, 1.7)
    t = c.u("wall", 0.03, 0.045)
    main = c.main_rgb
    ctrl = [(r0, 0.0), (r1, zb), ((r1 + r2) / 2 * 0.9, 0.62 * H), (r2, 0.82 * H), (r3, H)]
    curve = _catmull(ctrl, 4)
    curve[:, 0] = np.maximum(curve[:, 0], 0.06)
    outer = [(0, 0), *curve]
    c.feature("a narrow neck" if r2 < 0.14 else "a wide neck")
    c.feature("a round belly" if r1 > 0.42 else "a slender body")
    if H > 1.6:
        c.adjective("tall")
    return Revolve(_shell_profile(outer, t), main)


def bottle(c: Ctx) -> Node:
    H, R = c.u("height", 1.4, 2.0), c.u("radius", 0.22, 0.32)
    zs, rn = c.u("shoulder", 0.5, 0.68) * H, c.u("neck_radius", 0.07, 0.11)
    zn = 0.88 * H
    cap_col = c.color("cap", ["red", "white", "black", "grey", "yellow", "blue", "green"])
    main = c.main_rgb
    prof = [(0, 0), (R - 0.03, 0), (R, 0.03), (R, zs), (R * 0.8, zs + 0.12 * (zn - zs)),
            (rn * 1.3, zs + 0.55 * (zn - zs)), (rn, zs + 0.75 * (zn - zs)), (rn, zn), (0, zn)]
    parts = [Revolve(prof, main)]
    parts.append(Cylinder(rn * 1.18, 0.06 * H, cap_col).move(0, 0, zn + 0.05 * H))
    if c.pattern == "solid" and c.flag("label", 0.5):
        lab = c.color("label", pal.COLOR_NAMES)
        parts[0] = Revolve(prof, _band_fn(main, lab, zs * 0.25, zs * 0.6))
        c.feature("a label")
    c.feature("a cap")
    c.feature("a long neck" if zn - zs > 0.4 * H else "a short neck")
    if H / R > 6.5:
        c.adjective("slim")
    return union(*parts)


def _band(p, lo, hi, c_in, c_out):
    """`c_in` where lo < z < hi, `c_out` elsewhere (a label, a window band)."""
    inside = (p[:, 2] > lo) & (p[:, 2] < hi)
    return torch.where(inside[:, None], paint(c_in, p), paint(c_out, p))


def teapot(c: Ctx) -> Node:
    rx, rz = c.u("body_radius", 0.5, 0.65), c.u("body_height", 0.35, 0.48)
    main = c.main_rgb
    body = Ellipsoid((rx, rx, rz), main).move(0, 0, rz)
    lid = Ellipsoid((rx * 0.55, rx * 0.55, 0.1), main).move(0, 0, 2 * rz - 0.03)
    knob_col = c.color("knob", DARK + ["white"], same_as_main_p=0.5)
    knob = Sphere(0.06, knob_col).move(0, 0, 2 * rz + 0.08)
    sl = c.u("spout_length", 0.4, 0.6)
    ang = math.radians(c.u("spout_angle", 35, 55))
    a = np.array([-rx * 0.75, 0, rz * 0.8])
    b = a + sl * np.array([-math.cos(ang), 0, math.sin(ang)])
    spout = Transform(CappedCone(sl / 2, 0.11, 0.045, main), rotation=look_rotation(b - a), offset=(a + b) / 2)
    handle = _half_torus_handle((rx * 0.85, 0, rz * 1.05), c.u("handle_size", 0.2, 0.3),
                                0.045, main, keep_x_above=rx * 0.8)
    foot = Cylinder(rx * 0.55, 0.03, main).move(0, 0, 0.03)
    c.feature("a curved spout")
    c.feature("a round lid")
    c.adjective("round" if rz / rx > 0.7 else "wide")
    return union(smooth_union(body, spout, foot, handle, lid, k=0.04), knob)


# ----------------------------------------------------------------------------- props

def barrel(c: Ctx) -> Node:
    H, Re = c.u("height", 1.0, 1.4), c.u("end_radius", 0.33, 0.43)
    Rm = Re * c.u("bulge", 1.1, 1.25)
    n_h = c.choice("hoops", [2, 3, 4])
    hoop_col = c.color("hoops", ["black", "grey", "brown"])
    main = c.main_rgb

    def radius(z):
        return Re + (Rm - Re) * math.sin(math.pi * z / H)

    zs = np.linspace(0, H, 12)
    prof = [(0, 0), *[(radius(z), z) for z in zs], (0, H)]
    parts = [Revolve(prof, main)]
    hz = {2: [0.15, 0.85], 3: [0.12, 0.5, 0.88], 4: [0.1, 0.3, 0.7, 0.9]}[n_h]
    for f in hz:
        parts.append(Torus(radius(f * H) - 0.005, 0.022, hoop_col).move(0, 0, f * H))
    c.feature(f"{NUM_WORDS[n_h]} metal hoops")
    c.feature("a bulging middle" if Rm / Re > 1.17 else "straight sides")
    return union(*parts)


def crate(c: Ctx) -> Node:
    a, b, h = c.u("size_x", 0.45, 0.6), c.u("size_y", 0.45, 0.6), c.u("size_z", 0.4, 0.6)
    bt = c.u("beam", 0.05, 0.08)
    frame_col = c.color("frame", WOODS, same_as_main_p=0.5)
    main = c.main_rgb
    body = Box((a - 0.02, b - 0.02, h - 0.02), main).move(0, 0, h)
    grooves = []
    n_g = c.i("planks", 3, 5)
    for z in np.linspace(0, 2 * h, n_g + 1)[1:-1]:
        grooves.append(Box((a + 0.1, b + 0.1, 0.008)).move(0, 0, z))
    body = subtract(body, union(*grooves), k=0.0)
    beams = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            beams.append(Box((bt / 2, bt / 2, h), frame_col).move(sx * (a - bt / 2), sy * (b - bt / 2), h))
        for z in (bt / 2, 2 * h - bt / 2):
            beams.append(Box((bt / 2, b, bt / 2), frame_col).move(sx * (a - bt / 2), 0, z))
            beams.append(Box((a, bt / 2, bt / 2), frame_col).move(0, sx * (b - bt / 2), z))
    parts = [body, *beams]
    if c.flag("braces", 0.5):
        ang = math.degrees(math.atan2(2 * h, 2 * a))
        for sy in (-1, 1):
            br = Box((math.hypot(a, h), 0.012, bt * 0.4), frame_col).rot("y", -ang).move(0, sy * (b - 0.005), h)
            parts.append(intersect(br, Box((a, b + 0.1, h)).move(0, 0, h)))
        c.feature("diagonal braces")
    c.feature("a reinforced frame")
    c.adjective("cubic" if max(a, b, h) / min(a, b, h) < 1.15 else "boxy")
    return union(*parts)


def mushroom(c: Ctx) -> Node:
    cr, ch = c.u("cap_radius", 0.45, 0.7), c.u("cap_height", 0.25, 0.45)
    sh, sr = cr * c.u("stem_to_cap", 0.95, 1.5), c.u("stem_radius", 0.1, 0.18)
    stem_col = c.color("stem", ["white", "grey", "yellow", "brown"])
    spots = c.pattern == "solid" and c.flag("spots", 0.6)
    main = dots(c.rgbs["main"], c.color("spots", ["white", "yellow"]), 0.22, 0.06) if spots \
        else c.main_rgb
    stem = CappedCone(sh / 2, sr * 1.15, sr * 0.85, stem_col).move(0, 0, sh / 2)
    cap = intersect(Ellipsoid((cr, cr, ch), main), Box((cr + 0.1, cr + 0.1, ch)).move(0, 0, ch - 0.04))
    cap = cap.move(0, 0, sh - 0.1)
    underside = Cylinder(cr * 0.92, 0.02, stem_col).move(0, 0, sh - 0.12)
    if spots:
        c.feature("spots")
    c.feature("a wide cap" if cr > 0.6 else "a round cap")
    c.feature("a thick stem" if sr > 0.15 else "a thin stem")
    if sh > 1.25 * cr:
        c.adjective("tall")
    return union(smooth_union(stem, cap, k=0.05), underside)


def tree(c: Ctx) -> Node:
    conifer = c.flag("conifer", 0.5)
    th = c.u("trunk_height", 0.35, 0.7) if conifer else c.u("trunk_height", 0.55, 0.9)
    tr = c.u("trunk_radius", 0.07, 0.13)
    trunk_col = c.color("trunk", ["brown", "black", "grey"])
    trunk = CappedCone(th / 2 + 0.05, tr, tr * 0.7, trunk_col).move(0, 0, th / 2 + 0.05)
    if conifer:
        n = c.i("tiers", 2, 4)
        R = c.u("crown_radius", 0.45, 0.65)
        tier_h = c.u("tier_height", 0.45, 0.6)
        main = c.main_rgb
        tiers = []
        for k in range(n):
            f = 1 - 0.22 * k
            z0 = th + k * tier_h * 0.6
            tiers.append(CappedCone(tier_h / 2, R * f, 0.02, main).move(0, 0, z0 + tier_h / 2))
        crown = union(*tiers)
        c.feature(f"{NUM_WORDS[n]} layers of branches")
        c.adjective("pointed")
    else:
        R = c.u("crown_radius", 0.4, 0.6)
        n = c.i("blobs", 4, 7)
        main = c.main_rgb
        zc = th + R * 0.9
        blobs = [Sphere(R * 0.7, main).move(0, 0, zc + R * 0.35)]      # a tall, lumpy crown
        for k in range(n):
            a = 2 * math.pi * k / n + float(c.rng.uniform(-0.3, 0.3))
            rr = R * float(c.rng.uniform(0.4, 0.6))
            blobs.append(Sphere(R * float(c.rng.uniform(0.42, 0.58)), main).move(
                rr * math.cos(a), rr * math.sin(a), zc + float(c.rng.uniform(-0.35, 0.6)) * R))
        crown = smooth_union(*blobs, k=0.12)
        c.feature("a round leafy crown")
        c.adjective("bushy")
    c.feature("a thick trunk" if tr > 0.1 else "a slender trunk")
    return union(trunk, crown)


def house(c: Ctx) -> Node:
    W, D, Hw = c.u("width", 1.0, 1.5), c.u("depth", 0.8, 1.1), c.u("wall_height", 0.75, 1.05)
    rh, ov = c.u("roof_height", 0.3, 0.55), c.u("overhang", 0.03, 0.08)
    roof_col = c.color("roof", ["red", "brown", "grey", "black", "blue", "green"])
    door_col = c.color("door", ["brown", "black", "white", "red"])
    win_col = c.color("windows", ["blue", "white", "grey", "yellow"])
    main = c.main_rgb
    walls = Box((W / 2, D / 2, Hw / 2), main).move(0, 0, Hw / 2)
    tri = [(-D / 2 - ov, 0), (D / 2 + ov, 0), (0, rh)]
    gable = Extrude([(-D / 2, 0), (D / 2, 0), (0, rh - ov)], W / 2, main)
    slab = [(x, y - 0.07) for x, y in tri]              # hollow roof: the gables show
    roof = subtract(Extrude(tri, W / 2 + ov, roof_col), Extrude(slab, W / 2 + ov + 0.1))
    to_world = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], dtype=np.float64)   # (y, z, x) frame
    roof = Transform(roof, rotation=to_world, offset=(0, 0, Hw - 0.02))
    gable = Transform(gable, rotation=to_world, offset=(0, 0, Hw - 0.02))
    dw, dh = c.u("door_width", 0.16, 0.24), c.u("door_height", 0.35, 0.5) * Hw / 0.8
    door = Box((dw / 2, 0.02, dh / 2), door_col).move(0, -D / 2, dh / 2)
    n_w = c.i("windows", 1, 2)
    wins = []
    ws = 0.09
    for sx in (-1, 1):
        for k in range(n_w):
            x = sx * (W / 2) * (0.45 + 0.3 * k) if n_w == 2 else sx * W / 4 + sx * 0.05
            wins.append(Box((ws, 0.015, ws), win_col).move(x, -D / 2, Hw * 0.58))
    wins += [Box((0.015, ws, ws), win_col).move(sx * W / 2, 0, Hw * 0.58) for sx in (-1, 1)]
    parts = [walls, gable, roof, door, *wins]
    if c.flag("chimney", 0.5):
        parts.append(Box((0.07, 0.07, rh * 0.5), roof_col).move(W * 0.25, D * 0.2, Hw + rh * 0.55))
        c.feature("a chimney")
    c.feature("a pointed roof")
    c.feature("a front door")
    c.feature(f"{NUM_WORDS[2 * n_w + 2]} windows")
    if rh > 0.48:
        c.adjective("steep-roofed")
    return union(*parts)


# ----------------------------------------------------------------------------- vehicles

def car(c: Ctx) -> Node:
    L, Wd = c.u("length", 1.6, 2.0), c.u("width", 0.75, 0.9)
    wr = c.u("wheel_radius", 0.16, 0.22)
    hb = c.u("body_height", 0.28, 0.38)
    Lc, hc = c.u("cabin_length", 0.4, 0.6) * L, c.u("cabin_height", 0.22, 0.32)
    cx = c.u("cabin_offset", -0.15, 0.1) * L
    glass = c.color("windows", ["black", "grey", "blue", "white"])
    tyre = c.color("tyres", ["black", "grey"])
    main = c.main_rgb
    zb = wr * 0.6 + hb / 2
    body = RoundBox((L / 2, Wd / 2, hb / 2), 0.08, main).move(0, 0, zb)
    cz = zb + hb / 2 + hc / 2 - 0.03
    cabin_col = _band_fn(main, glass, cz - hc * 0.25, cz + hc * 0.3)
    cabin = RoundBox((Lc / 2, Wd / 2 - 0.06, hc / 2), 0.07, cabin_col).move(cx, 0, cz)
    wx = L / 2 - wr - 0.12
    wells = [Cylinder(wr + 0.04, Wd / 2 + 0.1).rot("x", 90).move(sx * wx, 0, wr) for sx in (-1, 1)]
    body = subtract(body, *wells)
    wheels = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            wheels.append(Cylinder(wr, 0.08, tyre).rot("x", 90).move(sx * wx, sy * (Wd / 2 - 0.08), wr))
            wheels.append(Cylinder(wr * 0.5, 0.085, (0.75, 0.75, 0.75)).rot("x", 90).move(sx * wx, sy * (Wd / 2 - 0.08), wr))
    lights = [Sphere(0.05, (1.0, 0.95, 0.7)).move(-L / 2 + 0.03, sy * (Wd / 2 - 0.12), zb + 0.03) for sy in (-1, 1)]
    c.feature("four wheels")
    c.feature("a long hood" if cx > 0.0 else "a short hood")
    if hb + hc < 0.55:
        c.adjective("low")
    return union(body, cabin, *wheels, *lights)


def _band_fn(c_out, c_in, lo, hi):
    return lambda p: _band(p, lo, hi, c_in, c_out)


def airplane(c: Ctx) -> Node:
    L, fr = c.u("length", 1.7, 2.1), c.u("fuselage_radius", 0.1, 0.15)
    span, chord = c.u("span", 1.4, 2.0), c.u("chord", 0.3, 0.45)
    sweep = c.u("sweep", 0.0, 0.35)
    wing_col = c.color("wings", ["white", "grey"], same_as_main_p=0.65)
    main = c.main_rgb
    fus = Capsule((-L / 2 + fr, 0, 0), (L / 2 - fr * 2, 0, 0), fr, main)
    nose = Ellipsoid((fr * 2.2, fr, fr), main).move(-L / 2 + fr * 2, 0, 0)
    tail_cone = CappedCone(fr * 2.5, fr, fr * 0.35, main).rot("y", 90).move(L / 2 - fr * 2.5, 0, fr * 0.3)
    tip = chord * 0.45
    wings = Extrude(_wing_outline(chord, span, sweep, tip), 0.02, wing_col)
    wings = wings.move(-0.05 * L, 0, -fr * 0.4)
    st_span, st_ch = span * 0.35, chord * 0.55
    stab = Extrude(_wing_outline(st_ch, st_span, sweep * 0.5, st_ch * 0.5), 0.015, wing_col).move(L / 2 - st_ch, 0, fr * 0.3)
    fh = c.u("fin_height", 0.3, 0.45)
    fin = Extrude([(0, 0), (st_ch * 1.3, 0), (st_ch * 1.3, fh), (st_ch * 0.7, fh)], 0.015, wing_col)
    fin = fin.rot("x", 90).move(L / 2 - st_ch * 1.5, 0, fr * 0.3)
    parts = [smooth_union(fus, nose, tail_cone, k=0.03), wings, stab, fin]
    if c.flag("engines", 0.6):
        for sy in (-1, 1):
            parts.append(Cylinder(0.07, 0.14, wing_col).rot("y", 90).move(-0.05 * L - 0.12, sy * span * 0.22, -fr * 0.4 - 0.09))
        c.feature("two engines")
    c.feature("swept wings" if sweep > 0.2 else "straight wings")
    c.feature("a tall tail fin" if fh > 0.38 else "a tail fin")
    return union(*parts)


def _wing_outline(chord, span, sweep, tip):
    """Both wings as one polygon in the xy plane (x from nose to tail, y along the span):
    the root chord on the axis, swept-back tips of chord `tip` at y = +-span/2."""
    return [(-chord / 2, 0), (sweep - tip / 2, -span / 2), (sweep + tip / 2, -span / 2),
            (chord / 2, 0), (sweep + tip / 2, span / 2), (sweep - tip / 2, span / 2)]


def rocket(c: Ctx) -> Node:
    R, Lb = c.u("radius", 0.17, 0.25), c.u("body_length", 0.9, 1.3)
    nl = c.u("nose_length", 0.35, 0.6)
    n_f = c.choice("fins", [3, 4])
    accent = c.color("accent", ["red", "white", "black", "grey", "orange", "blue"])
    main = c.main_rgb
    z0 = 0.15
    nose_pts = [(R * math.cos(a * math.pi / 2) ** 0.8, z0 + Lb + nl * math.sin(a * math.pi / 2))
                for a in np.linspace(0, 1, 7)]
    body = Revolve([(0, z0), (R, z0), *nose_pts[:-1], (0, z0 + Lb + nl)],
                   _band_fn(main, accent, z0 + Lb + 0.02, z0 + Lb + nl + 1))
    nozzle = CappedCone(0.08, R * 0.55, R * 0.8, (0.35, 0.35, 0.35)).move(0, 0, z0 - 0.07)
    fh, fw = c.u("fin_height", 0.3, 0.45), c.u("fin_width", 0.14, 0.26)
    fin_col = c.color("fins", [c.colors["accent"]], same_as_main_p=0.5)
    fins = []
    for k in range(n_f):
        fin = Extrude([(R * 0.8, 0), (R + fw, -0.08), (R + fw, fh * 0.35), (R * 0.8, fh)], 0.018, fin_col)
        fins.append(fin.rot("x", 90).rot("z", 360 * k / n_f).move(0, 0, z0 - 0.02))
    parts = [body, nozzle, *fins]
    if c.flag("window", 0.6):
        zw = z0 + Lb * 0.72
        parts.append(Cylinder(R * 0.32, 0.03, (0.6, 0.8, 0.95)).rot("x", 90).move(0, -R + 0.005, zw))
        parts.append(Torus(R * 0.33, 0.02, accent).rot("x", 90).move(0, -R + 0.01, zw))
        c.feature("a round window")
    c.feature(f"{NUM_WORDS[n_f]} fins")
    c.feature("a pointed nose")
    if Lb / R > 6:
        c.adjective("slender")
    return union(*parts)


# ----------------------------------------------------------------------------- tools, figures

def sword(c: Ctx) -> Node:
    bl, bw = c.u("blade_length", 1.1, 1.45), c.u("blade_width", 0.09, 0.16)
    gw, gl = c.u("guard_width", 0.3, 0.5), c.u("grip_length", 0.22, 0.3)
    tipl = c.u("tip", 0.12, 0.3)
    grip_col = c.color("grip", ["brown", "black", "grey", "red", "blue"])
    guard_col = c.color("guard", ["grey", "yellow", "black", "brown"], same_as_main_p=0.5)
    main = c.main_rgb
    z0 = gl + 0.06
    poly = [(-bw / 2, 0), (bw / 2, 0), (bw / 2 * 0.85, bl - tipl), (0, bl), (-bw / 2 * 0.85, bl - tipl)]
    blade = Extrude(poly, 0.022, main).rot("x", 90).move(0, 0, z0)
    fuller = intersect(Box((bw * 0.12, 0.03, (bl - tipl) * 0.4)).move(0, 0, z0 + (bl - tipl) * 0.45),
                       Box((1, 0.5, 1)))
    blade = subtract(blade, fuller) if c.flag("fuller", 0.5) else blade
    guard = RoundBox((gw / 2, 0.05, 0.035), 0.02, guard_col).move(0, 0, z0 - 0.03)
    grip = Cylinder(0.035, gl / 2, grip_col).move(0, 0, z0 - 0.06 - gl / 2)
    pommel = Sphere(0.06, guard_col).move(0, 0, z0 - 0.06 - gl - 0.03)
    c.feature("a broad blade" if bw > 0.13 else "a narrow blade")
    c.feature("a wide crossguard" if gw > 0.42 else "a short crossguard")
    if bl > 1.35:
        c.adjective("long")
    return union(blade, guard, grip, pommel)


def hammer(c: Ctx) -> Node:
    hl, hr = c.u("handle_length", 1.0, 1.3), c.u("handle_radius", 0.035, 0.055)
    mallet = c.flag("mallet", 0.35)
    main = c.main_rgb
    handle = Capsule((0, 0, 0.04), (0, 0, hl), hr, main)
    parts = [handle]
    if c.flag("grip", 0.35):
        grip_col = c.color("grip", ["black", "red", "yellow", "blue", "grey"])
        parts.append(Capsule((0, 0, 0.03), (0, 0, hl * 0.32), hr + 0.012, grip_col))
        c.feature("a rubber grip")
    head_col = c.color("head", ["grey", "black"], same_as_main_p=0.75)
    hw = c.u("head_length", 0.42, 0.6)
    if mallet:
        hrad = c.u("head_radius", 0.11, 0.16)
        parts.append(Cylinder(hrad, hw / 2, head_col).rot("y", 90).move(0, 0, hl))
        c.feature("a round mallet head")
    else:
        hs = c.u("head_size", 0.06, 0.08)
        face = Cylinder(hs * 1.1, hw * 0.18, head_col).rot("y", 90).move(-hw * 0.32, 0, hl)
        block = RoundBox((hw * 0.25, hs, hs), 0.015, head_col).move(0, 0, hl)
        claw = Extrude([(0, hs), (hw * 0.5, hs * 0.2), (hw * 0.55, -hs * 1.6), (hw * 0.45, -hs * 0.3), (0, -hs)],
                       hs * 0.8, head_col).rot("x", 90).move(hw * 0.2, 0, hl)
        parts += [face, block, claw]
        c.feature("a claw")
    c.feature("a long handle" if hl > 1.18 else "a short handle")
    return union(*parts)


def snowman(c: Ctx) -> Node:
    n = c.choice("balls", [2, 3, 3])
    r0 = c.u("base_radius", 0.38, 0.46)
    shrink = c.u("shrink", 0.68, 0.8)
    main = c.main_rgb
    balls, z, r = [], r0 * 0.95, r0
    centers = []
    for k in range(n):
        balls.append(Sphere(r, main).move(0, 0, z))
        centers.append((z, r))
        if k < n - 1:
            z += r * 0.85 + r * shrink * 0.85
            r *= shrink
    body = smooth_union(*balls, k=0.06)
    zh, rh = centers[-1]
    dark = c.color("details", ["black", "brown", "grey"])
    nose_col = c.color("nose", ["orange", "red", "yellow"])
    eyes = [Sphere(rh * 0.11, dark).move(sx * rh * 0.35, -rh * 0.88, zh + rh * 0.25) for sx in (-1, 1)]
    nose = CappedCone(rh * 0.35, rh * 0.14, 0.01, nose_col).rot("x", 90).move(0, -rh * 1.1, zh)
    parts = [body, *eyes, nose]
    zm, rm = centers[-2]
    parts += [Sphere(rm * 0.09, dark).move(0, -rm * 0.97 * math.cos(a), zm + rm * math.sin(a))
              for a in (-0.35, 0.0, 0.35)]
    if c.flag("hat", 0.6):
        hat_col = c.color("hat", ["black", "red", "blue", "green", "brown"])
        top = zh + rh * 0.85
        parts.append(Cylinder(rh * 0.95, 0.025, hat_col).move(0, 0, top))
        parts.append(Cylinder(rh * 0.6, rh * 0.45, hat_col).move(0, 0, top + rh * 0.45))
        c.feature("a top hat")
    if c.flag("scarf", 0.5):
        parts.append(Torus(rh * 0.9, rh * 0.17, c.color("scarf", ["red", "blue", "green", "purple", "orange"])).move(0, 0, zh - rh * 0.85))
        c.feature("a scarf")
    if c.flag("arms", 0.6):
        arm_col = c.color("arms", ["brown", "black"])
        for sx in (-1, 1):
            parts.append(Capsule((sx * rm * 0.85, 0, zm + rm * 0.2), (sx * (rm + 0.45), 0, zm + rm * 0.75), 0.025, arm_col))
        c.feature("stick arms")
    c.feature(f"{NUM_WORDS[n]} snowballs")
    return union(*parts)


def donut(c: Ctx) -> Node:
    R, r = c.u("ring_radius", 0.42, 0.55), c.u("tube_radius", 0.2, 0.28)
    dough = c.color("dough", ["brown", "orange", "yellow"])
    sprinkles = c.pattern == "solid" and c.flag("sprinkles", 0.5)
    if sprinkles:
        icing = dots(c.rgbs["main"], c.color("sprinkles", pal.COLOR_NAMES), 0.12, 0.03)
        c.feature("sprinkles")
    else:
        icing = c.main_rgb
    base = Torus(R, r, dough).move(0, 0, r)
    cut = -c.u("icing_edge", 0.25, 0.45) * r
    ice = intersect(Torus(R, r + 0.02, icing), Box((R + r + 0.1, R + r + 0.1, r)).move(0, 0, cut + r))
    ice = ice.move(0, 0, r)
    c.feature("thick icing" if cut < -0.35 * r else "icing on top")
    c.adjective("plump" if r / R > 0.5 else "round")
    return smooth_union(base, ice, k=0.015)


def lamp(c: Ctx) -> Node:
    br, sh = c.u("base_radius", 0.22, 0.32), c.u("stem_height", 0.6, 1.0)
    r1 = c.u("shade_bottom", 0.35, 0.5)
    r2 = r1 * c.u("shade_taper", 0.5, 1.0)
    hh = c.u("shade_half_height", 0.17, 0.28)
    metal = c.color("stand", ["grey", "black", "white", "brown", "yellow"], same_as_main_p=0.5)
    main = c.main_rgb
    base = smooth_union(Cylinder(br, 0.03, metal).move(0, 0, 0.03),
                        Ellipsoid((br * 0.6, br * 0.6, 0.08), metal).move(0, 0, 0.06), k=0.03)
    stem = Cylinder(c.u("stem_radius", 0.02, 0.035), sh / 2, metal).move(0, 0, sh / 2)
    t = 0.02
    inner = CappedCone(hh * 1.3, r1 + 0.15 * (r1 - r2) - t, r2 - 0.15 * (r1 - r2) - t)
    shade = subtract(CappedCone(hh, r1, r2, main), inner).move(0, 0, sh + hh * 0.3)
    bulb = Sphere(0.09, (1.0, 0.95, 0.75)).move(0, 0, sh + 0.05)
    c.feature("a drum shade" if r2 / r1 > 0.85 else "a conical shade")
    c.feature("a round base")
    if sh > 0.85:
        c.adjective("tall")
    return union(base, stem, shade, bulb)


# ----------------------------------------------------------------------------- registry

BUILDERS: dict[str, Callable[[Ctx], Node]] = {
    "chair": chair, "table": table, "stool": stool, "sofa": sofa, "bed": bed, "shelf": shelf,
    "mug": mug, "bowl": bowl, "vase": vase, "bottle": bottle, "lamp": lamp, "teapot": teapot,
    "barrel": barrel, "crate": crate, "mushroom": mushroom, "tree": tree, "house": house,
    "car": car, "airplane": airplane, "rocket": rocket, "sword": sword, "hammer": hammer,
    "snowman": snowman, "donut": donut,
}


CATEGORIES: list[str] = list(BUILDERS)


# ----------------------------------------------------------------------------- fitting

def _grid(lo, hi, n: int) -> torch.Tensor:
    axes = [torch.linspace(float(lo[i]), float(hi[i]), n) for i in range(3)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)


def _fit(node: Node, n: int = 20, sub: int = 3, lo=(-1.8, -1.8, -0.6), hi=(1.8, 1.8, 2.8)
         ) -> tuple:
    """Centre (bbox of the surface), radius bound and bbox (lo, hi) of a node in its natural units.
    Every surface point lies within half a cell diagonal h of some grid point g, and
    then |sdf(g)| <= h; so the grid points with |sdf| <= h cover the surface to within h.
    Two levels: a coarse grid, then a sub x sub x sub grid in each coarse cell kept."""
    step = np.array([(hi[i] - lo[i]) / (n - 1) for i in range(3)])
    coarse = _grid(lo, hi, n)
    with torch.no_grad():
        d = node.sdf(coarse)
        near = coarse[d.abs() <= float(np.linalg.norm(step)) / 2]
        if near.shape[0] == 0:
            raise RuntimeError("asset has no surface inside the fitting box")
        offs = (torch.arange(sub, dtype=torch.float32) + 0.5) / sub - 0.5
        offs = torch.stack(torch.meshgrid(offs, offs, offs, indexing="ij"), -1).reshape(-1, 3)
        fine = (near[:, None, :] + offs[None] * torch.as_tensor(step, dtype=torch.float32)).reshape(-1, 3)
        h = float(np.linalg.norm(step / sub)) / 2
        near = fine[node.sdf(fine).abs() <= h]
    if near.shape[0] == 0:
        raise RuntimeError("asset has no surface inside the fitting box")
    lo_, hi_ = near.min(0).values, near.max(0).values
    center = (lo_ + hi_) / 2
    radius = float((near - center).norm(dim=1).max()) + h
    return center.numpy().astype(np.float64), radius, lo_.numpy(), hi_.numpy()


def make_asset(seed: int, category: str | None = None) -> Asset:
    """A deterministic procedural asset for `seed` (any non-negative int)."""
    seed = int(seed)
    if seed < 0:
        raise ValueError("seed must be non-negative")
    if category is None:
        category = CATEGORIES[seed % len(CATEGORIES)]
    if category not in BUILDERS:
        raise ValueError(f"unknown category {category!r}; choose from {', '.join(CATEGORIES)}")
    rng = np.random.default_rng([seed, 1])
    ctx = Ctx(rng)
    node = BUILDERS[category](ctx)
    center, radius, lo, hi = _fit(node)
    pattern = ctx.pattern_fn(lo, hi)
    if pattern is not None:
        node = Recolor(node, ctx.main_rgb, pattern)
    s = FIT_RADIUS / radius
    fitted = Transform(node, offset=-center * s, scale=s)
    ctx.params["fit_scale"] = round(s, 5)
    return Asset(category=category, params=ctx.params, colors=ctx.colors, node=fitted, seed=seed,
                 features=ctx.features, adjectives=ctx.adjectives)
