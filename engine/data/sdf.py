"""Signed distance primitives, transforms and blends, with a colour carried per part.

Every node maps a batch of points to distances: `node.sdf(points_nx3) -> n` (negative
inside) and `node.eval(points_nx3) -> (n, n x 3)` with the colour at each point (the
colour of the nearest part; smooth unions blend colours with the same weight as the
distances). Primitives are exact Euclidean SDFs in their local frame (the ellipsoid is a
bound, marked below); rigid transforms and uniform scales keep them exact; unions are
exact outside and bounds inside; every operator keeps the field 1-Lipschitz, which is
what sphere tracing needs.

Colours are either an RGB triple or a *pattern*: a callable from local points (n, 3)
to colours (n, 3). `solid`, `stripes`, `two_tone`, `checks` and `dots` make patterns.

Build with the helpers: `Sphere(0.3, color=RED).move(0, 0, 0.5)`,
`union(a, b)`, `smooth_union(a, b, k=0.05)`, `subtract(a, b)`, `a.rot("x", 90)`.
Local frames are Z-up; all inputs are float tensors on any device.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch

Color = tuple | Callable[[torch.Tensor], torch.Tensor]
GREY = (0.5, 0.5, 0.5)


# ----------------------------------------------------------------------------- patterns

def _const(rgb, points_nx3: torch.Tensor) -> torch.Tensor:
    c = torch.as_tensor(rgb, dtype=points_nx3.dtype, device=points_nx3.device)
    return c.expand(points_nx3.shape[0], 3)


def paint(color: Color, points_nx3: torch.Tensor) -> torch.Tensor:
    """Colour (n, 3) of `color` (RGB triple or pattern) at local points."""
    return color(points_nx3) if callable(color) else _const(color, points_nx3)


def _mix(mask_n: torch.Tensor, c1: Color, c2: Color, p: torch.Tensor) -> torch.Tensor:
    return torch.where(mask_n[:, None], paint(c1, p), paint(c2, p))


def solid(c: Color) -> Color:
    return c


def stripes(c1: Color, c2: Color, direction=(0.0, 0.0, 1.0), period: float = 0.2,
            duty: float = 0.6, phase: float = 0.0) -> Color:
    """Parallel bands across `direction`: `c1` on a fraction `duty` of each period."""
    n = np.asarray(direction, dtype=np.float64)
    n = torch.as_tensor(n / np.linalg.norm(n), dtype=torch.float32)

    def fn(p):
        u = torch.frac((p @ n.to(p)) / period + phase + 1000.0)
        return _mix(u < duty, c1, c2, p)
    return fn


def two_tone(c1: Color, c2: Color, axis: int = 2, split: float = 0.0) -> Color:
    """`c1` above `split` along `axis`, `c2` below."""
    return lambda p: _mix(p[:, axis] >= split, c1, c2, p)


def checks(c1: Color, c2: Color, size: float = 0.15, fill: float = 1.0) -> Color:
    """3D checkerboard of cubes of edge `size`: `c2` on every other cube (only its
    central `fill` fraction along each axis, leaving `c1` lines between squares)."""
    def fn(p):
        u = p / size + 1000.0
        odd = torch.remainder(torch.floor(u).sum(1), 2) == 1
        inner = ((torch.frac(u) - 0.5).abs() < fill / 2).all(1)
        return _mix(~(odd & inner), c1, c2, p)
    return fn


def dots(c1: Color, c2: Color, spacing: float = 0.2, radius: float = 0.06) -> Color:
    """`c1` with round spots of `c2` on a cubic lattice (toadstool spots, sprinkles)."""
    def fn(p):
        q = torch.frac(p / spacing + 1000.0) - 0.5
        return _mix(q.norm(dim=1) * spacing > radius, c1, c2, p)
    return fn


# ----------------------------------------------------------------------------- nodes

class Node:
    """A signed distance field with colour. Subclasses implement `sdf` and `eval`."""

    def sdf(self, p: torch.Tensor) -> torch.Tensor:           # (n, 3) -> (n,)
        raise NotImplementedError

    def eval(self, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # -> (n,), (n, 3)
        raise NotImplementedError

    def rgb(self, p: torch.Tensor) -> torch.Tensor:
        return self.eval(p)[1]

    def bounds(self) -> tuple[np.ndarray, float]:
        """A ball (centre (3,), radius) in this node's frame containing the surface."""
        raise NotImplementedError

    def lower_bound(self, p: torch.Tensor) -> torch.Tensor:
        """Distance from points to the bounding ball: no part of the surface is closer,
        so a union can skip this node where the bound exceeds the running minimum."""
        if not hasattr(self, "_bball"):
            c, r = self.bounds()
            self._bball = (torch.as_tensor(c, dtype=torch.float32), float(r))
        c, r = self._bball
        return (p - c.to(p)).norm(dim=1) - r

    # --- transform sugar (each returns a new node; nested transforms are merged)
    def move(self, x: float = 0.0, y: float = 0.0, z: float = 0.0) -> "Node":
        return Transform(self, offset=(x, y, z))

    def rot(self, axis: str, degrees: float) -> "Node":
        return Transform(self, rotation=rotation_matrix(axis, degrees))

    def scale(self, s: float) -> "Node":
        return Transform(self, scale=s)

    def paint(self, color: Color) -> "Node":
        return Paint(self, color)


