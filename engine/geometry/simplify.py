"""Quadric edge-collapse decimation that keeps a closed mesh a closed 2-manifold (numpy only).

Garland and Heckbert's quadrics: each vertex sums the area-weighted planes of its faces, and an
edge collapses to the point that minimises its endpoints' summed quadric (pulled slightly
towards the edge's midpoint, so flat regions stay well posed). Collapses run in rounds:

1. every collapsible edge is scored (costs of edges whose ends did not move are kept from
   the round before), and the cheapest share are the round's candidates;
2. of those, each candidate that comes first (by cost band, then at random) among the
   candidates near its endpoints is picked: no pick has an endpoint on or next to another
   pick's, so no two share a face or change each other's checks;
3. a pick is kept only if it passes the link condition (the endpoints' common neighbours are
   exactly the two vertices opposite the edge, and no edge has both endpoints opposite it)
   and turns no face around it by more than `MIN_COS` allows; the others drop out and the
   rest compete again, away from the kept ones;
4. all kept collapses are applied at once; each removes exactly two faces.

The link condition is what plain quadric collapse (fast-simplification, for one) skips: there
a thin wall or stem collapses into edges shared by four faces, which a weld by position
(Blender's Merge by Distance, a slicer) turns into real pinches. Edges on the boundary or on a
non-manifold edge are never collapsed, so nothing that was manifold stops being so.

`tick`, where given, is called with no arguments between the steps of each round; it may
raise (the engine's `Cancelled`) to stop the work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

REGULARISE = 1e-3        # pull towards the edge midpoint, relative to the quadric's mean scale
MIN_COS = 0.2            # a face around a collapse may turn by at most acos(0.2), ~78 degrees
CANDIDATE_SHARE = 0.25   # the cheapest share of collapsible edges competes in each round
COST_BANDS = 8           # candidates compete by cost band first, then at random
PASSES = 6               # picking passes per round (failed picks drop out between them)
FAR = 2.0                # an optimum farther than this many edge lengths from the midpoint
                         # loses to the best of the endpoints and the midpoint
_UPPER = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2), (0, 3), (1, 3), (2, 3), (3, 3))


def _no_tick() -> None:
    pass


@dataclass
class _Edges:
    """The unique undirected edges of a mesh and what collapsing them needs."""

    key_e: np.ndarray          # (E,) sorted min * n + max
    ends_ex2: np.ndarray       # (E, 2) endpoints (u, v)
    opposite_ex2: np.ndarray   # (E, 2) the vertices opposite the edge in its two faces
    collapsible_e: np.ndarray  # (E,) two faces, consistent winding, no locked endpoint


@dataclass
class _Candidates:
    """The collapsible edges of a round and the cost of collapsing each."""

    edge_c: np.ndarray          # (C,) index into _Edges
    key_c: np.ndarray           # (C,) their keys, sorted
    ends_cx2: np.ndarray        # (C, 2)
    cost_c: np.ndarray          # (C,) the cheapest cost of `_placement`


def decimate_manifold(verts_vx3: np.ndarray, faces_fx3: np.ndarray, target_faces: int,
                      tick: Callable[[], None] | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """-> (verts (V', 3) float64, faces (F', 3) int64) with `target_faces` faces (or one
    more), unless no collapse passes the checks first: the link condition keeps every tunnel,
    so a wall riddled with holes cannot come down as far. Unused vertices are dropped."""
    verts = np.array(verts_vx3, dtype=np.float64)
    faces = np.array(faces_fx3, dtype=np.int64).reshape(-1, 3)
    tick = tick or _no_tick
    quadric_vx10 = _vertex_quadrics(verts, faces)
    rng = np.random.default_rng(0)
    moved = np.ones(len(verts), dtype=bool)
    cands = None
    while len(faces) - target_faces >= 2:
        tick()
        edges = _edges(faces, len(verts))
        tick()
        cands = _candidates(verts, quadric_vx10, edges, cands, moved)
        tick()
        chosen, x_cx3 = _round(verts, faces, quadric_vx10, edges, cands,
                               (len(faces) - target_faces) // 2, rng, tick)
        if len(chosen) == 0:
            break
        faces = _collapse(verts, faces, quadric_vx10, edges.ends_ex2[chosen], x_cx3)
        moved[:] = False
        moved[edges.ends_ex2[chosen, 0]] = True
    used = np.zeros(len(verts), dtype=bool)
    used[faces.reshape(-1)] = True
    return verts[used], (np.cumsum(used) - 1)[faces]


# ---------------------------------------------------------------- one round


def _candidates(verts, quadric_vx10, edges: _Edges, last: _Candidates | None,
                moved_v: np.ndarray) -> _Candidates:
    """The collapsible edges and their costs; the costs of last round's edges whose
    endpoints did not move are reused (most of them: only the merged vertices change)."""
    edge_c = np.flatnonzero(edges.collapsible_e)
    key_c, ends = edges.key_e[edge_c], edges.ends_ex2[edge_c]
    cost = np.empty(len(edge_c))
    fresh = np.ones(len(edge_c), dtype=bool)
    if last is not None and len(last.key_c) and len(edge_c):
        pos = np.minimum(np.searchsorted(last.key_c, key_c), len(last.key_c) - 1)
        fresh = (last.key_c[pos] != key_c) | moved_v[ends].any(axis=1)
        cost[~fresh] = last.cost_c[pos[~fresh]]
    cost[fresh] = _placement(quadric_vx10, verts, ends[fresh])[0].min(axis=0)
    return _Candidates(edge_c, key_c, ends, cost)


def _round(verts, faces, quadric_vx10, edges: _Edges, cands: _Candidates, budget: int, rng,
           tick):
    """Edges to collapse this round (at most `budget`) and their new points.

    The cheapest share of the candidates compete, by cost band, then at random (ranked by
    cost alone, a smooth cost field has few local minima, so a round would pick few). A pick
    collapses to the cheapest of its points that flips no face, as long as that point costs
    no more than the dearest competitor. Picks that fail drop out and the rest compete
    again, up to `PASSES` times, away from the rings of the collapses already kept."""
    ends, cost = cands.ends_cx2, cands.cost_c
    if len(ends) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 3))
    share = min(max(int(CANDIDATE_SHARE * len(cost)), 4 * budget, 1), len(cost))
    top = np.argpartition(cost, share - 1)[:share] if share < len(cost) else np.arange(share)
    top = top[np.argsort(cost[top], kind="stable")]
    ceiling = cost[top[-1]]
    top = top[np.lexsort((rng.random(share), np.arange(share) * COST_BANDS // share))]
    tick()
    nbr_start, nbr = _neighbours(edges.key_e, len(verts))
    corners = _corners(faces, len(verts))
    blocked = np.zeros(len(verts), dtype=bool)
    kept, kept_x = [], []
    for _ in range(PASSES):
        tick()
        top = top[~blocked[ends[top]].any(axis=1)]
        if len(top) == 0 or sum(map(len, kept)) >= budget:
            break
        free = _independent(ends[top], edges, len(verts))
        picked, top = top[free], top[~free]
        picked = picked[_link_ok(ends[picked], edges.opposite_ex2[cands.edge_c[picked]], edges,
                                 nbr_start, nbr)]
        x = _unflipping_points(verts, faces, quadric_vx10, corners, ends[picked], ceiling)
        done = ~np.isnan(x[:, 0])
        kept.append(picked[done])
        kept_x.append(x[done])
        touched = ends[picked[done]].reshape(-1)
        blocked[touched] = True
        blocked[_ragged(nbr_start, nbr, touched)[1]] = True
    if not kept:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 3))
    return cands.edge_c[np.concatenate(kept)[:budget]], np.concatenate(kept_x)[:budget]


def _unflipping_points(verts, faces, quadric_vx10, corners, ends_px2: np.ndarray,
                       ceiling: float) -> np.ndarray:
    """Per edge, the cheapest point of `_placement` costing at most `ceiling` whose collapse
    flips no face; NaN where there is none. (P, 3)"""
    cost_4xp, points_4xpx3 = _placement(quadric_vx10, verts, ends_px2)
    order_4xp = np.argsort(cost_4xp, axis=0, kind="stable")
    picked = np.arange(len(ends_px2))
    x = np.full((len(ends_px2), 3), np.nan)
    for k in range(4):                                  # cheapest point first
        choice = order_4xp[k]
        try_k = np.isnan(x[:, 0]) & (cost_4xp[choice, picked] <= ceiling)
        p = points_4xpx3[choice[try_k], picked[try_k]]
        ok = _no_flip(verts, faces, corners, ends_px2[try_k], p)
        x[np.flatnonzero(try_k)[ok]] = p[ok]
    return x


def _independent(ends_cx2: np.ndarray, edges: _Edges, n: int) -> np.ndarray:
    """Mask of the candidates (given in priority order) that come first among all those with
    an endpoint on or next to one of theirs: no two picks come that close, so neither
    changes the neighbours (or faces) the other's checks look at."""
    rank = np.arange(len(ends_cx2))
    best = np.full(n, len(ends_cx2), dtype=np.int64)
    np.minimum.at(best, ends_cx2.reshape(-1), np.repeat(rank, 2))
    ring = best.copy()
    e = edges.ends_ex2
    np.minimum.at(ring, e[:, 0], best[e[:, 1]])
    np.minimum.at(ring, e[:, 1], best[e[:, 0]])
    return (ring[ends_cx2[:, 0]] == rank) & (ring[ends_cx2[:, 1]] == rank)


