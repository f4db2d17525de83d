"""Posed pictures -> the VAE encoder's input: 1-4 pictures of one object, each with the
direction it was taken from, as (V, 10, S, S) views like the training renders.

Per picture (engine.render.views makes the training views the same way):
  RGB on white (3), alpha (1)  background removed and framed as a training view
                               (engine.imaging.frame_alike, scale REACH);
  Plücker rays (6)             of the picture's camera: an orbit camera at ORBIT_RADIUS
                               looking at the origin, field of view FOV_DEG.
Directions follow engine.protocol: azimuth 0 is the front (the camera on -Y), 90 the
right (+X), 180 the back, 270 the left; elevation is degrees above the ground plane.
"""

from __future__ import annotations

import torch

from .render.views import FOV_DEG
from .imaging import frame_alike
from .render.cameras import camera_rays, orbit_cameras, plucker

FRONT_AZIMUTH = -90.0   # orbit azimuth (0 looks from +X) of a picture's azimuth 0 (-Y)
# How far the object reaches from its centre in training views, as a fraction of the
# frame side: the median, over 48 held-out assets, of the widest reach across their 4
# training views (0.434 for 1 view, 0.447 for 4). Every asset fits the ball of radius
# 0.9 about its centre, which seen side-on from ORBIT_RADIUS would reach 0.475; most
# assets do not fill it in every direction.
REACH = 0.44


def picture_cameras(azimuths_deg, elevations_deg) -> torch.Tensor:
    """c2w (V, 4, 4) of pictures taken from these directions (engine.protocol's)."""
    return orbit_cameras(len(azimuths_deg), elevation_deg=[float(e) for e in elevations_deg],
                         azimuth_deg=[float(a) + FRONT_AZIMUTH for a in azimuths_deg],
                         fov_deg=FOV_DEG)


def view_rays(c2w_vx4x4: torch.Tensor, size: int) -> torch.Tensor:
    """Plücker rays (V, 6, S, S) of cameras, at the training field of view."""
    origins, dirs = camera_rays(c2w_vx4x4, FOV_DEG, size)                  # (V, S, S, 3)
    return plucker(origins, dirs).permute(0, 3, 1, 2).contiguous()


def with_rays(rgba_vx4xSxS: torch.Tensor, c2w_vx4x4: torch.Tensor) -> torch.Tensor:
    """Framed pictures + their cameras -> encoder views (V, 10, S, S)."""
    return torch.cat([rgba_vx4xSxS, view_rays(c2w_vx4x4, rgba_vx4xSxS.shape[-1])], dim=1)


def posed_views(pictures, azimuths_deg, elevations_deg, size: int) -> torch.Tensor:
    """Pictures (paths or (H, W, 3|4) arrays) and their directions -> (V, 10, S, S)."""
    framed = frame_alike(pictures, size, REACH)                             # (V, 4, S, S)
    return with_rays(framed, picture_cameras(azimuths_deg, elevations_deg))