class Primitive(Node):
    """A shape in its local frame with a colour (RGB or pattern in local coordinates)."""

    def __init__(self, color: Color = GREY):
        self.color = color

    def eval(self, p):
        return self.sdf(p), paint(self.color, p)


def _length2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """sqrt(x^2 + y^2), with a finite gradient at 0 (autograd of the SDFs stays NaN-free)."""
    return torch.sqrt((x * x + y * y).clamp(min=1e-24))


def _norm(v: torch.Tensor) -> torch.Tensor:
    """Row norms of (n, 3), with a finite gradient at 0."""
    return torch.sqrt((v * v).sum(1).clamp(min=1e-24))


class Sphere(Primitive):
    def __init__(self, r: float, color: Color = GREY):
        super().__init__(color)
        self.r = float(r)

    def sdf(self, p):
        return _norm(p) - self.r

    def bounds(self):
        return np.zeros(3), self.r


class Box(Primitive):
    """Axis-aligned box with half extents (hx, hy, hz)."""

    def __init__(self, half: Sequence[float], color: Color = GREY):
        super().__init__(color)
        self.half = tuple(float(h) for h in half)

    def sdf(self, p):
        q = p.abs() - torch.as_tensor(self.half, dtype=p.dtype, device=p.device)
        outside = _norm(q.clamp(min=0))
        inside = q.max(dim=1).values.clamp(max=0)
        return outside + inside

    def bounds(self):
        return np.zeros(3), float(np.linalg.norm(self.half)) + getattr(self, "r", 0.0)


class RoundBox(Box):
    """Box with half extents `half` (outer) whose edges are rounded with radius `r`."""

    def __init__(self, half: Sequence[float], r: float, color: Color = GREY):
        r = min(float(r), *[float(h) for h in half])
        super().__init__([float(h) - r for h in half], color)
        self.r = r

    def sdf(self, p):
        return super().sdf(p) - self.r


class Capsule(Primitive):
    """Segment from a to b thickened by radius r."""

    def __init__(self, a: Sequence[float], b: Sequence[float], r: float, color: Color = GREY):
        super().__init__(color)
        self.a, self.b, self.r = tuple(map(float, a)), tuple(map(float, b)), float(r)

    def sdf(self, p):
        a = torch.as_tensor(self.a, dtype=p.dtype, device=p.device)
        ba = torch.as_tensor(self.b, dtype=p.dtype, device=p.device) - a
        pa = p - a
        h = ((pa @ ba) / (ba @ ba).clamp(min=1e-12)).clamp(0, 1)
        return _norm(pa - h[:, None] * ba) - self.r

    def bounds(self):
        a, b = np.asarray(self.a), np.asarray(self.b)
        return (a + b) / 2, float(np.linalg.norm(b - a)) / 2 + self.r


class Cylinder(Primitive):
    """Capped cylinder along z, radius r, half height h (centred at the origin)."""

    def __init__(self, r: float, h: float, color: Color = GREY):
        super().__init__(color)
        self.r, self.h = float(r), float(h)

    def sdf(self, p):
        dx = _length2(p[:, 0], p[:, 1]) - self.r
        dz = p[:, 2].abs() - self.h
        inside = torch.maximum(dx, dz).clamp(max=0)
        return inside + _length2(dx.clamp(min=0), dz.clamp(min=0))

    def bounds(self):
        return np.zeros(3), math.hypot(self.r, self.h)


