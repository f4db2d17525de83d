"""The encoder's input, in one place: the cameras of an asset, its views, the field of view.

Every asset Kiln trains on (procedural, a user's mesh, a replayed generation) and every
asset the evaluation scores is seen through the same cameras and the same 10 channels:

  views   (V, 10, H, W)  shaded RGB on white (3), alpha (1), Plücker rays (d, o x d) (6)
  albedo  (V, 3, H, W)   unshaded colour on white (the rendering-loss target)
  c2w     (V, 4, 4)      the cameras (engine.render.cameras, OpenCV style), fov FOV_DEG

`asset_cameras(key, n)` are the training cameras of asset `key` (a procedural seed, or a
mesh's index in its store): n orbit views evenly spread from a random azimuth, random
elevations in 5-40 degrees, radius 2.6, which frames the radius-0.9 ball every asset is
scaled into.
"""

from __future__ import annotations

import numpy as np
import torch

FOV_DEG = 40.0                  # full field of view of every training and eval camera
ELEVATIONS_DEG = (5.0, 40.0)    # training elevations are drawn uniformly in this range


def camera_draws(key: int, n_views: int) -> tuple[list[float], float]:
    """(elevations (n,), first azimuth) in degrees of asset `key` (deterministic)."""
    rng = np.random.default_rng([int(key), 7])
    elevations = [float(e) for e in rng.uniform(*ELEVATIONS_DEG, n_views)]
    return elevations, float(rng.uniform(0, 360))


def asset_cameras(key: int, n_views: int = 4) -> torch.Tensor:
    """The training cameras of asset `key` -> c2w (n, 4, 4)."""
    from .cameras import orbit_cameras
    elevations, start = camera_draws(key, n_views)
    return orbit_cameras(n_views, elevation_deg=elevations, azimuth_deg=start, fov_deg=FOV_DEG)


def encoder_views(out: dict) -> dict:
    """A render dict of engine.render.tracer (V, H, W, ...) -> the asset's view tensors
    (channels first): views (V, 10, H, W), albedo (V, 3, H, W)."""
    from .cameras import plucker
    from .tracer import shade
    origins, dirs = out["rays"]                                              # (V, H, W, 3)
    shaded = shade(out["rgb"], out["normal"], out["alpha"], dirs)
    views = torch.cat([shaded, out["alpha"][..., None], plucker(origins, dirs)], -1)
    return {"views": views.permute(0, 3, 1, 2).contiguous(),
            "albedo": out["rgb"].permute(0, 3, 1, 2).contiguous()}


def field_views(sdf_fn, rgb_fn, c2w_vx4x4: torch.Tensor, res: int) -> tuple[dict, dict]:
    """Sphere-traced views of an SDF field -> (view tensors, raw render dict)."""
    from .tracer import render
    out = render(sdf_fn, rgb_fn, c2w_vx4x4, FOV_DEG, res)
    return dict(encoder_views(out), c2w=c2w_vx4x4), out


def mesh_views(vertices_vx3, faces_fx3, color_fn, c2w_vx4x4: torch.Tensor,
               res: int) -> tuple[dict, dict]:
    """Ray-cast views of a triangle mesh (color_fn(face_k, bary_kx3) -> rgb) -> (view
    tensors, raw render dict)."""
    from .tracer import render_mesh
    out = render_mesh(torch.as_tensor(vertices_vx3), torch.as_tensor(faces_fx3), c2w_vx4x4,
                      FOV_DEG, res, color_fn=color_fn)
    out.pop("face", None)
    return dict(encoder_views(out), c2w=c2w_vx4x4), out
