"""Restyle (LATTE3D's text-guided stylisation): new colours for an existing mesh, baked
onto its own UV layout; its geometry is never changed.

    mesh = load_mesh("chair.npz")                 # the add-on's export (or a mesh file)
    result = pipe.restyle(mesh, "a blue chair", strength=0.75, seed=1)
    pipe.export_texture(result, "chair-blue.png")   # + chair-blue.json

The road (engine.pipeline.Pipeline.restyle runs it, one stage each):
  render   the mesh, moved and scaled into the ball every training asset fills, ray-cast
           in its present colours from four cameras (front, right, back, left, at the
           protocol's default elevation) into the encoder's 10-channel views
           (engine.render.views, the one home of cameras and field of view);
  encode   VAE encoder -> latent z0 (its mean);
  sample   z0 noised to t = strength on the flow path (engine.sampling: t = 1 is noise)
           and denoised with the prompt's condition and CFG; strength 0 keeps z0;
  decode   tri-planes;
  texture  every texel of the mesh's UV layout -> the 3D point it stands for (in the
           normalised frame) -> the field's colour there; the gutter is filled by
           push-pull (engine.geometry.texture.bake_uv_layout).

The mesh file (the add-on writes it with numpy's savez; scripts may too):
  positions_nx3   float   vertex positions (Blender: world space, metres)
  triangles_tx3   int     vertex indices, counter-clockwise seen from outside
  uvs_tx3x2       float   each triangle corner's UV (v up, Blender's convention)
  colors_tx3x3    float   optional: each corner's present colour, sRGB 0-1 (else grey)
Mesh files (.glb, .gltf, .obj, .ply) with a UV map load through trimesh, rotated so
their up axis becomes +Z.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import FIT_RADIUS, UP_ROTATIONS
from .errors import BAD_MESH, KilnError
from .protocol import DIRECTIONS, MAX_RESTYLE_TRIANGLES

GREY = 0.8                              # the colour of a mesh that sends none
VIEW_DIRECTIONS = ("front", "right", "back", "left")   # the cameras the encoder reads
MIN_UV_AREA = 1e-6                      # a UV map smaller than this covers no texel


@dataclass
class RestyleMesh:
    positions_nx3: np.ndarray           # float32, the object's own frame and units
    triangles_tx3: np.ndarray           # int64
    uvs_tx3x2: np.ndarray               # float32, per triangle corner, v up
    colors_tx3x3: np.ndarray | None = None   # float32 sRGB in [0, 1], per corner

    @property
    def num_triangles(self) -> int:
        return int(len(self.triangles_tx3))


# ----------------------------------------------------------------------------- loading

def load_mesh(path, up: str = "y") -> RestyleMesh:
    """The mesh at `path` (.npz in the format above, or a mesh file with a UV map whose
    up axis is `up`), checked; KilnError(BAD_MESH) saying what is wrong and the fix."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        return check_mesh(_from_npz(path), path.name)
    return check_mesh(_from_mesh_file(path, up), path.name)


def _from_npz(path: Path) -> RestyleMesh:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise KilnError(BAD_MESH, f"The mesh file {path.name} cannot be read ({_why(exc)}): "
                        "press Restyle again so the add-on writes it afresh.") from None
    missing = [k for k in ("positions_nx3", "triangles_tx3", "uvs_tx3x2") if k not in arrays]
    if missing:
        raise KilnError(BAD_MESH, f"The mesh file {path.name} has no {missing[0]!r} array: "
                        "it was not written by Kiln's add-on (see engine/restyle.py for "
                        "the arrays it needs).")
    for key, value in arrays.items():
        if value.dtype.kind not in "iuf":
            raise KilnError(BAD_MESH, f"The mesh file's {key!r} holds {value.dtype} values, "
                            "not numbers: write it with numbers only.")
    return RestyleMesh(arrays["positions_nx3"], arrays["triangles_tx3"], arrays["uvs_tx3x2"],
                       arrays.get("colors_tx3x3"))


