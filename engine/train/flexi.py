"""FlexiCubes fine-tuning of the decoder (LN3Diff's second VAE stage, CPU-sized).

The decoded field is meshed by FlexiCubes in training mode on a coarse grid, with the
field's FlexiCubes head giving the per-cube weights and the grid deformation, and the mesh
itself is supervised against the asset's SDF (exact for a procedural asset; for a mesh,
first order from its oriented surface bank: engine.train.points.StoreTruth.query):
- surface: points sampled on the mesh should lie on the true surface (|sdf_true| there, to
  first order: |s0 + n_true . (p - p0)|, so no gradient through the asset's SDF is needed);
- normal: the mesh's face normals against the true SDF gradient at those points;
- coverage: true surface points to their nearest mesh point (the one-sided Chamfer the
  surface term lacks, so holes and missing parts cost);
- the paper's regularisers: L_dev, weight magnitude, SDF sign flips.
These stand in for the paper's depth/normal/mask rendering losses (no rasteriser on the
CPU): they supervise the same quantities (where the surface is and how it faces) in 3D.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..geometry.flexicubes import (FlexiCubes, deviation_loss, predicted_weights,
                                   sdf_sign_flip_loss, weight_magnitude_loss)


@dataclass
class FlexiLossWeights:
    surface: float = 10.0
    normal: float = 0.5
    coverage: float = 10.0
    dev: float = 0.5
    weights: float = 0.01
    flip: float = 0.01
    res: int = 32               # FlexiCubes grid (cubes per axis over [-1, 1]^3)
    mesh_points: int = 1024     # points sampled on each extracted mesh
    true_points: int = 1024     # store points nearest the true surface (coverage targets)
    true_band: float = 0.01     # |sdf| of those points at most


def surface_targets(points_px3, sdf_p, band: float, limit: int):
    """The store's sample points within `band` of the true surface (at most `limit`): the
    targets of the coverage term, with no extra SDF evaluations. (K, 3)"""
    near = points_px3[sdf_p.abs() < band]
    return near[:limit]


def sample_mesh(verts_vx3, faces_fx3, n: int, gen: torch.Generator):
    """Area-weighted points on a triangle mesh and their face normals, both differentiable
    with respect to the vertices. -> (n, 3), (n, 3)."""
    tri = verts_vx3[faces_fx3.long()]                                        # (F, 3, 3)
    cross = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=1)
    area = cross.norm(dim=1)
    face = torch.multinomial(area.detach() + 1e-12, n, replacement=True, generator=gen)
    u, v = torch.rand(2, n, 1, generator=gen)
    flip = (u + v) > 1
    u, v = torch.where(flip, 1 - u, u), torch.where(flip, 1 - v, v)
    t = tri[face]
    points = t[:, 0] + u * (t[:, 1] - t[:, 0]) + v * (t[:, 2] - t[:, 0])
    return points, cross[face] / area[face, None].clamp(min=1e-12)


def flexi_mesh(field, planes_1, res: int, training: bool = True):
    """One asset's field (planes (1, 3, C, H, W)) -> FlexiCubes mesh on the res grid, plus
    the grid SDF and the raw weights at the surface cubes for the regularisers."""
    x_nx3 = FlexiCubes.grid_vertices(res, 1.0, device=planes_1.device)
    sdf_n = field(planes_1, x_nx3[None])[0][0]                               # (N,)
    head = lambda p: field.flexi(planes_1, p[None])[0]                       # (K, 24)
    w, raw_sx21 = predicted_weights(head, sdf_n, res)
    verts, faces, l_dev = FlexiCubes().extract(x_nx3, sdf_n, None, res, training=training, **w)
    return verts, faces, l_dev, sdf_n, raw_sx21


def flexi_losses(field, planes, rows: list, batch: dict, truth, w: FlexiLossWeights,
                 gen: torch.Generator):
    """planes (B, 3, C, H, W) of the store rows `rows`; batch: their sample points
    (B, P, 3) and true SDF there (B, P); truth: engine.train.points.StoreTruth ->
    (total, stats)."""
    terms = {k: [] for k in ("surface", "normal", "coverage", "dev", "weights", "flip")}
    for b, row in enumerate(rows):
        true_pts = surface_targets(batch["points"][b], batch["sdf"][b], w.true_band, w.true_points)
        verts, faces, l_dev, sdf_n, raw_sx21 = flexi_mesh(field, planes[b:b + 1], w.res)
        terms["flip"].append(sdf_sign_flip_loss(sdf_n, w.res))
        if faces.shape[0] == 0:          # no surface on this grid: only the field losses
            continue
        p, n_mesh = sample_mesh(verts, faces, w.mesh_points, gen)
        with torch.no_grad():
            s0, n_true = (t.to(p) for t in truth.query(row, p.detach().cpu()))
        terms["surface"].append((s0 + (n_true * (p - p.detach())).sum(1)).abs().mean())
        terms["normal"].append((1 - (n_mesh * n_true).sum(1)).mean())
        if len(true_pts):
            terms["coverage"].append(torch.cdist(true_pts.to(p), p).min(dim=1).values.mean())
        terms["dev"].append(deviation_loss(l_dev))
        terms["weights"].append(weight_magnitude_loss(raw_sx21))
    total, stats = planes.sum() * 0, {}
    for k, vals in terms.items():
        if vals:
            val = torch.stack(vals).mean()
            total = total + getattr(w, k) * val
            stats[f"fc_{k}"] = val.item()
    return total, stats
