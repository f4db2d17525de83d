"""Texture stage: a fast UV unwrap of our own, and baking the colour field into it.

Unwrap (box projection): every face goes to one of six groups by the dominant axis and sign
of its normal; each group splits into edge-connected charts, projected along that axis
(orthographic, so the chart keeps its winding). Charts are packed as rectangles with a
shelf packer at the largest common texel density that fits, with `padding` empty texels
between them. A chart that folds over itself in projection (a helix, say) is
found while rasterising and split until no texel is covered twice.

Bake: every texel whose centre lies in a triangle, or within 1.5 texels of its edges (so
every texel that a bilinear lookup inside the chart touches holds the chart's own colour),
gets a 3D point from barycentric coordinates, optionally pulled onto the field's zero level
set with a Newton step along the normal, and the colour field is queried there. The
remaining texels are filled by push-pull (averages from a 2x2 pyramid), so bilinear
filtering and mipmaps never reach a dark background.

Distortion: one texel density for all charts; a face's stretch is at most sqrt(3) along
one direction (its normal is within 55 degrees of the projection axis).

Pixel space: x to the right, y down from the top row, texel (row j, column i) has its centre
at (i + 0.5, j + 0.5). UVs follow Mesh's convention: u = x / W, v = 1 - y / H.

`tick`, where a function takes it, is called with no arguments between pieces of work (each
unwrap round, packing attempt, batch of triangles, chunk of field queries, pyramid level); it
may raise (the engine's `Cancelled`) to stop the bake.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .mesh import Mesh
from .mesh_ops import compute_normals

FieldFn = Callable[[torch.Tensor], torch.Tensor]
Tick = Callable[[], None]
EDGE_MARGIN = 1.5           # texels this far outside a triangle are still baked from it
TEXELS_PER_TICK = 1 << 18   # texels (or candidates) handled between two ticks
ROWS_PER_TICK = 256         # texture rows handled between two ticks (even)


def _no_tick() -> None:
    pass


@dataclass
class Atlas:
    source_vertex_m: np.ndarray   # (M,) vertex of the input mesh behind each atlas vertex
    faces_fx3: np.ndarray         # (F, 3) int64 into atlas vertices, same order as the input
    pixels_mx2: np.ndarray        # (M, 2) float64 position in pixel space
    chart_f: np.ndarray           # (F,) chart id per face
    size: int

    def uvs(self) -> np.ndarray:
        uv = np.empty_like(self.pixels_mx2)
        uv[:, 0] = self.pixels_mx2[:, 0] / self.size
        uv[:, 1] = 1.0 - self.pixels_mx2[:, 1] / self.size
        return uv.astype(np.float32)


# ---------------------------------------------------------------- charts


def _face_pairs(faces_fx3: np.ndarray, num_vertices: int) -> np.ndarray:
    """(P, 2) pairs of faces that share an edge."""
    f = faces_fx3.astype(np.int64)
    a, b = f.reshape(-1), f[:, [1, 2, 0]].reshape(-1)
    key = np.minimum(a, b) * num_vertices + np.maximum(a, b)
    order = np.argsort(key, kind="stable")
    same = key[order[1:]] == key[order[:-1]]
    face = order // 3
    return np.stack([face[:-1][same], face[1:][same]], axis=1)


def _components(num_faces: int, pairs_px2: np.ndarray, key_f: np.ndarray) -> np.ndarray:
    """Chart label per face: connected through shared edges between faces of equal key."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    keep = key_f[pairs_px2[:, 0]] == key_f[pairs_px2[:, 1]]
    p = pairs_px2[keep]
    graph = coo_matrix((np.ones(len(p), dtype=np.int32), (p[:, 0], p[:, 1])),
                       shape=(num_faces, num_faces))
    return connected_components(graph, directed=False)[1]


def _project(vertices_nx3: np.ndarray, faces_fx3: np.ndarray, group_f: np.ndarray) -> np.ndarray:
    """Per-corner 2D coordinates (F, 3, 2) of the orthographic projection of each group."""
    axis = group_f // 2
    sign = np.where(group_f % 2 == 0, 1.0, -1.0)
    corners = vertices_nx3.astype(np.float64)[faces_fx3]               # (F, 3, 3)
    pick = lambda k: np.take_along_axis(corners, k[:, None, None].repeat(3, 1), axis=2)[..., 0]  # noqa: E731
    u = pick((axis + 1) % 3) * sign[:, None]
    v = pick((axis + 2) % 3)
    return np.stack([u, v], axis=-1)


