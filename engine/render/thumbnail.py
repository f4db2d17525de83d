"""A small picture of a result mesh (NAME.png beside NAME.glb) for Blender's History panel.

The mesh is centred and scaled into the ball every orbit camera frames, ray-cast from one
three-quarter view (the view the procedural pictures use) with the tracer's simple
lighting, and written as an RGBA PNG whose background is transparent. The PNG carries a
text chunk naming Kiln as its writer (engine/io/outputs.py reads it back), so a picture
of the user's at that path is never taken for Kiln's. A splat result (NAME.ply) gets the
same picture of its splats, drawn by Kiln's splat renderer (render/splats.py).
"""

from __future__ import annotations

import io

import numpy as np
import torch

from ..geometry.texture import sample_texture
from ..io.outputs import THUMB_KEY, THUMB_VALUE
from .cameras import orbit_cameras
from .tracer import render_mesh

THUMB_PX = 128                # the History panel shows it at about 40-80 px
SUPERSAMPLE = 2               # 2 x 2 rays a pixel: smooth edges for a few ms more
VIEW = dict(elevation_deg=20.0, azimuth_deg=35.0)
FRAME_RADIUS = 0.9            # orbit_cameras frames the ball of this radius
GREY = 0.8                    # albedo of a mesh without colours


def framing(points_nx3: np.ndarray) -> tuple[np.ndarray, float]:
    """(centre, scale) moving the points' bounding box's sphere onto the framed ball."""
    lo, hi = points_nx3.min(axis=0), points_nx3.max(axis=0)
    radius = max(float(np.linalg.norm(hi - lo)) / 2.0, 1e-6)
    return (lo + hi) / 2.0, FRAME_RADIUS / radius


def framed_vertices(vertices_nx3: np.ndarray) -> torch.Tensor:
    """The vertices moved and scaled so their bounding box's sphere is the framed ball."""
    centre, scale = framing(vertices_nx3)
    return torch.from_numpy((vertices_nx3 - centre) * scale).float()


def albedo_fn(mesh):
    """color_fn(face_k, bary_kx3) -> rgb_kx3 in [0, 1] from the texture, the vertex colours
    or plain grey."""
    faces_fx3 = torch.from_numpy(mesh.faces_fx3.astype(np.int64))

    def interpolate(values_nxc: np.ndarray, face_k, bary_kx3) -> np.ndarray:
        corners_kx3xc = values_nxc[faces_fx3[face_k].numpy()]
        return np.einsum("kc,kcd->kd", bary_kx3.numpy(), corners_kx3xc)

    def color(face_k, bary_kx3):
        if mesh.texture_hxwx3 is not None and mesh.uvs_nx2 is not None:
            uv_kx2 = interpolate(mesh.uvs_nx2.astype(np.float64), face_k, bary_kx3)
            rgb_kx3 = sample_texture(mesh.texture_hxwx3, uv_kx2) / 255.0
        elif mesh.vertex_colors_nx3 is not None:
            rgb_kx3 = interpolate(mesh.vertex_colors_nx3 / 255.0, face_k, bary_kx3)
        else:
            rgb_kx3 = np.full((len(face_k), 3), GREY)
        return torch.from_numpy(rgb_kx3).float()
    return color


@torch.no_grad()
def thumbnail_rgba(mesh, size: int = THUMB_PX) -> np.ndarray:
    """(size, size, 4) uint8: the shaded mesh over a transparent background."""
    camera = orbit_cameras(1, **VIEW)[0]
    out = render_mesh(framed_vertices(mesh.vertices_nx3), torch.from_numpy(mesh.faces_fx3),
                      camera, res=size, color_fn=albedo_fn(mesh), supersample=SUPERSAMPLE,
                      shaded=True)
    alpha_hxw = out["alpha"]
    # the tracer composites over white: rgb = colour * alpha + (1 - alpha); undo that
    colour_hxwx3 = (out["rgb"] - (1 - alpha_hxw[..., None])) / alpha_hxw[..., None].clamp(min=1e-6)
    rgba_hxwx4 = torch.cat([colour_hxwx3.clamp(0, 1), alpha_hxw[..., None]], dim=-1)
    return (rgba_hxwx4 * 255.0 + 0.5).to(torch.uint8).numpy()


def thumbnail_png(mesh, size: int = THUMB_PX) -> bytes:
    """The thumbnail as PNG bytes, marked as Kiln's."""
    return rgba_png(thumbnail_rgba(mesh, size))


@torch.no_grad()
def splat_thumbnail_rgba(splats, size: int = THUMB_PX) -> np.ndarray:
    """(size, size, 4) uint8: Gaussian splats (engine.geometry.splats.Splats), framed and
    lit as `thumbnail_rgba` frames and lights a mesh, drawn by Kiln's splat renderer."""
    from .splats import lit_colors, render_splats
    camera = orbit_cameras(1, **VIEW)[0]
    centre, scale = framing(splats.means_nx3)
    t = splats.tensors()
    t["means_nx3"] = (t["means_nx3"] - torch.from_numpy(centre).float()) * scale
    t["scales_nx3"] = t["scales_nx3"] * scale
    t["colors_nx3"] = lit_colors(t["colors_nx3"], torch.from_numpy(splats.normals_nx3),
                                 t["means_nx3"], camera)
    out = render_splats(**t, c2w=camera, res=size, background=0.0)     # splats are smooth
    alpha_hxw = out["alpha"].clamp(0, 1)
    colour_hxwx3 = out["rgb"] / alpha_hxw[..., None].clamp(min=1e-6)     # un-premultiply
    rgba_hxwx4 = torch.cat([colour_hxwx3.clamp(0, 1), alpha_hxw[..., None]], dim=-1)
    return (rgba_hxwx4 * 255.0 + 0.5).to(torch.uint8).numpy()


def rgba_png(rgba_hxwx4: np.ndarray) -> bytes:
    """RGBA pixels as PNG bytes, marked as Kiln's."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(THUMB_KEY, THUMB_VALUE)
    out = io.BytesIO()
    Image.fromarray(rgba_hxwx4, "RGBA").save(out, format="PNG", pnginfo=info)
    return out.getvalue()
