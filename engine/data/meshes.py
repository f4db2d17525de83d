"""A user's mesh files as training assets: loading, colour, and a signed distance for
meshes that are not watertight.

- `load_mesh`: .glb/.gltf/.obj/.ply/.stl/.off (trimesh) -> one triangle mesh in Kiln's
  object space: rotated so the file's up axis becomes +Z, centred on its bounding box,
  scaled into the ball of radius 0.9; the factor and centre are kept. Colour from
  textures (UV), vertex or face colours, or the material's base colour.
- `MeshField`: distance, inside/outside and colour at any point. The sign comes from the
  generalised winding number (Jacobson et al. 2013): the solid angle the surface subtends,
  over 4 pi; inside where |w| > 1/2. It is exact for closed meshes and degrades
  gracefully for open ones (holes, separate overlapping parts), which is what most art
  meshes are. Far groups of triangles count as one dipole (Barill et al. 2018), so the
  cost grows with the triangles near a point, not with all of them. The distance is
  exact: the nearest triangle among those of the nearest dense surface samples.
- `library_captions`: captions (and categories) of the files of a folder.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import FIT_RADIUS, UP_ROTATIONS
from ..geometry.surface import area_samples

MESH_SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl", ".off")
MAX_SDF_FACES = 60_000          # larger meshes are decimated for the distance and sign only


# ----------------------------------------------------------------------------- colour

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
    x = (uv[:, 0] * w).long().clamp(0, w - 1)
    y = (uv[:, 1] * h).long().clamp(0, h - 1)
    return tex_hxwx3[y, x]


def _base_color(material) -> np.ndarray:
    """A material's base colour (3,) in [0, 1] (glTF PBR or OBJ diffuse), grey when none."""
    factor = getattr(material, "baseColorFactor", None)
    if factor is None:
        factor = getattr(material, "diffuse", None)
    if factor is None:
        return np.full(3, 0.8)
    base = np.asarray(factor, dtype=np.float64).reshape(-1)[:3]
    return base / 255.0 if base.max() > 1.0 else base


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
    if material is None:
        return white * 0.8, None, None
    base = _base_color(material)
    image = getattr(material, "baseColorTexture", None)
    if image is None:
        image = getattr(material, "image", None)
    uv = getattr(visual, "uv", None)
    if image is not None and uv is not None and len(uv) == n_vertices:
        tex = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        uv = np.asarray(uv, dtype=np.float64).copy()
        uv[:, 1] = 1.0 - uv[:, 1]       # trimesh flips glTF/OBJ v on load; undo for rows
        if getattr(material, "baseColorFactor", None) is None:
            base = np.ones(3)           # OBJ: map_Kd replaces Kd (as Blender imports it)
        return white * base, uv, tex
    return white * base, None, None


# ----------------------------------------------------------------------------- loading

@dataclass
class LoadedMesh:
    vertices_nx3: np.ndarray        # float32, Kiln object space (Z-up, inside the 0.9 ball)
    faces_fx3: np.ndarray           # int64
    colors: MeshColors
    watertight: bool                # closed and consistently oriented (after welding)
    scale: float                    # Kiln units per file unit
    center: list                    # the file's bounding-box centre (file units, file axes)


def _parts(path: Path):
    import trimesh
    try:
        loaded = trimesh.load(str(path), process=False)
    except Exception as exc:  # parsers raise all kinds on a damaged file
        raise ValueError(f"not a readable {path.suffix} file ({type(exc).__name__}: "
                         f"{str(exc)[:160]}); re-export it from your 3D tool") from exc
    parts = loaded.dump() if isinstance(loaded, trimesh.Scene) else [loaded]
    parts = [p for p in parts if isinstance(p, trimesh.Trimesh) and len(p.faces)]
    if not parts:
        raise ValueError("no triangles in the file (an empty scene, points or lines only)")
    return parts