def _chart_boxes(coords_fx3x2: np.ndarray, chart_f: np.ndarray, num_charts: int):
    """Per-chart (min_cx2, max_cx2) of its corner coordinates."""
    order = np.argsort(chart_f, kind="stable")
    sorted_charts = chart_f[order]
    starts = np.flatnonzero(np.r_[True, sorted_charts[1:] != sorted_charts[:-1]])
    c = coords_fx3x2[order]
    lo = np.minimum.reduceat(c.min(axis=1), starts, axis=0)
    hi = np.maximum.reduceat(c.max(axis=1), starts, axis=0)
    box_lo = np.zeros((num_charts, 2))
    box_hi = np.zeros((num_charts, 2))
    box_lo[sorted_charts[starts]] = lo
    box_hi[sorted_charts[starts]] = hi
    return box_lo, box_hi


# ---------------------------------------------------------------- packing


def _shelf_pack(widths_c: np.ndarray, heights_c: np.ndarray, size: int):
    """Shelf packing of integer rectangles, tallest first: (x_c, y_c, used_height)."""
    order = np.argsort(-heights_c, kind="stable")
    w, h = widths_c[order], heights_c[order]
    ends = np.cumsum(w)
    x = np.zeros(len(w), dtype=np.int64)
    y = np.zeros(len(w), dtype=np.int64)
    start, top = 0, 0
    while start < len(w):
        base = ends[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(ends, base + size, side="right")))
        x[start:stop] = ends[start:stop] - w[start:stop] - base
        y[start:stop] = top
        top += int(h[start])
        start = stop
    out_x = np.empty_like(x)
    out_y = np.empty_like(y)
    out_x[order], out_y[order] = x, y
    return out_x, out_y, top


def _pack(box_lo: np.ndarray, box_hi: np.ndarray, size: int, padding: int,
          tick: Tick = _no_tick):
    """Largest common texel density (texels per object unit) at which the shelf packer fits
    every chart: (scale, x_c, y_c) with each chart's rectangle corner (padding included)."""
    extent = np.maximum(box_hi - box_lo, 1e-12)

    def attempt(scale):
        tick()
        rect = np.ceil(extent * scale).astype(np.int64) + 1 + padding
        x, y, used = _shelf_pack(rect[:, 0], rect[:, 1], size)
        return used <= size and int((x + rect[:, 0]).max()) <= size, x, y

    high = (size - 2 * padding - 2) / extent.max()
    low = min(high, np.sqrt(0.7 * size * size / (extent[:, 0] * extent[:, 1]).sum()))
    for _ in range(60):                                 # shrink until it fits
        fits, x, y = attempt(low)
        if fits:
            break
        low *= 0.9
    else:
        raise RuntimeError("UV packing failed: too many charts for the texture size.")
    best = (low, x, y)
    for _ in range(10):                                 # then grow by bisection
        mid = 0.5 * (low + high)
        fits, x, y = attempt(mid)
        if fits:
            low, best = mid, (mid, x, y)
        else:
            high = mid
        if high - low < 0.005 * low:
            break
    return best


# ---------------------------------------------------------------- unwrap


def _atlas(mesh: Mesh, chart_f: np.ndarray, group_f: np.ndarray, size: int, padding: int,
           tick: Tick = _no_tick) -> Atlas:
    faces = mesh.faces_fx3.astype(np.int64)
    num_charts = int(chart_f.max()) + 1
    coords = _project(mesh.vertices_nx3, faces, group_f)                # (F, 3, 2)
    box_lo, box_hi = _chart_boxes(coords, chart_f, num_charts)
    scale, x, y = _pack(box_lo, box_hi, size, padding, tick)
    offset = np.stack([x, y], axis=1) + padding / 2.0 + 0.5              # (C, 2)
    pixels = (coords - box_lo[chart_f][:, None]) * scale + offset[chart_f][:, None]
    key = chart_f[:, None].astype(np.int64) * mesh.num_vertices + faces  # (F, 3)
    unique, first, inverse = np.unique(key.reshape(-1), return_index=True, return_inverse=True)
    return Atlas(source_vertex_m=unique % mesh.num_vertices,
                 faces_fx3=inverse.reshape(-1, 3),
                 pixels_mx2=pixels.reshape(-1, 2)[first],
                 chart_f=chart_f, size=size)