def _link_ok(ends_px2: np.ndarray, opposite_px2: np.ndarray, edges: _Edges,
             nbr_start: np.ndarray, nbr: np.ndarray) -> np.ndarray:
    """The link condition per edge (u, v), which makes the collapse keep the surface's
    topology: u and v have exactly two common neighbours (the vertices o1, o2 opposite the
    edge), and the edge (o1, o2), if any, does not have both u and v opposite it (as in a
    tetrahedron, which would flatten into two faces on the same three vertices)."""
    n = len(nbr_start) - 1
    u, v = ends_px2[:, 0], ends_px2[:, 1]
    owner, w = _ragged(nbr_start, nbr, u)
    found, _ = _find_edge(edges.key_e, v[owner], w, n)
    common = np.bincount(owner[found], minlength=len(u))
    found, e = _find_edge(edges.key_e, opposite_px2[:, 0], opposite_px2[:, 1], n)
    across = np.sort(edges.opposite_ex2[e], axis=1)
    capped = found & (across == np.sort(ends_px2, axis=1)).all(axis=1)
    return (common == 2) & ~capped


def _no_flip(verts, faces, corners: tuple, ends_px2: np.ndarray, x_px3: np.ndarray):
    """Mask of the collapses that turn no surviving face around them past MIN_COS.
    corners: `_corners(faces)`."""
    if len(ends_px2) == 0:
        return np.zeros(0, dtype=bool)
    owner, corner = _ragged(*corners, ends_px2.reshape(-1))
    owner //= 2
    face = corner // 3
    f = faces[face]
    u, v = ends_px2[owner, 0], ends_px2[owner, 1]
    moved = (f == u[:, None]) | (f == v[:, None])
    keep = moved.sum(axis=1) == 1                      # faces on the edge itself vanish
    owner, f, moved = owner[keep], f[keep], moved[keep]
    old = verts[f]                                     # (K, 3, 3)
    new = np.where(moved[:, :, None], x_px3[owner][:, None, :], old)
    n_old = np.cross(old[:, 1] - old[:, 0], old[:, 2] - old[:, 0])
    n_new = np.cross(new[:, 1] - new[:, 0], new[:, 2] - new[:, 0])
    dot = (n_old * n_new).sum(axis=1)
    bad = dot <= MIN_COS * np.linalg.norm(n_old, axis=1) * np.linalg.norm(n_new, axis=1)
    return np.bincount(owner[bad], minlength=len(ends_px2)) == 0


