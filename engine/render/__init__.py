"""Ground-truth rendering: orbit cameras, Plücker rays, SDF sphere tracing, mesh ray casting;
the encoder's views of an asset (views.py), volume rendering (volume.py), thumbnails."""

from .cameras import camera_rays, focal_length, look_at, orbit_cameras, plucker, project
from .tracer import raycast_mesh, render, render_mesh, shade, sphere_trace

__all__ = ["camera_rays", "focal_length", "look_at", "orbit_cameras", "plucker", "project",
           "raycast_mesh", "render", "render_mesh", "shade", "sphere_trace"]
