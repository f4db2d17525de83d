"""Surfaces as points, one home for each: SDF normals by central differences, projection
onto an SDF's zero level set, points spread over that level set, and area-uniform samples
of a triangle mesh (with its colours there).

Users: the training data (surface banks), the evaluation and the benchmarks (metrics),
the renderers and refine (normals), FlexiCubes (Hermite normals), the splats (samples).
An SDF callable takes points (N, 3) and returns (N,), negative inside (torch); meshes are
numpy arrays (or a Mesh).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

SdfFn = Callable[[torch.Tensor], torch.Tensor]
Tick = Callable[[], None]


# ---------------------------------------------------------------- SDF queries

def _query(sdf_fn: SdfFn, points_mx3: torch.Tensor, chunk: int | None,
           tick: Tick | None) -> torch.Tensor:
    """sdf_fn over points (M, 3) -> (M,): one call, or calls of at most `chunk` points
    with tick() before each."""
    if chunk is None:
        return sdf_fn(points_mx3).reshape(-1)
    out = []
    for start in range(0, len(points_mx3), chunk):
        if tick is not None:
            tick()
        out.append(sdf_fn(points_mx3[start:start + chunk]).reshape(-1))
    return torch.cat(out) if out else points_mx3.new_zeros((0,))


def sdf_normals(sdf_fn: SdfFn, points_nx3: torch.Tensor, step: float = 1e-3,
                chunk: int | None = None, tick: Tick | None = None) -> torch.Tensor:
    """Unit SDF gradients (N, 3) by central differences of `step`: 6 queries a point, in
    one call (or calls of at most `chunk` points, tick() before each). The probes go to
    sdf_fn as 6 blocks of N, +x +y +z -x -y -z (the order the training data was made in:
    a field's last bits can depend on it). Differentiable when sdf_fn is; where the
    differences vanish the normal is 0."""
    offsets_3x1x3 = torch.eye(3, dtype=points_nx3.dtype, device=points_nx3.device)[:, None] * step
    probes_6xnx3 = torch.cat((points_nx3[None] + offsets_3x1x3, points_nx3[None] - offsets_3x1x3))
    values_6xn = _query(sdf_fn, probes_6xnx3.reshape(-1, 3), chunk, tick).reshape(6, -1)
    grad_nx3 = (values_6xn[:3] - values_6xn[3:]).T.to(points_nx3.dtype)
    return grad_nx3 / grad_nx3.norm(dim=1, keepdim=True).clamp(min=1e-12)


def project_to_surface(sdf_fn: SdfFn, points_nx3: torch.Tensor, iterations: int = 3,
                       step: float = 1e-3) -> torch.Tensor:
    """Points moved towards the zero level set by `iterations` steps p <- p - sdf(p) n(p)
    along the unit normal (one step lands on an exact SDF's surface where n is exact)."""
    for _ in range(iterations):
        normals_nx3 = sdf_normals(sdf_fn, points_nx3, step)
        points_nx3 = points_nx3 - sdf_fn(points_nx3)[:, None] * normals_nx3
    return points_nx3


@dataclass
class LevelSetDraw:
    """How `level_set_points` draws: candidates of [-1, 1]^3 within `band` of the surface,
    `iterations` projection steps (normals of `step`), kept where |sdf| < accept."""
    band: float = 0.08
    iterations: int = 3
    step: float = 1e-3
    accept: float = 1e-3
    rounds: int = 6
    max_batch: int = 1 << 18
    dtype: torch.dtype = torch.float32


def _level_set_round(sdf_fn: SdfFn, m: int, gen: torch.Generator, d: LevelSetDraw):
    cand_mx3 = torch.rand(m, 3, generator=gen, dtype=d.dtype) * 2 - 1
    cand_mx3 = cand_mx3[sdf_fn(cand_mx3).abs() < d.band]
    cand_mx3 = project_to_surface(sdf_fn, cand_mx3, d.iterations, d.step)
    return cand_mx3[sdf_fn(cand_mx3).abs() < d.accept]      # drop the few stuck at creases


def level_set_points(sdf_fn: SdfFn, n: int, gen: torch.Generator,
                     d: LevelSetDraw = LevelSetDraw()) -> torch.Tensor:
    """About n points (n, 3) on the zero level set, spread over the whole surface (hidden
    parts too): uniform candidates in the band, projected onto it (see LevelSetDraw).
    Thin shapes fill little of the band, so each round draws as many candidates as the
    yield so far asks for. May return fewer than n (none for an empty field)."""
    found, total, drawn, m = [], 0, 0, 8 * n
    for _ in range(d.rounds):
        found.append(_level_set_round(sdf_fn, m, gen, d))
        drawn, total = drawn + m, total + found[-1].shape[0]
        if total >= n:
            break
        m = int(min(d.max_batch, 1.3 * (n - total) / (max(total, 1) / drawn)))
    pts = torch.cat(found)
    if pts.shape[0] > n:
        pts = pts[torch.randperm(pts.shape[0], generator=gen)[:n]]
    return pts


# ---------------------------------------------------------------- mesh samples

def area_samples(vertices_vx3: np.ndarray, faces_fx3: np.ndarray, n: int,
                 rng: np.random.Generator, even: bool = False):
    """n area-uniform points on a triangle mesh -> points (n, 3), face ids (n,),
    barycentric weights (n, 3) and unit face normals (n, 3), all float64 but the ids.
    Faces are picked from the area CDF by n independent draws or, `even`, by systematic
    sampling (n evenly spaced draws after one random offset: each face gets its share to
    within one point, with fewer clumps and gaps). ValueError without faces or area."""
    v, f = np.asarray(vertices_vx3, np.float64), np.asarray(faces_fx3, np.int64)
    if len(f) == 0:
        raise ValueError("cannot sample the surface of a mesh without faces")
    cross_fx3 = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    double_area_f = np.linalg.norm(cross_fx3, axis=1)
    total = double_area_f.sum()
    if not total > 0:
        raise ValueError("cannot sample the surface of a mesh of zero area")
    cdf = np.cumsum(double_area_f) / total
    draws = (np.arange(n) + rng.random()) / n if even else rng.random(n)
    face_n = np.searchsorted(cdf, draws * cdf[-1], side="right").clip(0, len(f) - 1)
    r1, r2 = np.sqrt(rng.random(n)), rng.random(n)
    bary_nx3 = np.stack([1.0 - r1, r1 * (1.0 - r2), r1 * r2], axis=1)
    points_nx3 = np.einsum("nk,nkd->nd", bary_nx3, v[f[face_n]])
    normals_nx3 = cross_fx3[face_n] / np.maximum(double_area_f[face_n], 1e-30)[:, None]
    return points_nx3, face_n, bary_nx3, normals_nx3


@dataclass
class SurfaceSample:
    points_nx3: np.ndarray                  # float32
    normals_nx3: np.ndarray                 # float32, unit (outward for CCW faces)
    face_n: np.ndarray                      # int64, the face each point lies on
    bary_nx3: np.ndarray                    # float32 barycentric weights in that face
    colors_nx3: np.ndarray | None = None    # float32 in [0, 1] where known


def sample_surface(mesh, n: int, seed: int = 0, even: bool = False) -> SurfaceSample:
    """n points uniformly on the surface of a Mesh (area_samples, `even` as there), with
    the face normal and the mesh's colour at each point. ValueError for a mesh without
    faces or area."""
    points, face, bary, normals = area_samples(mesh.vertices_nx3, mesh.faces_fx3, n,
                                               np.random.default_rng(seed), even)
    return SurfaceSample(points.astype(np.float32), normals.astype(np.float32), face,
                         bary.astype(np.float32), mesh_colors(mesh, face, bary))


def mesh_colors(mesh, face_n: np.ndarray, bary_nx3: np.ndarray) -> np.ndarray | None:
    """Colours (n, 3) in [0, 1] of surface points given by face and barycentrics: from
    the vertex colours, else from the texture at interpolated UVs; None if neither."""
    f = mesh.faces_fx3[face_n].astype(np.int64)                              # (n, 3)
    if mesh.vertex_colors_nx3 is not None:
        c = mesh.vertex_colors_nx3.astype(np.float64) / 255.0
        return np.einsum("nk,nkd->nd", bary_nx3, c[f]).astype(np.float32)
    if mesh.texture_hxwx3 is not None and mesh.uvs_nx2 is not None:
        from .texture import sample_texture
        uv = np.einsum("nk,nkd->nd", bary_nx3, mesh.uvs_nx2.astype(np.float64)[f])
        return (sample_texture(mesh.texture_hxwx3, uv) / 255.0).astype(np.float32)
    return None