def _collapse(verts, faces, quadric_vx10, ends_cx2: np.ndarray, x_cx3: np.ndarray) -> np.ndarray:
    """Merge each v into its u at x (in place for verts and quadrics) -> the new faces."""
    u, v = ends_cx2[:, 0], ends_cx2[:, 1]
    verts[u] = x_cx3
    quadric_vx10[u] += quadric_vx10[v]
    remap = np.arange(len(verts))
    remap[v] = u
    f = remap[faces]
    return f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 2] != f[:, 0])]


# ---------------------------------------------------------------- edges and adjacency


def _edges(faces: np.ndarray, n: int) -> _Edges:
    a, b, c = faces.reshape(-1), faces[:, [1, 2, 0]].reshape(-1), faces[:, [2, 0, 1]].reshape(-1)
    key = np.minimum(a, b) * n + np.maximum(a, b)
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    counts = np.diff(np.r_[starts, key.size])
    first, second = order[starts], order[np.minimum(starts + 1, key.size - 1)]
    ends = np.stack([a[first], b[first]], axis=1)
    manifold = (counts == 2) & (a[second] == b[first])     # run both ways: consistent winding
    locked = np.zeros(n, dtype=bool)
    locked[ends[~manifold].reshape(-1)] = True
    return _Edges(sorted_key[starts], ends, np.stack([c[first], c[second]], axis=1),
                  manifold & ~locked[ends].any(axis=1))