def load_mesh(path, up: str = "y", radius: float | None = FIT_RADIUS) -> LoadedMesh:
    """A mesh file as one triangle mesh in Kiln's object space (see the module docstring;
    radius None: the file is in Kiln's object space already, kept as it is). Raises
    ValueError naming the problem for files that hold no usable triangles."""
    try:
        import trimesh
    except ImportError as exc:  # pragma: no cover - trimesh is in requirements.txt
        raise RuntimeError("the mesh dataset needs trimesh: pip install trimesh") from exc
    if up not in UP_ROTATIONS:
        raise ValueError(f"up axis {up!r}: use one of {', '.join(UP_ROTATIONS)}")
    verts, faces, rgbs, uvs, face_tex, textures, offset = [], [], [], [], [], [], 0
    for part in _parts(Path(path)):
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
    v, f = np.concatenate(verts), np.concatenate(faces)
    if not np.isfinite(v).all():
        raise ValueError("vertex positions are not finite numbers (NaN or infinity)")
    lo, hi = v.min(0), v.max(0)
    center = (lo + hi) / 2
    reach = np.linalg.norm(v - center, axis=1).max()
    if reach < 1e-9:
        raise ValueError("every vertex is at one point (the mesh has no size)")
    if radius is None:
        center, scale = np.zeros(3), 1.0
    else:
        scale = radius / reach
    v = ((v - center) * scale) @ np.asarray(UP_ROTATIONS[up], dtype=np.float64).T
    welded = trimesh.Trimesh(v, f, process=True)     # seams split vertices; weld to judge
    colors = MeshColors(f, np.concatenate(rgbs), np.concatenate(uvs), np.concatenate(face_tex),
                        textures)
    return LoadedMesh(v.astype(np.float32), f, colors, bool(welded.is_watertight),
                      float(scale), [float(c) for c in center])


# ----------------------------------------------------------------------------- winding numbers

def solid_angles(tri_kx3x3: torch.Tensor, p_kx3: torch.Tensor) -> torch.Tensor:
    """Signed solid angle of triangles seen from points, broadcast over leading dims:
    tri (..., 3, 3), p (..., 3) -> (...) (Van Oosterom and Strackee)."""
    x = tri_kx3x3 - p_kx3[..., None, :]
    a, b, c = x[..., 0, :], x[..., 1, :], x[..., 2, :]
    la, lb, lc = a.norm(dim=-1), b.norm(dim=-1), c.norm(dim=-1)
    num = (a * torch.cross(b, c, dim=-1)).sum(-1)
    den = la * lb * lc + (a * b).sum(-1) * lc + (b * c).sum(-1) * la + (c * a).sum(-1) * lb
    return 2.0 * torch.atan2(num, den)


