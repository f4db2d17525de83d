"""Multi-view training examples from procedural assets or the user's own meshes, and
dataset shards on disk (safetensors + a JSON of the strings; never pickle).

An example is a dict:
  views   (V, 10, H, W) float  shaded RGB on white (3), alpha (1), Plücker rays (6):
                               what the VAE encoder reads
  albedo  (V, 3, H, W)  float  unshaded colour on white (the rendering-loss target)
  depth   (V, H, W)     float  distance along each unit ray, 0 on the background
  normal  (V, 3, H, W)  float  world-space unit normals, 0 on the background
  c2w     (V, 4, 4)     float  cameras (engine.render.cameras, OpenCV style), fov FOV_DEG
  points  (P, 3), sdf (P,), rgb (P, 3)   half near the surface, half uniform in [-1, 1]^3;
                               sdf is NaN where unknown (a mesh that is not watertight)
  has_sdf bool, captions list[str], category int, color int (-1 when unknown), seed int,
  source str ("procedural" or the mesh file name)
The cameras, views and points of seed s match engine.train.cache.make_training_asset.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

FOV_DEG = 40.0
SHARD_VERSION = 1


class single_thread:
    """Run torch on one intra-op thread inside the block (restored after). The SDF and
    tracing work here is many small ops: on a busy 2-core machine two threads made it
    ~40x slower (spinning workers); processes are the way to use more cores."""

    def __enter__(self):
        self.saved = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.saved)


# ----------------------------------------------------------------------------- cameras

def example_cameras(seed: int, n_views: int = 4) -> torch.Tensor:
    """The training cameras of example `seed`: n orbit views evenly spread from a random
    azimuth, elevations uniform in 5-40 degrees, radius 2.6 (c2w (n, 4, 4))."""
    from ..render.cameras import orbit_cameras
    rng = np.random.default_rng([seed, 7])
    return orbit_cameras(n_views, elevation_deg=list(rng.uniform(5, 40, n_views)),
                         azimuth_deg=float(rng.uniform(0, 360)), fov_deg=FOV_DEG)


def _views(out: dict) -> dict:
    """Render dict (V, H, W, ...) -> the example's image tensors (channels first)."""
    from ..render.cameras import plucker
    from ..render.tracer import shade
    origins, dirs = out["rays"]
    shaded = shade(out["rgb"], out["normal"], out["alpha"], dirs)
    views = torch.cat([shaded, out["alpha"][..., None], plucker(origins, dirs)], -1)
    return {"views": views.permute(0, 3, 1, 2).contiguous(),
            "albedo": out["rgb"].permute(0, 3, 1, 2).contiguous(),
            "depth": out["depth"].contiguous(),
            "normal": out["normal"].permute(0, 3, 1, 2).contiguous()}


# ----------------------------------------------------------------------------- points

def surface_points(sdf_fn, n: int, gen: torch.Generator, band: float = 0.08,
                   rounds: int = 6, max_batch: int = 1 << 18) -> torch.Tensor:
    """About n points on the zero level set, spread over the whole surface (hidden parts
    too): uniform points in the band |sdf| < band, projected three times along the
    gradient (central differences), kept where |sdf| < 1e-3. Thin shapes fill little of
    the band, so each round draws as many candidates as the yield so far asks for.
    May return fewer than n (none for an empty field)."""
    from ..render.tracer import sdf_normals
    found, total, drawn = [], 0, 0
    m = 8 * n
    for _ in range(rounds):
        cand = torch.rand(m, 3, generator=gen) * 2 - 1
        drawn += m
        cand = cand[sdf_fn(cand).abs() < band]
        for _ in range(3):
            cand = cand - sdf_fn(cand)[:, None] * sdf_normals(sdf_fn, cand)
        cand = cand[sdf_fn(cand).abs() < 1e-3]          # drop the few stuck at creases
        found.append(cand)
        total += cand.shape[0]
        if total >= n:
            break
        rate = max(total, 1) / drawn
        m = int(min(max_batch, 1.3 * (n - total) / rate))
    pts = torch.cat(found)
    if pts.shape[0] > n:
        pts = pts[torch.randperm(pts.shape[0], generator=gen)[:n]]
    return pts


