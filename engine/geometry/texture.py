"""Texture stage: a fast UV unwrap of our own, and baking the colour field into it.

Unwrap (box projection): every face goes to one of six groups by the dominant axis and sign
of its normal; each group splits into edge-connected charts, projected along that axis
(orthographic, so distortion stays below sqrt(3) and the chart keeps its winding). Charts
are packed as rectangles with a shelf packer at one texel density for all, with `padding`
empty texels between them. A chart that folds over itself in projection (a helix, say) is
found while rasterising and split until no texel is covered twice.

Bake: every texel whose centre lies in a triangle, or within 0.75 texel of one (so edge
texels hold their own chart's colour), gets a 3D point from barycentric coordinates,
optionally pulled onto the field's zero level set with Newton steps along the normal, and
the colour field is queried there. All remaining texels take the colour of the nearest baked
texel, so bilinear filtering and mipmaps never reach a dark background.

Pixel space: x to the right, y down from the top row, texel (row j, column i) has its centre
at (i + 0.5, j + 0.5). UVs follow Mesh's convention: u = x / W, v = 1 - y / H.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .mesh import Mesh
from .mesh_ops import compute_normals

FieldFn = Callable[[torch.Tensor], torch.Tensor]
EDGE_MARGIN = 0.75          # texels outside a triangle still baked from it


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
    graph = coo_matrix((np.ones(len(p), dtype=np.int8), (p[:, 0], p[:, 1])),
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


def _pack(box_lo: np.ndarray, box_hi: np.ndarray, size: int, padding: int):
    """Texels per object unit and integer (x, y) of each chart's rectangle (padding included)."""
    extent = np.maximum(box_hi - box_lo, 1e-12)
    limit = (size - 2 * padding - 2) / extent.max()
    scale = min(limit, np.sqrt(0.7 * size * size / (extent[:, 0] * extent[:, 1]).sum()))
    for _ in range(60):
        rect = np.ceil(extent * scale).astype(np.int64) + 1 + padding
        x, y, used = _shelf_pack(rect[:, 0], rect[:, 1], size)
        if used <= size and (x + rect[:, 0]).max() <= size:
            return scale, x, y
        scale *= min(0.97, np.sqrt(size / used))
    raise RuntimeError("UV packing failed: too many charts for the texture size.")


# ---------------------------------------------------------------- unwrap


def _atlas(mesh: Mesh, chart_f: np.ndarray, group_f: np.ndarray, size: int, padding: int) -> Atlas:
    faces = mesh.faces_fx3.astype(np.int64)
    num_charts = int(chart_f.max()) + 1
    coords = _project(mesh.vertices_nx3, faces, group_f)                # (F, 3, 2)
    box_lo, box_hi = _chart_boxes(coords, chart_f, num_charts)
    scale, x, y = _pack(box_lo, box_hi, size, padding)
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


def rasterize(pixels_fx3x2: np.ndarray, size: int, margin: float = EDGE_MARGIN) -> Raster:
    """Texels covered by (or within `margin` of) each triangle, one face per texel."""
    lo = np.floor(pixels_fx3x2.min(axis=1) - 0.5 - margin).astype(np.int64) + 1
    hi = np.floor(pixels_fx3x2.max(axis=1) - 0.5 + margin).astype(np.int64)
    lo = np.clip(lo, 0, size - 1)
    hi = np.clip(hi, 0, size - 1)
    span = np.maximum(hi - lo + 1, 0)                                    # (F, 2)
    count = span[:, 0] * span[:, 1]
    face = np.repeat(np.arange(len(count)), count)
    local = np.arange(face.size) - np.repeat(np.cumsum(count) - count, count)
    width = span[face, 0]
    col = lo[face, 0] + local % width
    row = lo[face, 1] + local // width
    normal, offset, height = _edge_lines(pixels_fx3x2)
    cx, cy = col + 0.5, row + 0.5
    dist = normal[face, :, 0] * cx[:, None] + normal[face, :, 1] * cy[:, None] + offset[face]
    score = -dist.min(axis=1)                                            # <= 0 inside
    near = score < margin
    face, dist, score = face[near], dist[near], score[near]
    texel = row[near] * size + col[near]
    inside = score <= 0
    strict = np.bincount(texel[score < -1e-3], minlength=size * size)
    overlapping = np.unique(face[(score < -1e-3) & (strict[texel] > 1)])
    # inside candidates claim their texels; edge texels go to the closest outside candidate
    owner = np.full(size * size, -1, dtype=np.int64)
    idx_in = np.flatnonzero(inside)
    owner[texel[idx_in]] = idx_in
    idx_out = np.flatnonzero(~inside & (owner[texel] < 0))
    idx_out = idx_out[np.lexsort((score[idx_out], texel[idx_out]))]
    first = np.r_[True, texel[idx_out][1:] != texel[idx_out][:-1]]
    owner[texel[idx_out[first]]] = idx_out[first]
    chosen = owner[owner >= 0]
    bary = np.clip(dist[chosen] / height[face[chosen]], 0.0, None)
    bary /= np.maximum(bary.sum(axis=1, keepdims=True), 1e-12)
    return Raster(texel[chosen], face[chosen], bary, overlapping)


# ---------------------------------------------------------------- public API