def _split_charts(mesh: Mesh, chart_f: np.ndarray, group_f: np.ndarray, bad_charts: np.ndarray,
                  pairs_px2: np.ndarray, atlas: Atlas) -> np.ndarray:
    """Cut each overlapping chart in two across its longer side, then re-split by connectivity."""
    centroid = atlas.pixels_mx2[atlas.faces_fx3].mean(axis=1)           # (F, 2)
    half = np.zeros(len(chart_f), dtype=np.int64)
    for c in bad_charts:
        faces = np.flatnonzero(chart_f == c)
        pts = centroid[faces]
        axis = int(np.argmax(pts.max(axis=0) - pts.min(axis=0)))
        half[faces] = pts[:, axis] > np.median(pts[:, axis])
        if len(faces) <= 2 or half[faces].all() or not half[faces].any():
            half[faces] = np.arange(len(faces)) + 1                     # one face per chart
    key = (chart_f.astype(np.int64) * (len(chart_f) + 2) + half) * 6 + group_f
    return _components(len(chart_f), pairs_px2, key)


def _initial_charts(mesh: Mesh):
    normal = mesh.face_normals()
    axis = np.argmax(np.abs(normal), axis=1)
    group = 2 * axis + (normal[np.arange(len(axis)), axis] < 0)
    pairs = _face_pairs(mesh.faces_fx3, mesh.num_vertices)
    return _components(mesh.num_faces, pairs, group), group, pairs


# ---------------------------------------------------------------- rasterisation


@dataclass
class Raster:
    texel_t: np.ndarray           # (T,) flat texel index (row * size + column)
    face_t: np.ndarray            # (T,) face baked into it
    bary_tx3: np.ndarray          # (T, 3) barycentric coordinates, clamped into the face
    overlapping_faces: np.ndarray  # faces that share a texel centre with another face


def _edge_lines(tri_fx3x2: np.ndarray):
    """Signed distance (inside positive) to the line opposite each vertex: d = a.x + c."""
    p0, p1, p2 = tri_fx3x2[:, 0], tri_fx3x2[:, 1], tri_fx3x2[:, 2]
    twice_area = ((p1[:, 0] - p0[:, 0]) * (p2[:, 1] - p0[:, 1])
                  - (p1[:, 1] - p0[:, 1]) * (p2[:, 0] - p0[:, 0]))
    orient = np.where(twice_area < 0, -1.0, 1.0)
    normals, offsets = [], []
    for a, b in ((p1, p2), (p2, p0), (p0, p1)):                          # edge opposite v0, v1, v2
        e = b - a
        n = np.stack([-e[:, 1], e[:, 0]], axis=1) * orient[:, None]
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        normals.append(n)
        offsets.append(-(n * a).sum(axis=1))
    normal = np.stack(normals, axis=1)                                   # (F, 3, 2)
    offset = np.stack(offsets, axis=1)                                   # (F, 3)
    height = (normal * tri_fx3x2).sum(axis=2) + offset                   # d_k at vertex k
    return normal, offset, np.maximum(height, 1e-12)