def sample_points(surface_sx3: torch.Tensor, n_points: int, gen: torch.Generator) -> torch.Tensor:
    """n_points//2 surface points jittered by Gaussian noise (sigma 0.005, 0.02 or 0.05,
    one per point) and the rest uniform in [-1, 1]^3."""
    half = n_points // 2
    uniform = torch.rand(n_points - half, 3, generator=gen) * 2 - 1
    if surface_sx3.shape[0] == 0:
        return torch.cat([torch.rand(half, 3, generator=gen) * 2 - 1, uniform])
    pick = torch.randint(0, surface_sx3.shape[0], (half,), generator=gen)
    sigma = torch.tensor([0.005, 0.02, 0.05])[torch.randint(0, 3, (half,), generator=gen)]
    near = surface_sx3[pick] + sigma[:, None] * torch.randn(half, 3, generator=gen)
    return torch.cat([near.clamp(-1, 1), uniform])


# ----------------------------------------------------------------------------- procedural

@torch.no_grad()
def make_example(seed: int, n_views: int = 4, res: int = 64, n_points: int = 4096,
                 category: str | None = None, n_captions: int = 4) -> dict:
    """One procedural training example (see the module docstring); deterministic."""
    with single_thread():
        return _make_example(seed, n_views, res, n_points, category, n_captions)