class CappedCone(Primitive):
    """Truncated cone along z from z=-h (radius r1) to z=+h (radius r2); r2=0 is a cone."""

    def __init__(self, h: float, r1: float, r2: float, color: Color = GREY):
        super().__init__(color)
        self.h, self.r1, self.r2 = float(h), float(r1), float(r2)

    def sdf(self, p):
        h, r1, r2 = self.h, self.r1, self.r2
        qx, qy = _length2(p[:, 0], p[:, 1]), p[:, 2]
        k2x, k2y = r2 - r1, 2.0 * h
        # distance to the caps
        cax = qx - torch.clamp(qx, max=r1) * (qy < 0) - torch.clamp(qx, max=r2) * (qy >= 0)
        cay = qy.abs() - h
        # distance to the slanted side
        t = (((r2 - qx) * k2x + (h - qy) * k2y) / (k2x * k2x + k2y * k2y)).clamp(0, 1)
        cbx, cby = qx - r2 + k2x * t, qy - h + k2y * t
        sign = torch.where((cbx < 0) & (cay < 0), -1.0, 1.0).to(p.dtype)
        d2 = torch.minimum(cax * cax + cay * cay, cbx * cbx + cby * cby)
        return sign * d2.clamp(min=1e-24).sqrt()

    def bounds(self):
        return np.zeros(3), math.hypot(max(self.r1, self.r2), self.h)


class Torus(Primitive):
    """Ring in the xy plane: major radius R, tube radius r."""

    def __init__(self, R: float, r: float, color: Color = GREY):
        super().__init__(color)
        self.R, self.r = float(R), float(r)

    def sdf(self, p):
        return _length2(_length2(p[:, 0], p[:, 1]) - self.R, p[:, 2]) - self.r

    def bounds(self):
        return np.zeros(3), self.R + self.r


class Ellipsoid(Primitive):
    """Ellipsoid with radii (a, b, c). Not exact: a tight bound (exact on the surface,
    gradient norm ~1 near it), good for tracing and sign."""

    def __init__(self, radii: Sequence[float], color: Color = GREY):
        super().__init__(color)
        self.radii = tuple(float(r) for r in radii)

    def sdf(self, p):
        r = torch.as_tensor(self.radii, dtype=p.dtype, device=p.device)
        k0 = _norm(p / r)
        k1 = _norm(p / (r * r)).clamp(min=1e-9)
        return k0 * (k0 - 1.0) / k1

    def bounds(self):
        return np.zeros(3), max(self.radii)


class Polygon:
    """A simple closed 2D polygon (any winding) with per-edge constants precomputed."""

    def __init__(self, verts_mx2):
        v = torch.as_tensor(np.asarray(verts_mx2, dtype=np.float64), dtype=torch.float32)
        e = torch.roll(v, -1, 0) - v
        self._base = {"vx": v[:, 0], "vy": v[:, 1], "ex": e[:, 0], "ey": e[:, 1],
                      "inv": 1.0 / (e * e).sum(1).clamp(min=1e-12), "wy": torch.roll(v, -1, 0)[:, 1]}
        self._cache: dict = {}
        self.verts = v

    def consts(self, ref: torch.Tensor) -> dict:
        key = (ref.device, ref.dtype)
        if key not in self._cache:
            self._cache[key] = {k: t.to(ref) for k, t in self._base.items()}
        return self._cache[key]


def polygon_sdf(qx: torch.Tensor, qy: torch.Tensor, poly: Polygon) -> torch.Tensor:
    """Exact signed distance from 2D points (qx, qy: (n,)) to a polygon; (n, m) work."""
    k = poly.consts(qx)
    wx = qx[:, None] - k["vx"]                                        # (n, m)
    wy = qy[:, None] - k["vy"]
    t = ((wx * k["ex"] + wy * k["ey"]) * k["inv"]).clamp_(0, 1)
    bx = wx - k["ex"] * t
    by = wy - k["ey"] * t
    dist = (bx * bx + by * by).min(dim=1).values.clamp(min=1e-24).sqrt()
    # crossing number for the sign: an edge counts when all three tests agree
    c1 = qy[:, None] >= k["vy"]
    c2 = qy[:, None] < k["wy"]
    c3 = k["ex"] * wy > k["ey"] * wx
    odd = ((c1 == c2) & (c2 == c3)).sum(1) % 2 == 1
    return torch.where(odd, -dist, dist)