class WindingNumber:
    """w(p) of a triangle soup (F, 3, 3): triangles in groups of `leaf` (Morton order);
    a group farther than `beta` times its radius counts as one dipole."""

    def __init__(self, tri_fx3x3: torch.Tensor, leaf: int = 8, beta: float = 2.0):
        tri = tri_fx3x3.double()
        centroid = tri.mean(1)                                               # (F, 3)
        order = torch.argsort(_morton(centroid))
        pad = (-len(tri)) % leaf
        tri = torch.cat([tri[order], tri[order[-1:]].mean(1, keepdim=True).expand(pad, 3, 3)])
        self.groups = tri.view(-1, leaf, 3, 3)                              # (G, leaf, 3, 3)
        area_vec = 0.5 * torch.cross(self.groups[:, :, 1] - self.groups[:, :, 0],
                                     self.groups[:, :, 2] - self.groups[:, :, 0], dim=-1)
        area = area_vec.norm(dim=-1)                                         # (G, leaf)
        mid = self.groups.mean(2)
        weight = area.sum(1, keepdim=True).clamp(min=1e-20)
        self.center = (mid * area[..., None]).sum(1) / weight                # (G, 3)
        self.dipole = area_vec.sum(1)                                        # (G, 3)
        self.radius = (self.groups - self.center[:, None, None]).norm(dim=-1).flatten(1).max(1).values
        self.beta = beta

    def __call__(self, points_px3: torch.Tensor, pair_chunk: int = 16384) -> torch.Tensor:
        """(P,) winding numbers at points (P, 3)."""
        chunk = max(64, (1 << 21) // len(self.groups))          # (chunk, G, 3) stays small
        out = []
        for a in range(0, len(points_px3), chunk):
            out.append(self._chunk(points_px3[a:a + chunk].double(), pair_chunk))
        return torch.cat(out).float() if out else points_px3.new_zeros(0)

    def _chunk(self, p_px3: torch.Tensor, pair_chunk: int) -> torch.Tensor:
        rel = self.center[None] - p_px3[:, None]                             # (P, G, 3)
        dist = rel.norm(dim=-1)
        far = dist > self.beta * self.radius[None]
        far_term = (rel * self.dipole[None]).sum(-1) / dist.clamp(min=1e-12) ** 3
        omega = torch.where(far, far_term, torch.zeros_like(far_term)).sum(1)
        pi, gi = (~far).nonzero(as_tuple=True)
        for a in range(0, len(pi), pair_chunk):
            i, g = pi[a:a + pair_chunk], gi[a:a + pair_chunk]
            exact = solid_angles(self.groups[g], p_px3[i][:, None]).sum(1)   # (k,)
            omega = omega.index_add(0, i, exact)
        return omega / (4 * math.pi)


def _morton(points_nx3: torch.Tensor, bits: int = 10) -> torch.Tensor:
    """Morton (Z-order) codes of points in their bounding box (int64)."""
    lo, hi = points_nx3.min(0).values, points_nx3.max(0).values
    q = ((points_nx3 - lo) / (hi - lo).clamp(min=1e-12) * (2 ** bits - 1)).long()
    code = torch.zeros(len(points_nx3), dtype=torch.long)
    for bit in range(bits):
        for axis in range(3):
            code |= ((q[:, axis] >> bit) & 1) << (3 * bit + axis)
    return code


# ----------------------------------------------------------------------------- the field

class MeshField:
    """Signed distance (negative inside) and colour of a loaded mesh at any point."""

    def __init__(self, mesh: LoadedMesh, seed: int = 0, candidates: int = 8):
        self.mesh, self.candidates = mesh, candidates
        v, f = _for_distance(mesh.vertices_nx3, mesh.faces_fx3)
        self.decimated = len(f) != len(mesh.faces_fx3)
        self.winding = WindingNumber(torch.from_numpy(v[f]))
        self.geometry = _NearestTriangle(v, f, np.random.default_rng([seed, 5]), candidates)
        self.full = (_NearestTriangle(mesh.vertices_nx3, mesh.faces_fx3,
                                      np.random.default_rng([seed, 6]), 1)
                     if self.decimated else self.geometry)

    def inside(self, points_px3: torch.Tensor) -> torch.Tensor:
        """(P,) bool: |winding number| > 1/2."""
        return self.winding(points_px3).abs() > 0.5

    def __call__(self, points_px3: torch.Tensor):
        """sdf (P,) and rgb (P, 3) at points (P, 3)."""
        dist, closest, face = self.geometry(points_px3.double().numpy())
        sdf = torch.as_tensor(dist, dtype=torch.float32)
        sdf = torch.where(self.inside(points_px3), -sdf, sdf)
        if self.decimated:             # colours live on the full-resolution mesh
            _, closest, face = self.full(closest)
        return sdf, self.color_at(closest, face)

    def color_at(self, surface_px3: np.ndarray, face_p: np.ndarray) -> torch.Tensor:
        """Colour (P, 3) of the mesh at points on (or next to) faces face_p."""
        import trimesh
        tri = self.full.tri[face_p]
        bary = trimesh.triangles.points_to_barycentric(tri, surface_px3)
        bary = np.clip(np.nan_to_num(bary, nan=1 / 3), 0, 1)
        bary = bary / bary.sum(1, keepdims=True).clip(1e-12)
        return self.mesh.colors(torch.as_tensor(face_p).long(),
                                torch.as_tensor(bary, dtype=torch.float32))

    def surface_bank(self, n: int, rng: np.random.Generator, eps: float = 0.005):
        """n area-uniform surface points (n, 3) and unit normals (n, 3) pointing outside
        (flipped where a step of eps along the face normal lands inside)."""
        pts, _, _, nrm = area_samples(self.mesh.vertices_nx3, self.mesh.faces_fx3, n, rng)
        p, nm = torch.from_numpy(pts), torch.from_numpy(nrm)
        nm = torch.where(self.inside(p + eps * nm)[:, None], -nm, nm)
        return p.float(), nm.float()


class _NearestTriangle:
    """Exact closest point on a triangle mesh: the nearest among the triangles of the k
    nearest of many area-uniform surface samples (a k-d tree over them)."""

    def __init__(self, v: np.ndarray, f: np.ndarray, rng: np.random.Generator, k: int):
        from scipy.spatial import cKDTree
        self.tri, self.k = v[f].astype(np.float64), k                       # (F, 3, 3)
        n = int(np.clip(16 * len(f), 20_000, 300_000))
        dense, self.dense_face, _, _ = area_samples(v, f, n, rng)
        self.tree = cKDTree(dense)

    def __call__(self, points_px3: np.ndarray):
        """-> distance (P,), closest points (P, 3), their faces (P,)."""
        import trimesh
        _, near = self.tree.query(points_px3, k=self.k)
        cand = self.dense_face[near.reshape(len(points_px3), self.k)]          # (P, k)
        pts = np.repeat(points_px3, self.k, axis=0)
        closest = trimesh.triangles.closest_point(self.tri[cand.reshape(-1)], pts)
        d = np.linalg.norm(closest - pts, axis=1).reshape(-1, self.k)
        best = d.argmin(1)
        rows = np.arange(len(points_px3))
        return d[rows, best], closest.reshape(-1, self.k, 3)[rows, best], cand[rows, best]


def _for_distance(v: np.ndarray, f: np.ndarray):
    """The mesh itself, or a decimated copy when it has more than MAX_SDF_FACES faces."""
    if len(f) <= MAX_SDF_FACES:
        return v, f
    import fast_simplification
    dv, df = fast_simplification.simplify(v.astype(np.float32), f.astype(np.int32),
                                          target_reduction=1 - MAX_SDF_FACES / len(f))
    return np.asarray(dv, np.float32), np.asarray(df, np.int64)


# ----------------------------------------------------------------------------- captions

def name_caption(path: Path) -> str:
    """A caption from a file name: 'red_dumbbell-07.glb' -> 'red dumbbell'."""
    words = re.sub(r"[_\-.]+", " ", path.stem)
    words = re.sub(r"(\s*\d+)+$", "", words).strip()
    return words or path.stem


def read_captions_csv(path: Path) -> dict[str, dict]:
    """captions.csv rows (file, caption[, category]; a header row is optional) ->
    {file: {"captions": [...], "category": str | None}}; several rows may name one file."""
    out: dict[str, dict] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.reader(f)):
            row = [c.strip() for c in row]
            if not row or not row[0] or row[0].startswith("#"):
                continue
            if n == 0 and row[0].lower() in ("file", "filename", "path", "name"):
                continue
            if len(row) < 2 or not row[1]:
                raise ValueError(f"{path}, row {n + 1}: expected 'file,caption[,category]', "
                                 f"got {','.join(row)!r}")
            entry = out.setdefault(row[0].replace("\\", "/"), {"captions": [], "category": None})
            entry["captions"].append(row[1])
            if len(row) > 2 and row[2]:
                entry["category"] = row[2]
    return out


def library_files(folder: Path) -> list[Path]:
    """Mesh files under folder (sub-folders too), in a stable order."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in MESH_SUFFIXES)


def asset_text(path: Path, folder: Path, table: dict[str, dict]) -> tuple[list[str], str | None]:
    """(captions, category or None) of one library file: captions.csv rows (by path
    relative to the folder, or by file name), else the lines of NAME.txt beside it, else
    its file name."""
    rel = path.relative_to(folder).as_posix()
    entry = table.get(rel) or table.get(path.name)
    category = entry["category"] if entry else None
    if entry and entry["captions"]:
        return entry["captions"], category
    side = path.with_suffix(".txt")
    if side.is_file():
        lines = [ln.strip() for ln in side.read_text(encoding="utf-8").splitlines() if ln.strip()]
        if lines:
            return lines, category
    return [name_caption(path)], category