def _bucket(n: np.ndarray) -> np.ndarray:
    """Round spans up to a few sizes (1, 2, 3, 4, 6, 8, 12, 16, ...) to batch triangles."""
    p = 2 ** np.floor(np.log2(np.maximum(n, 1))).astype(np.int64)
    return np.where(n <= p, p, np.where(n <= p + p // 2, p + p // 2, 2 * p))


def _candidates(pixels_fx3x2: np.ndarray, size: int, margin: float, tick: Tick = _no_tick):
    """(face, texel, signed edge distances (3,), score) of texels near each triangle; score is
    minus the smallest edge distance (<= 0 inside). Triangles are batched by box size."""
    lo = np.clip(np.floor(pixels_fx3x2.min(axis=1) - 0.5 - margin).astype(np.int64) + 1, 0, size - 1)
    hi = np.clip(np.floor(pixels_fx3x2.max(axis=1) - 0.5 + margin).astype(np.int64), 0, size - 1)
    span = np.maximum(hi - lo + 1, 0)                                    # (F, 2)
    normal, offset, height = _edge_lines(pixels_fx3x2)
    normal, offset = normal.astype(np.float32), offset.astype(np.float32)
    bw, bh = _bucket(span[:, 0]), _bucket(span[:, 1])
    key = bw * (4 * size) + bh
    order = np.argsort(key, kind="stable")
    starts = np.flatnonzero(np.r_[True, key[order][1:] != key[order][:-1]])
    faces, texels, dists, scores = [], [], [], []
    for a, b in zip(starts, np.r_[starts[1:], len(order)]):
        tick()
        idx = order[a:b]
        w, h = int(bw[idx[0]]), int(bh[idx[0]])
        xs = lo[idx, 0, None] + np.arange(w)                             # (B, w)
        ys = lo[idx, 1, None] + np.arange(h)                             # (B, h)
        d = (normal[idx, :, 0, None, None] * (xs + 0.5).astype(np.float32)[:, None, None, :]
             + normal[idx, :, 1, None, None] * (ys + 0.5).astype(np.float32)[:, None, :, None]
             + offset[idx, :, None, None])                               # (B, 3, h, w)
        dmin = d.min(axis=1)                                             # (B, h, w)
        ok = ((dmin > -margin)
              & (xs <= hi[idx, 0, None])[:, None, :] & (ys <= hi[idx, 1, None])[:, :, None])
        bi, yi, xi = np.nonzero(ok)
        faces.append(idx[bi])
        texels.append(ys[bi, yi] * size + xs[bi, xi])
        dists.append(d.transpose(0, 2, 3, 1)[ok])
        scores.append(-dmin[ok])
    tick()
    return (np.concatenate(faces), np.concatenate(texels), np.concatenate(dists),
            np.concatenate(scores), height)


def rasterize(pixels_fx3x2: np.ndarray, size: int, margin: float = EDGE_MARGIN,
              tick: Tick | None = None) -> Raster:
    """Texels covered by (or within `margin` of) each triangle, one face per texel."""
    tick = tick or _no_tick
    face, texel, dist, score, height = _candidates(pixels_fx3x2, size, margin, tick)
    tick()
    inside = score <= 0
    strict = score < -1e-3
    count = np.bincount(texel[strict], minlength=size * size)
    overlapping = np.unique(face[strict & (count[texel] > 1)])
    # inside candidates claim their texels; edge texels go to the closest outside candidate
    owner = np.full(size * size, -1, dtype=np.int64)
    idx_in = np.flatnonzero(inside)
    owner[texel[idx_in]] = idx_in
    idx_out = np.flatnonzero(~inside)
    idx_out = idx_out[owner[texel[idx_out]] < 0]
    tick()
    idx_out = idx_out[np.lexsort((score[idx_out], texel[idx_out]))]
    first = np.r_[True, texel[idx_out][1:] != texel[idx_out][:-1]]
    owner[texel[idx_out[first]]] = idx_out[first]
    chosen = owner[owner >= 0]
    tick()
    return Raster(texel[chosen], face[chosen], _barycentric(dist, height, face, chosen, tick),
                  overlapping)


def _barycentric(dist_cx3: np.ndarray, height_fx3: np.ndarray, face_c: np.ndarray,
                 chosen_t: np.ndarray, tick: Tick) -> np.ndarray:
    """Barycentric coordinates of the chosen candidates, clamped into their faces, (T, 3)."""
    out = np.empty((len(chosen_t), 3), np.float32)
    for rows in _spans(len(chosen_t), TEXELS_PER_TICK, tick):
        c = chosen_t[rows]
        bary = np.clip(dist_cx3[c] / height_fx3[face_c[c]].astype(np.float32), 0.0, None)
        out[rows] = bary / np.maximum(bary.sum(axis=1, keepdims=True), 1e-12)
    return out


def _spans(n: int, step: int, tick: Tick):
    """slice(start, stop) over range(n) in steps of `step`, with a tick before each."""
    for start in range(0, n, step):
        tick()
        yield slice(start, min(start + step, n))


# ---------------------------------------------------------------- public API


def unwrap(mesh: Mesh, size: int = 1024, padding: int = 4, max_rounds: int = 6,
           tick: Tick | None = None):
    """Box-projection atlas for `mesh` -> (Atlas, Raster) with no overlapping charts.

    Charts that overlap themselves are bisected and re-split for up to `max_rounds`; any
    still overlapping after that are broken into one chart per face. Where only a few
    faces overlap (slivers folded over a neighbour), those faces alone get charts of their
    own: bisecting their whole charts would only move such folds around.
    """
    if mesh.num_faces == 0:
        raise ValueError("Cannot unwrap a mesh with no faces.")
    tick = tick or _no_tick
    chart, group, pairs = _initial_charts(mesh)
    for round_ in range(max_rounds + 1):
        tick()
        atlas = _atlas(mesh, chart, group, size, padding, tick)
        raster = rasterize(atlas.pixels_mx2[atlas.faces_fx3], size, tick=tick)
        overlapping = raster.overlapping_faces
        if overlapping.size == 0:
            break
        bad = np.unique(chart[overlapping])
        if overlapping.size <= FEW_OVERLAPPING_FACES:
            chart = _detach(chart, overlapping)
        elif round_ < max_rounds - 1:
            chart = _split_charts(mesh, chart, group, bad, pairs, atlas)
        else:                                                            # last resort
            chart = _detach(chart, np.flatnonzero(np.isin(chart, bad)))
    return atlas, raster


FEW_OVERLAPPING_FACES = 32


def _detach(chart_f: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Chart ids with each of `faces` in a chart of its own (ids renumbered 0..C-1)."""
    chart = chart_f.copy()
    chart[faces] = chart.max() + 1 + np.arange(len(faces))
    return np.unique(chart, return_inverse=True)[1]


def _query(fn: FieldFn, points_nx3: np.ndarray, device="cpu", chunk: int = 262144,
           tick: Tick = _no_tick) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for start in range(0, len(points_nx3), chunk):
            tick()
            p = torch.from_numpy(np.ascontiguousarray(points_nx3[start:start + chunk], np.float32))
            p = p.to(device)
            out.append(fn(p).detach().to("cpu", torch.float32).numpy())
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


def snap_to_surface(points_nx3: np.ndarray, normals_nx3: np.ndarray, sdf_fn: FieldFn,
                    steps: int = 1, max_step: float = 0.05, device="cpu",
                    tick: Tick | None = None) -> np.ndarray:
    """Newton steps p <- p - sdf(p) * n along unit normals (|grad sdf| ~ 1), step clamped."""
    p = points_nx3.astype(np.float32)
    n = normals_nx3 / np.maximum(np.linalg.norm(normals_nx3, axis=1, keepdims=True), 1e-12)
    for _ in range(steps):
        d = np.clip(_query(sdf_fn, p, device, tick=tick or _no_tick).reshape(-1),
                    -max_step, max_step)
        p = p - d[:, None] * n
    return p


def _colors(rgb_fn: FieldFn, points_nx3: np.ndarray, device="cpu",
            tick: Tick = _no_tick) -> np.ndarray:
    rgb = _query(rgb_fn, points_nx3, device, tick=tick).reshape(-1, 3)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def _fill_empty(texture_hxwx3: np.ndarray, filled_hxw: np.ndarray,
                tick: Tick = _no_tick) -> np.ndarray:
    """Push-pull: empty texels take the average colour of the filled ones around them, from
    ever coarser 2x2 pyramid levels (smooth, so mipmaps never see a dark background)."""
    h, w = filled_hxw.shape
    n = 1 << int(np.ceil(np.log2(max(h, w))))
    color = np.zeros((n, n, 3), np.float32)
    weight = np.zeros((n, n), np.float32)
    color[:h, :w] = texture_hxwx3 * filled_hxw[..., None]
    weight[:h, :w] = filled_hxw
    pyramid = []
    while color.shape[0] > 1:
        pyramid.append((color, weight))
        color, weight = _halve(color, tick), _halve(weight, tick)
    mean = color / max(float(weight.max()), 1e-12)
    for color, weight in reversed(pyramid):
        mean = _pull(mean, color, weight, tick)
    out = np.empty(texture_hxwx3.shape, np.uint8)
    for rows in _spans(h, ROWS_PER_TICK, tick):
        out[rows] = np.where(filled_hxw[rows, :, None], texture_hxwx3[rows],
                             np.rint(mean[rows, :w]))
    return out


def _halve(x: np.ndarray, tick: Tick) -> np.ndarray:
    """Sums over 2x2 blocks: (2m, 2m, ...) -> (m, m, ...), a band of rows per tick."""
    out = np.empty((x.shape[0] // 2, x.shape[1] // 2) + x.shape[2:], x.dtype)
    for rows in _spans(len(out), ROWS_PER_TICK, tick):
        band = x[2 * rows.start:2 * rows.stop]
        out[rows] = band[0::2, 0::2] + band[1::2, 0::2] + band[0::2, 1::2] + band[1::2, 1::2]
    return out


def _pull(mean: np.ndarray, color: np.ndarray, weight: np.ndarray, tick: Tick) -> np.ndarray:
    """One level finer: texels with weight keep their own average, the rest take the coarser
    level's mean. (m, m, 3) -> (2m, 2m, 3)."""
    out = np.empty_like(color)
    for rows in _spans(len(color), ROWS_PER_TICK, tick):
        up = mean[rows.start // 2:(rows.stop + 1) // 2].repeat(2, axis=0).repeat(2, axis=1)
        w = weight[rows]
        known = (w > 0)[..., None]
        out[rows] = np.where(known, color[rows] / np.maximum(w, 1e-12)[..., None], up[:len(w)])
    return out


def bake_texture(mesh: Mesh, rgb_fn: FieldFn, size: int = 1024, sdf_fn: FieldFn | None = None,
                 padding: int = 4, snap_steps: int = 1, device="cpu",
                 tick: Tick | None = None) -> Mesh:
    """UV-unwrap `mesh` and bake rgb_fn into a size x size texture -> Mesh with UVs + texture.

    sdf_fn: when given, each texel's point is pulled onto the field's surface first.
    device: where the query points are sent (the fields receive tensors there).
    Vertices are split along chart seams; faces keep their order.
    tick: called between pieces of work (it may raise to stop).
    """
    tick = tick or _no_tick
    if mesh.normals_nx3 is None:
        mesh = compute_normals(mesh)
    atlas, raster = unwrap(mesh, size, padding, tick=tick)
    edge = np.linalg.norm(mesh.vertices_nx3[mesh.faces_fx3[:, 0]]
                          - mesh.vertices_nx3[mesh.faces_fx3[:, 1]], axis=1).mean()
    snap = None if sdf_fn is None or snap_steps <= 0 else (sdf_fn, snap_steps, 2.0 * float(edge))
    texture = np.zeros((size * size, 3), dtype=np.uint8)
    for rows in _spans(len(raster.texel_t), TEXELS_PER_TICK, tick):
        texture[raster.texel_t[rows]] = _bake_texels(mesh, raster, rows, rgb_fn, snap, device)
    filled = np.zeros(size * size, dtype=bool)
    filled[raster.texel_t] = True
    texture = _fill_empty(texture.reshape(size, size, 3), filled.reshape(size, size), tick)
    src = atlas.source_vertex_m
    gather = lambda arr: None if arr is None else arr[src]  # noqa: E731
    return Mesh(vertices_nx3=mesh.vertices_nx3[src], faces_fx3=atlas.faces_fx3,
                normals_nx3=gather(mesh.normals_nx3), uvs_nx2=atlas.uvs(),
                texture_hxwx3=texture, vertex_colors_nx3=gather(mesh.vertex_colors_nx3))


def _bake_texels(mesh: Mesh, raster: Raster, rows: slice, rgb_fn: FieldFn, snap, device):
    """Colours (K, 3) uint8 of the raster's texels `rows`: the point each stands for, pulled
    onto the surface first when snap = (sdf_fn, steps, max_step) is given."""
    src_faces = mesh.faces_fx3[raster.face_t[rows]]                      # (K, 3)
    bary = raster.bary_tx3[rows]
    points = sum(mesh.vertices_nx3[src_faces[:, k]] * bary[:, k, None] for k in range(3))
    if snap is not None:
        normals = sum(mesh.normals_nx3[src_faces[:, k]] * bary[:, k, None] for k in range(3))
        points = snap_to_surface(points, normals, snap[0], snap[1], snap[2], device)
    return _colors(rgb_fn, points, device)


def vertex_colors(mesh: Mesh, rgb_fn: FieldFn, sdf_fn: FieldFn | None = None,
                  snap_steps: int = 1, device="cpu", tick: Tick | None = None) -> Mesh:
    """Mesh with uint8 colours of rgb_fn at its vertices (pulled onto the surface if sdf_fn)."""
    points = mesh.vertices_nx3
    if sdf_fn is not None and snap_steps > 0:
        if mesh.normals_nx3 is None:
            mesh = compute_normals(mesh)
        points = snap_to_surface(points, mesh.normals_nx3, sdf_fn, snap_steps, 0.05, device, tick)
    return mesh.replace(vertex_colors_nx3=_colors(rgb_fn, points, device, tick or _no_tick))


def sample_texture(texture_hxwx3: np.ndarray, uvs_nx2: np.ndarray) -> np.ndarray:
    """Bilinear lookup (clamped at the border) of UVs in Mesh's convention -> (N, 3) float."""
    h, w = texture_hxwx3.shape[:2]
    x = np.clip(uvs_nx2[:, 0] * w - 0.5, 0, w - 1)
    y = np.clip((1.0 - uvs_nx2[:, 1]) * h - 0.5, 0, h - 1)
    x0 = np.minimum(np.floor(x).astype(np.int64), w - 2)
    y0 = np.minimum(np.floor(y).astype(np.int64), h - 2)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    t = texture_hxwx3.astype(np.float64)
    top = t[y0, x0] * (1 - fx) + t[y0, x0 + 1] * fx
    bottom = t[y0 + 1, x0] * (1 - fx) + t[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


# ---------------------------------------------------------------- baking onto a given layout


def uv_pixels(uvs_tx3x2: np.ndarray, size: int) -> np.ndarray:
    """Per-corner UVs (Mesh's convention, v up) -> pixel space (T, 3, 2) of a size x size
    texture. A UV map may tile past [0, 1]: each triangle is moved by whole tiles so its
    centroid lies in the first one (the texture repeats there)."""
    uv = uvs_tx3x2.astype(np.float64)
    uv = uv - np.floor(uv.mean(axis=1, keepdims=True))
    return np.stack([uv[..., 0] * size, (1.0 - uv[..., 1]) * size], axis=-1)


def uv_area(uvs_tx3x2: np.ndarray) -> float:
    """Total area of the triangles in UV space (1 covers the texture once)."""
    e1 = uvs_tx3x2[:, 1].astype(np.float64) - uvs_tx3x2[:, 0]
    e2 = uvs_tx3x2[:, 2].astype(np.float64) - uvs_tx3x2[:, 0]
    return float(0.5 * np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]).sum())


def bake_uv_layout(corners_tx3x3: np.ndarray, uvs_tx3x2: np.ndarray, rgb_fn: FieldFn,
                   size: int = 1024, device="cpu", tick: Tick | None = None):
    """Bake rgb_fn into a size x size texture laid out by a mesh's own UVs (nothing is
    unwrapped or split): every texel inside (or within EDGE_MARGIN of) a triangle's UV
    footprint gets the 3D point of its barycentric coordinates on that triangle's corners
    `corners_tx3x3` (the frame rgb_fn expects), the colour there; the rest of the texture
    is filled by push-pull. Where UV triangles overlap, one of them owns each texel.
    Returns (texture (size, size, 3) uint8, the fraction of texels baked)."""
    tick = tick or _no_tick
    raster = rasterize(uv_pixels(uvs_tx3x2, size), size, tick=tick)
    texture = np.zeros((size * size, 3), dtype=np.uint8)
    corners = corners_tx3x3.astype(np.float32)
    for rows in _spans(len(raster.texel_t), TEXELS_PER_TICK, tick):
        points_kx3 = np.einsum("kc,kcd->kd", raster.bary_tx3[rows], corners[raster.face_t[rows]])
        texture[raster.texel_t[rows]] = _colors(rgb_fn, points_kx3, device, tick)
    filled = np.zeros(size * size, dtype=bool)
    filled[raster.texel_t] = True
    texture = _fill_empty(texture.reshape(size, size, 3), filled.reshape(size, size), tick)
    return texture, float(filled.mean())