def _mirror_profile(profile_rz: Sequence[Sequence[float]]) -> torch.Tensor:
    pts = np.asarray(profile_rz, dtype=np.float64)
    if abs(pts[0, 0]) > 1e-9 or abs(pts[-1, 0]) > 1e-9:
        raise ValueError("a revolve profile must start and end on the axis (r = 0)")
    mirrored = pts[::-1][1:-1] * np.array([-1.0, 1.0])
    return np.concatenate([pts, mirrored])


class Revolve(Primitive):
    """Solid of revolution about z of a profile in the (r, z) half-plane: a polyline that
    starts and ends on the axis (r = 0). Exact: the distance to a surface of revolution is
    the 2D distance in the meridian plane, here to the profile mirrored across the axis."""

    def __init__(self, profile_rz: Sequence[Sequence[float]], color: Color = GREY):
        super().__init__(color)
        self.poly = Polygon(_mirror_profile(profile_rz))

    def sdf(self, p):
        return polygon_sdf(_length2(p[:, 0], p[:, 1]), p[:, 2], self.poly)

    def bounds(self):
        v = self.poly.verts.numpy().astype(np.float64)
        zc = (v[:, 1].min() + v[:, 1].max()) / 2
        return np.array([0.0, 0.0, zc]), float(np.hypot(v[:, 0], v[:, 1] - zc).max())


class Extrude(Primitive):
    """A simple polygon in the xy plane extruded along z by half height h (exact)."""

    def __init__(self, polygon_xy: Sequence[Sequence[float]], h: float, color: Color = GREY):
        super().__init__(color)
        self.poly = Polygon(polygon_xy)
        self.h = float(h)

    def sdf(self, p):
        dxy = polygon_sdf(p[:, 0], p[:, 1], self.poly)
        dz = p[:, 2].abs() - self.h
        inside = torch.maximum(dxy, dz).clamp(max=0)
        return inside + _length2(dxy.clamp(min=0), dz.clamp(min=0))

    def bounds(self):
        v = self.poly.verts.numpy().astype(np.float64)
        c = (v.min(0) + v.max(0)) / 2
        return np.array([c[0], c[1], 0.0]), float(np.hypot(np.linalg.norm(v - c, axis=1).max(), self.h))


# ----------------------------------------------------------------------------- transforms

def rotation_matrix(axis: str, degrees: float) -> np.ndarray:
    """3x3 right-handed rotation about 'x', 'y' or 'z' (counter-clockwise seen from +axis)."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    i = "xyz".index(axis)
    j, k = (i + 1) % 3, (i + 2) % 3
    m = np.eye(3)
    m[j, j], m[j, k], m[k, j], m[k, k] = c, -s, s, c
    return m


def look_rotation(direction: Sequence[float]) -> np.ndarray:
    """Rotation taking the local +z axis onto `direction` (for cylinders, cones)."""
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d)
    z = np.array([0.0, 0.0, 1.0])
    v, c = np.cross(z, d), float(z @ d)
    if np.linalg.norm(v) < 1e-9:
        return np.eye(3) if c > 0 else rotation_matrix("x", 180)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


class Transform(Node):
    """Places `child` in the parent frame: p_parent = offset + scale * rotation @ p_child.
    Distances scale by `scale` (uniform), so exact fields stay exact."""

    def __init__(self, child: Node, rotation=None, offset=(0.0, 0.0, 0.0), scale: float = 1.0):
        rot = np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64)
        off = np.asarray(offset, dtype=np.float64)
        if isinstance(child, Transform):   # merge: T_self(T_child(x))
            off = off + scale * rot @ child.offset
            rot, scale, child = rot @ child.rotation, scale * child.scale_, child.child
        self.child, self.rotation, self.offset, self.scale_ = child, rot, off, float(scale)
        self._identity = bool(np.allclose(rot, np.eye(3), atol=1e-12))
        self._cache: dict = {}

    def _local(self, p):
        key = (p.device, p.dtype)
        if key not in self._cache:
            self._cache[key] = (torch.as_tensor(self.rotation, dtype=p.dtype, device=p.device),
                                torch.as_tensor(self.offset, dtype=p.dtype, device=p.device))
        rot, off = self._cache[key]
        q = p - off
        if not self._identity:
            q = q @ rot                              # rot^T (p - off) for row vectors
        return q if self.scale_ == 1.0 else q / self.scale_

    def sdf(self, p):
        d = self.child.sdf(self._local(p))
        return d if self.scale_ == 1.0 else d * self.scale_

    def eval(self, p):
        d, c = self.child.eval(self._local(p))
        return d * self.scale_, c

    def bounds(self):
        c, r = self.child.bounds()
        return self.offset + self.scale_ * self.rotation @ c, self.scale_ * r


class Paint(Node):
    """Overrides the colour of a subtree with `color` evaluated in this node's frame."""

    def __init__(self, child: Node, color: Color):
        self.child, self.color = child, color

    def sdf(self, p):
        return self.child.sdf(p)

    def eval(self, p):
        return self.child.sdf(p), paint(self.color, p)

    def bounds(self):
        return self.child.bounds()