def _from_mesh_file(path: Path, up: str) -> RestyleMesh:
    """Every part of a mesh file that has UVs, as one mesh (colours from its textures or
    vertex colours, through trimesh)."""
    import trimesh
    if up not in UP_ROTATIONS:
        raise KilnError(BAD_MESH, f"The up axis {up!r} is not one Kiln knows: use one of "
                        f"{', '.join(UP_ROTATIONS)}.")
    try:
        loaded = trimesh.load(str(path), process=False)
    except Exception as exc:            # parsers raise all kinds on a damaged file
        raise KilnError(BAD_MESH, f"The mesh file {path.name} cannot be read ({_why(exc)}): "
                        "re-export it from your 3D tool.") from None
    parts = loaded.dump() if isinstance(loaded, trimesh.Scene) else [loaded]
    parts = [p for p in parts if isinstance(p, trimesh.Trimesh) and len(p.faces)]
    with_uv = [p for p in parts if getattr(p.visual, "uv", None) is not None
               and len(p.visual.uv) == len(p.vertices)]
    if not with_uv:
        raise KilnError(BAD_MESH, f"The mesh file {path.name} has no triangles with a UV map: "
                        "unwrap it in your 3D tool first (Blender's Restyle button makes "
                        "one for you).")
    positions, triangles, uvs, colours, offset = [], [], [], [], 0
    for part in with_uv:
        f = np.asarray(part.faces, dtype=np.int64)
        positions.append(np.asarray(part.vertices, dtype=np.float64))
        triangles.append(f + offset)
        uvs.append(np.asarray(part.visual.uv, dtype=np.float64)[f])
        colours.append(_part_colours(part)[f])
        offset += len(part.vertices)
    rotation = np.asarray(UP_ROTATIONS[up], dtype=np.float64)
    return RestyleMesh(np.concatenate(positions) @ rotation.T, np.concatenate(triangles),
                       np.concatenate(uvs), np.concatenate(colours))


def _part_colours(part) -> np.ndarray:
    """Per-vertex sRGB colour (n, 3) of a trimesh part: its texture sampled at the
    vertices; grey when it has none (or trimesh cannot read it)."""
    material = getattr(part.visual, "material", None)
    if getattr(material, "image", None) is None \
            and getattr(material, "baseColorTexture", None) is None:
        return np.full((len(part.vertices), 3), GREY)
    try:
        rgba = np.asarray(part.visual.to_color().vertex_colors, dtype=np.float64)
        if rgba.shape == (len(part.vertices), 4):
            return rgba[:, :3] / 255.0
    except Exception:                   # trimesh has no colour for this visual
        pass
    return np.full((len(part.vertices), 3), GREY)


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:120]}".rstrip(": ")


