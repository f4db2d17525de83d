"""A result as 3D Gaussian splats (the representation of 3DGS-LDM): flat Gaussians on the
surface, oriented along it and sized to cover it (numpy; the field is queried in torch).

    splats = splats_from_mesh(mesh, rgb_fn=rgb_fn, sdf_fn=sdf_fn)   # the pipeline's field
    splats = splats_from_mesh(mesh)                                 # the mesh's own colours

The derivation, in one pass:
- `count` points on the mesh: faces picked by area (surface.sample_surface, `even`:
  systematic draws, so each face gets its share to within one), the points inside a
  face spread by a low-discrepancy sequence from its centroid (`spread_in_faces`), so
  the splats neither clump nor leave gaps;
- colour: `rgb_fn` (the field's colour head) at that point, pulled first onto the
  field's own zero level along its face normal when `sdf_fn` is given (never further
  than SNAP_LIMIT mean spacings: texture.snap_to_surface, as the texture bake reads the
  field), else the mesh's texture or vertex colours there, else grey. The splats stay
  on the mesh, so they and the GLB show one surface;
- orientation: the Gaussian's z axis along the face normal (the quaternion turning +z onto
  it), its x and y axes in the tangent plane;
- size: with N points on an area A, the mean spacing is h = sqrt(A / N); both tangent
  standard deviations are TANGENT_SIGMA * h, so neighbours overlap and the surface is
  covered without holes, and the normal one is THIN * h (a flat disc, no thickness);
- opacity OPACITY: nearly opaque, so a few overlapping splats hide what is behind them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_SPLATS = 65536      # 2^16: thin parts keep their edges (a chair in about 0.2 s)
TANGENT_SIGMA = 0.6         # tangent standard deviation, in units of the mean spacing h
THIN = 0.1                  # the normal standard deviation, in units of h
OPACITY = 0.95
SNAP_LIMIT = 2.0            # a colour query moves at most this many spacings off the mesh
GREY = 0.8                  # the colour of a mesh without colours
R2 = (0.7548776662466927, 0.5698402909980532)   # the plastic number's R2 sequence steps


@dataclass
class Splats:
    means_nx3: np.ndarray           # float32, object space (Z up, as Mesh)
    normals_nx3: np.ndarray         # float32, unit, outward
    colors_nx3: np.ndarray          # float32 in [0, 1], linear as the field gives it
    opacities_n: np.ndarray         # float32 in (0, 1)
    scales_nx3: np.ndarray          # float32 standard deviations along the local axes
    rotations_nx4: np.ndarray       # float32 unit quaternions (w, x, y, z): local -> object

    @property
    def num_splats(self) -> int:
        return int(self.means_nx3.shape[0])

    def tensors(self, device="cpu") -> dict:
        """The arrays as float32 torch tensors on `device`, named as
        render.splats.render_splats takes them."""
        import torch
        as_t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32,  # noqa: E731
                                         device=device)
        return {"means_nx3": as_t(self.means_nx3), "scales_nx3": as_t(self.scales_nx3),
                "quats_nx4": as_t(self.rotations_nx4), "colors_nx3": as_t(self.colors_nx3),
                "opacities_n": as_t(self.opacities_n)}


def z_to(normals_nx3: np.ndarray) -> np.ndarray:
    """Unit quaternions (n, 4) as (w, x, y, z) turning +z onto each unit normal by the
    shortest arc: (1 + n_z, -n_y, n_x, 0) normalised; a half turn about x for n = -z."""
    n = np.asarray(normals_nx3, dtype=np.float64)
    q = np.stack([1.0 + n[:, 2], -n[:, 1], n[:, 0], np.zeros(len(n))], axis=1)
    norm = np.linalg.norm(q, axis=1, keepdims=True)
    down = norm[:, 0] < 1e-6
    q[down] = (0.0, 1.0, 0.0, 0.0)
    norm[down] = 1.0
    return (q / norm).astype(np.float32)


def spread_in_faces(face_n: np.ndarray) -> np.ndarray:
    """Barycentric weights (n, 3) for points on the faces `face_n`, spread evenly within
    each face: a face's j-th point is the j-th of the R2 low-discrepancy sequence (Roberts
    2018) mapped onto the triangle (r = sqrt(u): uniform by area), starting at the
    centroid, so a face with one point has it in the middle and points never clump."""
    order = np.argsort(face_n, kind="stable")
    sorted_f = face_n[order]
    first = np.r_[True, sorted_f[1:] != sorted_f[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(len(face_n)), 0))
    rank = np.empty(len(face_n), np.int64)
    rank[order] = np.arange(len(face_n)) - start
    u = (4.0 / 9.0 + rank * R2[0]) % 1.0                # rank 0: the centroid
    v = (0.5 + rank * R2[1]) % 1.0
    r = np.sqrt(u)
    return np.stack([1.0 - r, r * (1.0 - v), r * v], axis=1)


def splats_from_mesh(mesh, count: int = DEFAULT_SPLATS, rgb_fn=None, sdf_fn=None,
                     seed: int = 0, tick=None) -> Splats:
    """`count` Gaussian splats covering `mesh` (see the module docstring). rgb_fn and
    sdf_fn take and return torch tensors (points (K, 3) -> (K, 3) / (K,)), as the
    pipeline's field_fns; tick() is called between pieces of work (it may raise to
    stop). ValueError for a mesh without area."""
    from .surface import mesh_colors, sample_surface
    from .texture import snap_to_surface
    tick = tick or (lambda: None)
    count = int(count)
    if count < 1:
        raise ValueError(f"a splat result needs at least one splat, not {count}")
    sample = sample_surface(mesh, count, seed, even=True)   # ValueError without area
    spacing = float(np.sqrt(mesh.area() / count))
    bary = spread_in_faces(sample.face_n)
    corners = mesh.vertices_nx3[mesh.faces_fx3[sample.face_n]].astype(np.float64)
    points = np.einsum("nk,nkd->nd", bary, corners).astype(np.float32)
    tick()
    if rgb_fn is not None:
        import torch
        query = points
        if sdf_fn is not None:
            snapped = snap_to_surface(points, sample.normals_nx3, sdf_fn,
                                      max_step=SNAP_LIMIT * spacing, tick=tick)
            query = np.where(np.isfinite(snapped), snapped, points).astype(np.float32)
        with torch.inference_mode():
            colors = rgb_fn(torch.from_numpy(query)).float().cpu().numpy().reshape(-1, 3)
    else:
        colors = mesh_colors(mesh, sample.face_n, bary)
        colors = np.full((count, 3), GREY) if colors is None else colors
    tick()
    tangent, thin = TANGENT_SIGMA * spacing, THIN * spacing
    return Splats(means_nx3=points.astype(np.float32),
                  normals_nx3=sample.normals_nx3.astype(np.float32),
                  colors_nx3=np.clip(colors, 0.0, 1.0).astype(np.float32),
                  opacities_n=np.full(count, OPACITY, np.float32),
                  scales_nx3=np.tile(np.float32([tangent, tangent, thin]), (count, 1)),
                  rotations_nx4=z_to(sample.normals_nx3))