class Recolor(Node):
    """Replaces one exact colour `target` of a subtree by `color` (a pattern evaluated in
    this node's frame); other colours, and blends of `target` with them, are kept."""

    def __init__(self, child: Node, target: Sequence[float], color: Color):
        self.child, self.target, self.color = child, tuple(float(c) for c in target), color

    def sdf(self, p):
        return self.child.sdf(p)

    def eval(self, p):
        d, c = self.child.eval(p)
        hit = ((c - torch.as_tensor(self.target).to(c)).abs().max(dim=1).values < 1e-5)
        return d, torch.where(hit[:, None], paint(self.color, p), c)

    def bounds(self):
        return self.child.bounds()


# ----------------------------------------------------------------------------- operators

def _enclose(balls) -> tuple[np.ndarray, float]:
    """A ball containing the given balls (centre of their bounding box)."""
    cs = np.stack([c for c, _ in balls])
    rs = np.array([r for _, r in balls])
    center = ((cs - rs[:, None]).min(0) + (cs + rs[:, None]).max(0)) / 2
    return center, float((np.linalg.norm(cs - center, axis=1) + rs).max())


class Union(Node):
    """Hard union: min of the children; colour of the nearest child. Children whose
    bounding ball is farther than the running minimum are skipped (exact: they cannot
    be the minimum), so big unions only evaluate the parts near each point."""

    def __init__(self, *children: Node):
        self.children = list(children)

    def bounds(self):
        return _enclose([c.bounds() for c in self.children])

    def sdf(self, p):
        out = self.children[0].sdf(p)
        for c in self.children[1:]:
            idx = (c.lower_bound(p) < out).nonzero().squeeze(1)
            if idx.numel() == p.shape[0]:
                out = torch.minimum(out, c.sdf(p))
            elif idx.numel():
                out = out.index_put((idx,), torch.minimum(out[idx], c.sdf(p[idx])))
        return out

    def eval(self, p):
        d, col = self.children[0].eval(p)
        for c in self.children[1:]:
            idx = (c.lower_bound(p) < d).nonzero().squeeze(1)
            if idx.numel() == 0:
                continue
            d2, col2 = c.eval(p[idx])
            closer = d2 < d[idx]
            sel = idx[closer]
            d, col = d.index_put((sel,), d2[closer]), col.index_put((sel,), col2[closer])
        return d, col


def _smin_weights(a, b, k):
    h = (0.5 + 0.5 * (b - a) / k).clamp(0, 1)     # 1 -> a wins, 0 -> b wins
    return h, b + (a - b) * h - k * h * (1 - h)


class SmoothUnion(Node):
    """Polynomial smooth minimum with blend radius k; colours blend with the same weight."""

    def __init__(self, a: Node, b: Node, k: float):
        self.a, self.b, self.k = a, b, float(k)

    def bounds(self):
        c, r = _enclose([self.a.bounds(), self.b.bounds()])
        return c, r + self.k

    def sdf(self, p):
        da = self.a.sdf(p)
        idx = (self.b.lower_bound(p) < da + self.k).nonzero().squeeze(1)   # elsewhere smin = a
        if idx.numel() == 0:
            return da
        out = da.clone()
        out[idx] = _smin_weights(da[idx], self.b.sdf(p[idx]), self.k)[1]
        return out

    def eval(self, p):
        da, ca = self.a.eval(p)
        idx = (self.b.lower_bound(p) < da + self.k).nonzero().squeeze(1)
        if idx.numel() == 0:
            return da, ca
        db, cb = self.b.eval(p[idx])
        h, d = _smin_weights(da[idx], db, self.k)
        da, ca = da.clone(), ca.clone()
        da[idx], ca[idx] = d, cb + (ca[idx] - cb) * h[:, None]
        return da, ca