def _make_example(seed, n_views, res, n_points, category, n_captions) -> dict:
    from ..render.tracer import render
    from .captions import captions
    from .shapes import make_asset
    asset = make_asset(seed, category)
    c2w = example_cameras(seed, n_views)
    out = render(asset.sdf, asset.rgb, c2w, FOV_DEG, res)
    ex = _views(out)
    gen = torch.Generator().manual_seed(int(seed))
    surface = surface_points(asset.sdf, n_points // 2, gen)
    points = sample_points(surface, n_points, gen)
    caps = captions(asset, np.random.default_rng([seed, 11]), "train", n_captions)
    ex.update(c2w=c2w, points=points, sdf=asset.sdf(points), rgb=asset.rgb(points),
              has_sdf=True, captions=caps, category=asset.category_index,
              color=asset.color_index, seed=int(seed), source="procedural")
    return ex


# ----------------------------------------------------------------------------- meshes

class MeshColors:
    """Colour of a triangle mesh at (face, barycentric) hits: per-vertex colour times an
    optional texture sampled at the interpolated UV (one texture per source part)."""

    def __init__(self, faces_fx3, vertex_rgb_vx3, uv_vx2, face_texture_f, textures):
        self.faces = torch.as_tensor(faces_fx3, dtype=torch.long)
        self.vertex_rgb = torch.as_tensor(vertex_rgb_vx3, dtype=torch.float32)
        self.uv = torch.as_tensor(uv_vx2, dtype=torch.float32)
        self.face_texture = torch.as_tensor(face_texture_f, dtype=torch.long)
        self.textures = [torch.as_tensor(t, dtype=torch.float32) for t in textures]

    def __call__(self, face_k: torch.Tensor, bary_kx3: torch.Tensor) -> torch.Tensor:
        tri = self.faces[face_k]                                        # (k, 3)
        rgb = (self.vertex_rgb[tri] * bary_kx3[..., None]).sum(1)
        tex_id = self.face_texture[face_k]
        for i, tex in enumerate(self.textures):
            sel = tex_id == i
            if sel.any():
                uv = (self.uv[tri[sel]] * bary_kx3[sel][..., None]).sum(1)
                rgb[sel] = rgb[sel] * _sample_texture(tex, uv)
        return rgb.clamp(0, 1)


def _sample_texture(tex_hxwx3: torch.Tensor, uv_kx2: torch.Tensor) -> torch.Tensor:
    """Nearest texel at UV (v = 0 at the top row), repeating outside [0, 1]."""
    h, w = tex_hxwx3.shape[:2]
    uv = torch.where((uv_kx2 < 0) | (uv_kx2 > 1), torch.remainder(uv_kx2, 1.0), uv_kx2)
    u, v = uv[:, 0], uv[:, 1]
    x = (u * w).long().clamp(0, w - 1)
    y = (v * h).long().clamp(0, h - 1)
    return tex_hxwx3[y, x]


def _part_colors(geom, n_vertices: int):
    """(vertex rgb (n, 3) float, uv (n, 2) or None, texture (h, w, 3) float or None)."""
    visual = getattr(geom, "visual", None)
    white = np.ones((n_vertices, 3))
    if visual is None:
        return white * 0.8, None, None
    kind = getattr(visual, "kind", None)
    if kind == "vertex":
        return np.asarray(visual.vertex_colors, dtype=np.float64)[:, :3] / 255.0, None, None
    if kind == "face":
        return np.asarray(visual.to_color().vertex_colors, dtype=np.float64)[:, :3] / 255.0, None, None
    material = getattr(visual, "material", None)
    base = np.full(3, 0.8)
    image = None
    if material is not None:
        factor = getattr(material, "baseColorFactor", None)
        if factor is None:
            factor = getattr(material, "diffuse", None)
        if factor is not None:
            base = np.asarray(factor, dtype=np.float64).reshape(-1)[:3]
            base = base / 255.0 if base.max() > 1.0 else base
        image = getattr(material, "baseColorTexture", None)
        if image is None:
            image = getattr(material, "image", None)
    uv = getattr(visual, "uv", None)
    if image is not None and uv is not None and len(uv) == n_vertices:
        tex = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        uv = np.asarray(uv, dtype=np.float64).copy()
        uv[:, 1] = 1.0 - uv[:, 1]       # trimesh flips glTF/OBJ v on load; undo for rows
        return white * base, uv, tex
    return white * base, None, None


def load_mesh(path, up: str = "y", radius: float = 0.9):
    """A .glb/.gltf/.obj/.ply/.stl file as one triangle mesh in Kiln's object space:
    Z-up (converted from Y-up files when up="y", as glTF and most OBJ are), centred on
    its bounding box and scaled to fit the ball of `radius` (inside [-1, 1]^3).
    Returns (vertices (n, 3) float32, faces (f, 3) int64, MeshColors, watertight)."""
    try:
        import trimesh
    except ImportError as exc:  # pragma: no cover - trimesh is in requirements.txt
        raise RuntimeError("the mesh dataset needs trimesh: pip install trimesh") from exc
    loaded = trimesh.load(str(path), process=False)
    parts = loaded.dump() if isinstance(loaded, trimesh.Scene) else [loaded]
    parts = [p for p in parts if isinstance(p, trimesh.Trimesh) and len(p.faces)]
    if not parts:
        raise ValueError(f"{path}: no triangle mesh found")
    verts, faces, rgbs, uvs, face_tex, textures = [], [], [], [], [], []
    offset = 0
    for part in parts:
        v = np.asarray(part.vertices, dtype=np.float64)
        rgb, uv, tex = _part_colors(part, len(v))
        verts.append(v)
        faces.append(np.asarray(part.faces, dtype=np.int64) + offset)
        rgbs.append(rgb)
        uvs.append(uv if uv is not None else np.zeros((len(v), 2)))
        face_tex.append(np.full(len(part.faces), len(textures) if tex is not None else -1))
        if tex is not None:
            textures.append(tex)
        offset += len(v)
    v = np.concatenate(verts)
    if up == "y":
        v = v[:, [0, 2, 1]] * np.array([1.0, -1.0, 1.0])    # (x, y, z)_yup -> (x, -z, y)_zup
    elif up != "z":
        raise ValueError("up must be 'y' or 'z'")
    lo, hi = v.min(0), v.max(0)
    center = (lo + hi) / 2
    scale = radius / max(np.linalg.norm(v - center, axis=1).max(), 1e-9)
    v = (v - center) * scale
    f = np.concatenate(faces)
    welded = trimesh.Trimesh(v, f, process=True)     # seams split vertices; weld to judge
    colors = MeshColors(f, np.concatenate(rgbs), np.concatenate(uvs), np.concatenate(face_tex), textures)
    return v.astype(np.float32), f, colors, bool(welded.is_watertight)


def _pseudo_normals(mesh):
    """Angle-weighted pseudo-normals of a welded triangle mesh (Baerentzen & Aanaes 2005):
    face normals (F, 3), vertex normals (V, 3), edge normals (F, 3, 3) where [f, k] is the
    edge of face f opposite its corner k. (p - closest) . pseudo-normal has the sign of
    the SDF for any point, whichever feature (face, edge, vertex) is closest."""
    faces = np.asarray(mesh.faces)
    fn = np.asarray(mesh.face_normals, dtype=np.float64)
    vn = np.zeros((len(mesh.vertices), 3))
    for k in range(3):
        np.add.at(vn, faces[:, k], np.asarray(mesh.face_angles)[:, k:k + 1] * fn)
    vn /= np.linalg.norm(vn, axis=1, keepdims=True).clip(1e-12)
    a, b = faces[:, [1, 2, 0]], faces[:, [2, 0, 1]]                  # edge opposite corner k
    keys = np.minimum(a, b) * len(mesh.vertices) + np.maximum(a, b)  # (F, 3)
    uniq, inv = np.unique(keys.reshape(-1), return_inverse=True)
    en = np.zeros((len(uniq), 3))
    np.add.at(en, inv, np.repeat(fn, 3, axis=0))
    return fn, vn, en[inv].reshape(len(faces), 3, 3)


def mesh_sdf(vertices, faces, points_px3: torch.Tensor, colors: MeshColors | None = None,
             signed: bool = True):
    """Distance (P,) to the mesh (negative inside when `signed`, for a closed mesh) and the
    colour (P, 3) of the nearest surface point. Distance by trimesh's closest-point query;
    sign by the angle-weighted pseudo-normal of the closest feature."""
    import trimesh
    mesh = trimesh.Trimesh(np.asarray(vertices), np.asarray(faces), process=False)
    pts = points_px3.double().numpy()
    closest, dist, tri_id = trimesh.proximity.closest_point(mesh, pts)
    bary = trimesh.triangles.points_to_barycentric(mesh.triangles[tri_id], closest)
    sdf = torch.as_tensor(dist, dtype=torch.float32)
    if signed:
        welded = trimesh.Trimesh(np.asarray(vertices), np.asarray(faces), process=True)
        fn, vn, en = _pseudo_normals(welded)      # welding keeps the face order
        on = bary > 1e-5                                             # (P, 3) features used
        n = fn[tri_id].copy()
        edge = on.sum(1) == 2
        k_edge = np.argmin(bary, axis=1)
        n[edge] = en[tri_id[edge], k_edge[edge]]
        vert = on.sum(1) <= 1
        k_vert = np.argmax(bary, axis=1)
        n[vert] = vn[np.asarray(welded.faces)[tri_id[vert], k_vert[vert]]]
        outside = ((pts - closest) * n).sum(1) >= 0
        sdf = torch.where(torch.as_tensor(outside), sdf, -sdf)
    rgb = None
    if colors is not None:
        rgb = colors(torch.as_tensor(tri_id).long(), torch.as_tensor(bary, dtype=torch.float32))
    return sdf, rgb


def _mesh_captions(path: Path) -> list[str]:
    """Captions of a user mesh: lines of NAME.txt beside it, else its file name."""
    side = path.with_suffix(".txt")
    if side.exists():
        lines = [ln.strip() for ln in side.read_text().splitlines() if ln.strip()]
        if lines:
            return lines
    return [path.stem.replace("_", " ").replace("-", " ")]


@torch.no_grad()
def make_mesh_example(path, index: int = 0, n_views: int = 4, res: int = 64,
                      n_points: int = 4096, up: str = "y") -> dict:
    """A training example from a mesh file (same format as `make_example`). The SDF is
    sampled only when the mesh is watertight; otherwise sdf is NaN and has_sdf False."""
    with single_thread():
        return _make_mesh_example(Path(path), index, n_views, res, n_points, up)


def _make_mesh_example(path: Path, index, n_views, res, n_points, up) -> dict:
    from ..render.tracer import render_mesh
    from . import palette as pal
    v, f, colors, watertight = load_mesh(path, up)
    c2w = example_cameras(index, n_views)
    out = render_mesh(torch.as_tensor(v), torch.as_tensor(f), c2w, FOV_DEG, res, color_fn=colors)
    out.pop("face", None)
    ex = _views(out)
    gen = torch.Generator().manual_seed(int(index))
    import trimesh
    surf, _ = trimesh.sample.sample_surface(trimesh.Trimesh(v, f, process=False), n_points // 2,
                                            seed=int(index))
    points = sample_points(torch.as_tensor(surf, dtype=torch.float32), n_points, gen)
    sdf, rgb = mesh_sdf(v, f, points, colors, signed=watertight)
    if not watertight:
        sdf = torch.full_like(sdf, float("nan"))
    hit = out["alpha"] > 0.5
    color = pal.color_index(pal.classify_rgb(out["rgb"][hit].numpy())) if hit.any() else -1
    ex.update(c2w=c2w, points=points, sdf=sdf, rgb=rgb, has_sdf=watertight,
              captions=_mesh_captions(path), category=-1, color=color, seed=int(index),
              source=path.name)
    return ex


# ----------------------------------------------------------------------------- shards

_TENSOR_KEYS = ("albedo", "alpha", "depth", "normal", "c2w", "points", "sdf", "rgb")


def _pack(ex: dict) -> dict:
    """Compact on-disk tensors of one example (views are rebuilt on reading)."""
    alpha = ex["views"][:, 3]
    return {"albedo": (ex["albedo"].clamp(0, 1) * 255).round().to(torch.uint8),
            "alpha": (alpha.clamp(0, 1) * 255).round().to(torch.uint8),
            "depth": ex["depth"].float(), "normal": ex["normal"].half(),
            "c2w": ex["c2w"].float(), "points": ex["points"].float(),
            "sdf": ex["sdf"].float(), "rgb": ex["rgb"].half()}


def _unpack(t: dict, meta: dict) -> dict:
    from ..render.cameras import camera_rays
    albedo = t["albedo"].float() / 255
    alpha = t["alpha"].float() / 255
    res = albedo.shape[-1]
    origins, dirs = camera_rays(t["c2w"], meta.get("fov", FOV_DEG), res)
    normal = t["normal"].float()
    out = {"rgb": albedo.permute(0, 2, 3, 1), "alpha": alpha, "depth": t["depth"],
           "normal": normal.permute(0, 2, 3, 1), "rays": (origins, dirs)}
    ex = _views(out)
    ex.update(c2w=t["c2w"], points=t["points"], sdf=t["sdf"], rgb=t["rgb"].float())
    return ex


def write_shard(path, examples: list[dict]) -> Path:
    """Write examples to PATH.safetensors (tensors stacked, compact dtypes) and PATH.json
    (captions, labels, sources). Returns the .safetensors path."""
    from safetensors.torch import save_file
    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    packed = [_pack(ex) for ex in examples]
    tensors = {k: torch.stack([p[k] for p in packed]).contiguous() for k in _TENSOR_KEYS}
    save_file(tensors, str(path))
    meta = {"version": SHARD_VERSION, "fov": FOV_DEG, "count": len(examples),
            "examples": [{k: ex[k] for k in ("captions", "category", "color", "seed",
                                             "source", "has_sdf")} for ex in examples]}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    return path


def read_shard(path) -> list[dict]:
    """Examples of a shard written by `write_shard` (images quantised to 8 bits)."""
    from safetensors.torch import load_file
    path = Path(path).with_suffix(".safetensors")
    tensors = load_file(str(path))
    meta = json.loads(path.with_suffix(".json").read_text())
    out = []
    for i, info in enumerate(meta["examples"]):
        ex = _unpack({k: v[i] for k, v in tensors.items()}, meta)
        ex.update(info)
        out.append(ex)
    return out


def stack_examples(examples: list[dict]) -> dict:
    """Examples -> one dict of batched tensors (leading N) plus lists of the strings."""
    out = {}
    for key, value in examples[0].items():
        values = [ex[key] for ex in examples]
        if torch.is_tensor(value):
            out[key] = torch.stack(values)
        elif isinstance(value, (bool, int, float)):
            out[key] = torch.tensor(values)
        else:
            out[key] = values
    return out


def read_dataset(folder) -> list[dict]:
    """Every example of a dataset folder (index.json + shards), in order."""
    folder = Path(folder)
    index = json.loads((folder / "index.json").read_text())
    return [ex for shard in index["shards"] for ex in read_shard(folder / shard)]


def write_index(folder, shards: list[Path], meta: dict) -> Path:
    folder = Path(folder)
    index = dict(meta, version=SHARD_VERSION, fov=FOV_DEG,
                 shards=[Path(s).name for s in shards])
    path = folder / "index.json"
    path.write_text(json.dumps(index, indent=1) + "\n")
    return path


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
