"""Orbit cameras, per-pixel rays and Plücker ray embeddings.

Convention (OpenCV style): in camera space +x points right, +y points down and +z
points forward along the viewing direction. A camera-to-world matrix `c2w` (4x4) holds
the camera axes as columns [right, down, forward, position]. The world is right-handed
and Z-up; orbit cameras look at the origin.

Pixel (i, j) is row i (0 at the top) and column j; its ray passes through the pixel
centre (j + 0.5, i + 0.5). `fov_deg` is the full vertical (= horizontal, square images)
field of view.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch


def look_at(eye: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """c2w (4, 4) of a camera at `eye` looking at `target` (default origin), Z-up world.
    Straight up/down views use +y as the reference up direction."""
    eye = torch.as_tensor(eye, dtype=torch.float32)
    target = torch.zeros(3) if target is None else torch.as_tensor(target, dtype=torch.float32)
    fwd = target - eye
    fwd = fwd / fwd.norm()
    up = torch.tensor([0.0, 0.0, 1.0])
    if torch.cross(fwd, up, dim=0).norm() < 1e-6:
        up = torch.tensor([0.0, 1.0, 0.0])
    right = torch.cross(fwd, up, dim=0)
    right = right / right.norm()
    down = torch.cross(fwd, right, dim=0)
    c2w = torch.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, fwd, eye
    return c2w


def _as_list(x, n: int) -> list[float]:
    if isinstance(x, (int, float)):
        return [float(x)] * n
    x = [float(v) for v in x]
    if len(x) != n:
        raise ValueError(f"expected {n} values, got {len(x)}")
    return x


ORBIT_RADIUS = 2.6   # the training cameras' distance from the origin


def orbit_cameras(n: int, radius: float = ORBIT_RADIUS, elevation_deg: float | Sequence[float] = 20.0,
                  azimuth_deg: float | Sequence[float] | None = None,
                  fov_deg: float = 40.0) -> torch.Tensor:
    """n cameras on a sphere of `radius` looking at the origin -> c2w (n, 4, 4).

    `azimuth_deg` is a list of n angles or a start angle (default 0) from which n views
    are spread evenly; `elevation_deg` is one angle or n angles above the xy plane.
    Azimuth 0 looks from +x, 90 from +y. `fov_deg` is accepted so camera sets are
    described in one place; it does not change the poses (radius 2.6 with fov 40 frames
    the radius-0.9 ball that every asset fits in).
    """
    del fov_deg
    if azimuth_deg is None or isinstance(azimuth_deg, (int, float)):
        start = 0.0 if azimuth_deg is None else float(azimuth_deg)
        az = [start + 360.0 * k / n for k in range(n)]
    else:
        az = _as_list(azimuth_deg, n)
    el = _as_list(elevation_deg, n)
    mats = []
    for a, e in zip(az, el):
        a, e = math.radians(a), math.radians(e)
        eye = radius * torch.tensor([math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)])
        mats.append(look_at(eye))
    return torch.stack(mats)


def focal_length(fov_deg: float, res: int) -> float:
    """Focal length in pixels of a square image of `res` pixels."""
    return 0.5 * res / math.tan(math.radians(fov_deg) / 2)


def camera_rays(c2w: torch.Tensor, fov_deg: float, res: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays through pixel centres: origins and unit directions (..., res, res, 3) in world
    space, for c2w of shape (4, 4) or (..., 4, 4)."""
    c2w = torch.as_tensor(c2w, dtype=torch.float32)
    f = focal_length(fov_deg, res)
    pix = (torch.arange(res, dtype=torch.float32, device=c2w.device) + 0.5 - res / 2) / f
    y, x = torch.meshgrid(pix, pix, indexing="ij")                  # row i -> y, column j -> x
    d_cam = torch.stack([x, y, torch.ones_like(x)], -1)             # (H, W, 3)
    d_cam = d_cam / d_cam.norm(dim=-1, keepdim=True)
    rot = c2w[..., :3, :3]                                          # (..., 3, 3)
    dirs = torch.einsum("...ij,hwj->...hwi", rot, d_cam)
    origins = c2w[..., None, None, :3, 3].expand_as(dirs)
    return origins.contiguous(), dirs.contiguous()


def plucker(origins: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Plücker embedding (d, o x d) of rays: (..., 3), (..., 3) -> (..., 6)."""
    return torch.cat([dirs, torch.cross(origins, dirs, dim=-1)], dim=-1)


def rays_from_plucker(plucker_nx6: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse of `plucker` for unit d: (d, o x d) (..., 6) -> (the point of each ray
    closest to the world origin (..., 3), d (..., 3))."""
    d, m = plucker_nx6[..., :3], plucker_nx6[..., 3:]
    return torch.cross(d, m, dim=-1), d


def project(points_nx3: torch.Tensor, c2w: torch.Tensor, fov_deg: float, res: int):
    """Pixel coordinates (n, 2) as (column, row) in continuous pixel units (pixel centres
    at +0.5) and camera-space depth z (n,) of world points."""
    rot, pos = c2w[:3, :3], c2w[:3, 3]
    pc = (points_nx3 - pos) @ rot                                   # world -> camera
    f = focal_length(fov_deg, res)
    z = pc[:, 2]
    uv = pc[:, :2] / z.clamp(min=1e-6)[:, None] * f + res / 2
    return uv, z