def _corners(faces: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR of the corners (3 * face + k) at each vertex: (start (n+1,), corner ids)."""
    corner_vertex = faces.reshape(-1)
    order = np.argsort(corner_vertex, kind="stable")
    return np.r_[0, np.cumsum(np.bincount(corner_vertex, minlength=n))], order


def _neighbours(key_e: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR adjacency from the edge keys: (start (n+1,), neighbour ids)."""
    lo, hi = key_e // n, key_e % n
    src, dst = np.r_[lo, hi], np.r_[hi, lo]
    order = np.argsort(src, kind="stable")
    return np.r_[0, np.cumsum(np.bincount(src, minlength=n))], dst[order]


def _ragged(start: np.ndarray, values: np.ndarray, rows: np.ndarray):
    """(owner, value) for every entry of the CSR rows `rows`: owner indexes into rows."""
    count = start[rows + 1] - start[rows]
    owner = np.repeat(np.arange(len(rows)), count)
    offset = np.arange(owner.size) - np.repeat(np.cumsum(count) - count, count)
    return owner, values[start[rows][owner] + offset]


def _find_edge(key_e: np.ndarray, a: np.ndarray, b: np.ndarray, n: int):
    """(whether (a, b) is an edge, its index where it is)."""
    key = np.minimum(a, b) * n + np.maximum(a, b)
    pos = np.minimum(np.searchsorted(key_e, key), len(key_e) - 1)
    return (key_e[pos] == key) & (a != b), pos


# ---------------------------------------------------------------- quadrics


def _vertex_quadrics(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Per vertex, the area-weighted sum of its faces' plane quadrics, (V, 10): the upper
    triangle of the 4x4 matrix in `_UPPER` order."""
    p0, p1, p2 = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    normal = np.cross(p1 - p0, p2 - p0)
    length = np.linalg.norm(normal, axis=1)
    unit = normal / np.maximum(length, 1e-30)[:, None]
    plane = np.concatenate([unit, -(unit * p0).sum(axis=1, keepdims=True)], axis=1)   # (F, 4)
    i, j = np.array(_UPPER).T
    q_fx10 = 0.5 * length[:, None] * plane[:, i] * plane[:, j]
    corner = faces.reshape(-1)
    out = np.empty((len(verts), 10))
    for k in range(10):
        out[:, k] = np.bincount(corner, weights=np.repeat(q_fx10[:, k], 3), minlength=len(verts))
    return out


def _quadric_cost(q_ex10: np.ndarray, x_ex3: np.ndarray) -> np.ndarray:
    a00, a01, a02, a11, a12, a22, b0, b1, b2, c = q_ex10.T
    x, y, z = x_ex3.T
    cost = (a00 * x * x + a11 * y * y + a22 * z * z
            + 2.0 * (a01 * x * y + a02 * x * z + a12 * y * z + b0 * x + b1 * y + b2 * z) + c)
    return np.maximum(cost, 0.0)


def _placement(quadric_vx10: np.ndarray, verts: np.ndarray, ends_ex2: np.ndarray):
    """Where each edge may collapse to, and at what cost: (cost (4, E), points (4, E, 3)) for
    the regularised optimum of the summed quadric (solved by cofactors; infinite cost where
    it lies far away), the two endpoints and the midpoint."""
    q_ex10 = quadric_vx10[ends_ex2[:, 0]] + quadric_vx10[ends_ex2[:, 1]]
    pu_ex3, pv_ex3 = verts[ends_ex2[:, 0]], verts[ends_ex2[:, 1]]
    a00, a01, a02, a11, a12, a22, b0, b1, b2, _ = q_ex10.T
    mid = 0.5 * (pu_ex3 + pv_ex3)
    lam = REGULARISE * (a00 + a11 + a22) / 3.0 + 1e-30
    m00, m11, m22 = a00 + lam, a11 + lam, a22 + lam
    r = lam[:, None] * mid - np.stack([b0, b1, b2], axis=1)
    c00, c11, c22 = m11 * m22 - a12 * a12, m00 * m22 - a02 * a02, m00 * m11 - a01 * a01
    c01, c02, c12 = a02 * a12 - a01 * m22, a01 * a12 - a02 * m11, a01 * a02 - m00 * a12
    det = m00 * c00 + a01 * c01 + a02 * c02
    adj = np.stack([c00, c01, c02, c01, c11, c12, c02, c12, c22], axis=1).reshape(-1, 3, 3)
    x = np.einsum("eij,ej->ei", adj, r) / det[:, None]
    points = np.stack([x, pu_ex3, pv_ex3, mid])                        # (4, E, 3)
    cost = np.stack([_quadric_cost(q_ex10, p) for p in points])        # (4, E)
    length = np.linalg.norm(pv_ex3 - pu_ex3, axis=1)
    far = ~np.isfinite(x).all(axis=1) | (np.linalg.norm(x - mid, axis=1) > FAR * length)
    cost[0, far] = np.inf
    return cost, points