class Subtract(Node):
    """`a` minus `b`: max(a, -b) (smooth when k > 0). The cut faces take `a`'s colour,
    or `b`'s when `cut_color_from_b`."""

    def __init__(self, a: Node, b: Node, k: float = 0.0, cut_color_from_b: bool = False):
        self.a, self.b, self.k, self.cut_b = a, b, float(k), cut_color_from_b

    def _combine(self, da, db):
        if self.k <= 0:
            return (da >= -db).to(da.dtype), torch.maximum(da, -db)
        h, d = _smin_weights(-da, db, self.k)         # smax(a, -b) = -smin(-a, b)
        return h, -d

    def bounds(self):
        return self.a.bounds()

    def _near_b(self, p, da):
        # -b can only exceed a (or blend with it) where b < -a + k
        return (self.b.lower_bound(p) < -da + self.k).nonzero().squeeze(1)

    def sdf(self, p):
        da = self.a.sdf(p)
        idx = self._near_b(p, da)
        if idx.numel() == 0:
            return da
        out = da.clone()
        out[idx] = self._combine(da[idx], self.b.sdf(p[idx]))[1]
        return out

    def eval(self, p):
        da, ca = self.a.eval(p)
        idx = self._near_b(p, da)
        if idx.numel() == 0:
            return da, ca
        da, ca = da.clone(), ca.clone()
        if not self.cut_b:
            da[idx] = self._combine(da[idx], self.b.sdf(p[idx]))[1]
            return da, ca
        db, cb = self.b.eval(p[idx])
        h, d = self._combine(da[idx], db)
        da[idx], ca[idx] = d, cb + (ca[idx] - cb) * h[:, None]
        return da, ca


class Intersect(Node):
    """max(a, b); colour of `a`."""

    def __init__(self, a: Node, b: Node):
        self.a, self.b = a, b

    def sdf(self, p):
        return torch.maximum(self.a.sdf(p), self.b.sdf(p))

    def eval(self, p):
        da, ca = self.a.eval(p)
        return torch.maximum(da, self.b.sdf(p)), ca

    def bounds(self):
        return self.a.bounds()


class Round(Node):
    """Inflates a child by r (rounds its edges when the child was shrunk by r)."""

    def __init__(self, child: Node, r: float):
        self.child, self.r = child, float(r)

    def sdf(self, p):
        return self.child.sdf(p) - self.r

    def eval(self, p):
        d, c = self.child.eval(p)
        return d - self.r, c

    def bounds(self):
        c, r = self.child.bounds()
        return c, r + self.r


def union(*nodes: Node, leaf: int = 4) -> Node:
    """Hard union, arranged as a tree of small unions split along the longest axis of
    the parts' centres, so that culling skips whole groups of far parts."""
    nodes = [n for n in nodes if n is not None]
    if len(nodes) == 1:
        return nodes[0]
    if len(nodes) <= leaf:
        return Union(*nodes)
    balls = [n.bounds() for n in nodes]
    centers = np.stack([c for c, _ in balls])
    axis = int(np.argmax(centers.max(0) - centers.min(0)))
    order = np.argsort(centers[:, axis], kind="stable")
    half = len(nodes) // 2
    return Union(union(*[nodes[i] for i in order[:half]], leaf=leaf),
                 union(*[nodes[i] for i in order[half:]], leaf=leaf))


def smooth_union(*nodes: Node, k: float = 0.05) -> Node:
    nodes = [n for n in nodes if n is not None]
    out = nodes[0]
    for n in nodes[1:]:
        out = SmoothUnion(out, n, k)
    return out


def subtract(a: Node, *bs: Node, k: float = 0.0, cut_color_from_b: bool = False) -> Node:
    for b in bs:
        a = Subtract(a, b, k, cut_color_from_b)
    return a


def intersect(a: Node, b: Node) -> Node:
    return Intersect(a, b)