def check_mesh(mesh: RestyleMesh, name: str = "The mesh") -> RestyleMesh:
    """`mesh` with contiguous arrays of Kiln's dtypes; KilnError(BAD_MESH) naming the
    problem and the fix when it cannot be restyled."""
    p = np.asarray(mesh.positions_nx3)
    t = np.asarray(mesh.triangles_tx3)
    uv = np.asarray(mesh.uvs_tx3x2)
    what = f"The mesh {name}"
    if t.size == 0:
        raise KilnError(BAD_MESH, f"{what} has no faces: restyle an object with faces "
                        "(a mesh of points or edges only has no surface to paint).")
    if p.ndim != 2 or p.shape[1] != 3 or t.ndim != 2 or t.shape[1] != 3:
        raise KilnError(BAD_MESH, f"{what} has positions of shape {p.shape} and triangles of "
                        f"shape {t.shape}; expected (N, 3) and (T, 3).")
    if len(t) > MAX_RESTYLE_TRIANGLES:
        raise KilnError(BAD_MESH, f"{what} has {len(t):,} triangles, more than Kiln restyles "
                        f"({MAX_RESTYLE_TRIANGLES:,}): decimate it or lower its modifiers' "
                        "levels.")
    if uv.shape != (len(t), 3, 2):
        raise KilnError(BAD_MESH, f"{what} has UVs of shape {uv.shape} for {len(t)} "
                        f"triangles; expected ({len(t)}, 3, 2), one UV per corner.")
    if t.dtype.kind not in "iu" or t.min() < 0 or t.max() >= len(p):
        raise KilnError(BAD_MESH, f"{what} has triangles naming vertices that do not exist "
                        f"(it has {len(p)}): export it again.")
    if not (np.isfinite(p).all() and np.isfinite(uv).all()):
        raise KilnError(BAD_MESH, f"{what} has positions or UVs that are not finite numbers "
                        "(NaN or infinity): fix the object's vertices or UV map.")
    used = p[np.unique(t)]
    if np.ptp(used, axis=0).max() < 1e-9:
        raise KilnError(BAD_MESH, f"{what} has no size (every vertex at one point): "
                        "restyle an object with some extent.")
    from .geometry.texture import uv_area
    if uv_area(uv) < MIN_UV_AREA:
        raise KilnError(BAD_MESH, f"{what}'s UV map has no area (every face at one UV "
                        "point): unwrap it (UV > Smart UV Project) and restyle again.")
    colours = mesh.colors_tx3x3
    if colours is not None:
        colours = np.asarray(colours, dtype=np.float32)
        if colours.shape != (len(t), 3, 3):
            raise KilnError(BAD_MESH, f"{what} has colours of shape {colours.shape} for "
                            f"{len(t)} triangles; expected ({len(t)}, 3, 3).")
        colours = np.clip(np.nan_to_num(colours, nan=GREY), 0.0, 1.0)
    return RestyleMesh(np.ascontiguousarray(p, dtype=np.float32), t.astype(np.int64),
                       np.ascontiguousarray(uv, dtype=np.float32), colours)


# ----------------------------------------------------------------------------- frame and views

def normalised(positions_nx3: np.ndarray, triangles_tx3: np.ndarray) -> np.ndarray:
    """Positions moved and scaled like a training asset: the bounding box of the used
    vertices centred on the origin, the farthest of them at FIT_RADIUS."""
    used = positions_nx3[np.unique(triangles_tx3)].astype(np.float64)
    centre = (used.min(axis=0) + used.max(axis=0)) / 2.0
    reach = float(np.linalg.norm(used - centre, axis=1).max())
    return ((positions_nx3 - centre) * (FIT_RADIUS / reach)).astype(np.float32)


def view_cameras() -> torch.Tensor:
    """c2w (4, 4, 4) of the four views the encoder reads (protocol directions)."""
    from .posed import picture_cameras
    angles = [DIRECTIONS[name] for name in VIEW_DIRECTIONS]
    return picture_cameras([a for a, _ in angles], [e for _, e in angles])


def corner_colour_fn(colors_tx3x3: np.ndarray | None):
    """color_fn(triangle_k, bary_kx3) -> rgb_kx3 for the mesh ray caster."""
    if colors_tx3x3 is None:
        return None                     # the tracer's own light grey
    colours = torch.from_numpy(colors_tx3x3)

    def colour(tri_k, bary_kx3):
        return torch.einsum("kc,kcd->kd", bary_kx3.float(), colours[tri_k])
    return colour


def encoder_views(mesh: RestyleMesh, positions_nx3: np.ndarray, size: int) -> torch.Tensor:
    """The mesh (at normalised `positions`) seen by the encoder: (4, 10, S, S)."""
    from .render.views import mesh_views
    views, _ = mesh_views(positions_nx3, mesh.triangles_tx3, corner_colour_fn(mesh.colors_tx3x3),
                          view_cameras(), size)
    return views["views"]


def texture_png(texture_hxwx3: np.ndarray) -> bytes:
    """The baked texture as RGB PNG bytes, marked as Kiln's (engine.io.outputs)."""
    import io
    from PIL import Image, PngImagePlugin
    from .io.outputs import THUMB_KEY, THUMB_VALUE
    info = PngImagePlugin.PngInfo()
    info.add_text(THUMB_KEY, THUMB_VALUE)
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(texture_hxwx3, dtype=np.uint8), "RGB").save(
        out, format="PNG", pnginfo=info)
    return out.getvalue()