def unwrap(mesh: Mesh, size: int = 1024, padding: int = 4, max_rounds: int = 6):
    """Box-projection atlas for `mesh` -> (Atlas, Raster) with no overlapping charts."""
    if mesh.num_faces == 0:
        raise ValueError("Cannot unwrap a mesh with no faces.")
    chart, group, pairs = _initial_charts(mesh)
    for round_ in range(max_rounds + 1):
        atlas = _atlas(mesh, chart, group, size, padding)
        raster = rasterize(atlas.pixels_mx2[atlas.faces_fx3], size)
        if raster.overlapping_faces.size == 0:
            return atlas, raster
        bad = np.unique(chart[raster.overlapping_faces])
        if round_ == max_rounds - 1:                                     # last resort
            chart = chart.copy()
            loose = np.isin(chart, bad)
            chart[loose] = chart.max() + 1 + np.arange(loose.sum())
            chart = np.unique(chart, return_inverse=True)[1]
        else:
            chart = _split_charts(mesh, chart, group, bad, pairs, atlas)
    return atlas, raster


def _query(fn: FieldFn, points_nx3: np.ndarray, chunk: int = 262144) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for start in range(0, len(points_nx3), chunk):
            p = torch.from_numpy(np.ascontiguousarray(points_nx3[start:start + chunk], np.float32))
            out.append(fn(p).detach().to("cpu", torch.float32).numpy())
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


def snap_to_surface(points_nx3: np.ndarray, normals_nx3: np.ndarray, sdf_fn: FieldFn,
                    steps: int = 1, max_step: float = 0.05) -> np.ndarray:
    """Newton steps p <- p - sdf(p) * n along unit normals (|grad sdf| ~ 1), step clamped."""
    p = points_nx3.astype(np.float32)
    n = normals_nx3 / np.maximum(np.linalg.norm(normals_nx3, axis=1, keepdims=True), 1e-12)
    for _ in range(steps):
        d = np.clip(_query(sdf_fn, p).reshape(-1), -max_step, max_step)
        p = p - d[:, None] * n
    return p


def _colors(rgb_fn: FieldFn, points_nx3: np.ndarray) -> np.ndarray:
    rgb = _query(rgb_fn, points_nx3).reshape(-1, 3)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def _fill_empty(texture_hxwx3: np.ndarray, filled_hxw: np.ndarray) -> np.ndarray:
    """Every empty texel takes the colour of the nearest filled one."""
    from scipy.ndimage import distance_transform_edt

    if filled_hxw.all() or not filled_hxw.any():
        return texture_hxwx3
    rows, cols = distance_transform_edt(~filled_hxw, return_distances=False, return_indices=True)
    return texture_hxwx3[rows, cols]


def bake_texture(mesh: Mesh, rgb_fn: FieldFn, size: int = 1024, sdf_fn: FieldFn | None = None,
                 padding: int = 4, snap_steps: int = 1) -> Mesh:
    """UV-unwrap `mesh` and bake rgb_fn into a size x size texture -> Mesh with UVs + texture.

    sdf_fn: when given, each texel's point is pulled onto the field's surface first.
    Vertices are split along chart seams; faces keep their order.
    """
    if mesh.normals_nx3 is None:
        mesh = compute_normals(mesh)
    atlas, raster = unwrap(mesh, size, padding)
    src_faces = mesh.faces_fx3[raster.face_t]                            # (T, 3)
    bary = raster.bary_tx3[:, :, None]
    points = (mesh.vertices_nx3[src_faces] * bary).sum(axis=1)
    if sdf_fn is not None and snap_steps > 0:
        normals = (mesh.normals_nx3[src_faces] * bary).sum(axis=1)
        edge = np.linalg.norm(mesh.vertices_nx3[mesh.faces_fx3[:, 0]]
                              - mesh.vertices_nx3[mesh.faces_fx3[:, 1]], axis=1).mean()
        points = snap_to_surface(points, normals, sdf_fn, snap_steps, max_step=2.0 * float(edge))
    texture = np.zeros((size * size, 3), dtype=np.uint8)
    texture[raster.texel_t] = _colors(rgb_fn, points)
    filled = np.zeros(size * size, dtype=bool)
    filled[raster.texel_t] = True
    texture = _fill_empty(texture.reshape(size, size, 3), filled.reshape(size, size))
    src = atlas.source_vertex_m
    gather = lambda arr: None if arr is None else arr[src]  # noqa: E731
    return Mesh(vertices_nx3=mesh.vertices_nx3[src], faces_fx3=atlas.faces_fx3,
                normals_nx3=gather(mesh.normals_nx3), uvs_nx2=atlas.uvs(),
                texture_hxwx3=texture, vertex_colors_nx3=gather(mesh.vertex_colors_nx3))


def vertex_colors(mesh: Mesh, rgb_fn: FieldFn, sdf_fn: FieldFn | None = None,
                  snap_steps: int = 1) -> Mesh:
    """Mesh with uint8 colours of rgb_fn at its vertices (pulled onto the surface if sdf_fn)."""
    points = mesh.vertices_nx3
    if sdf_fn is not None and snap_steps > 0:
        if mesh.normals_nx3 is None:
            mesh = compute_normals(mesh)
        points = snap_to_surface(points, mesh.normals_nx3, sdf_fn, snap_steps, max_step=0.05)
    return mesh.replace(vertex_colors_nx3=_colors(rgb_fn, points))


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
