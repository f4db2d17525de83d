"""FlexiCubes benchmark: extraction speed and mesh quality against PyMCubes on analytic SDFs.

`bench_flexicubes()` returns a dict of figures (no printing); `python -m
engine.geometry.bench_flexicubes` prints it as JSON. The analytic shapes and the quality metrics
(Chamfer-L1 to the true surface, normal consistency) are public so tests can use them.

Metrics (both directions, on `samples` points each way):
- mesh -> surface: area-uniform points on the mesh, distance |sdf(p)| (the shapes' SDFs are exact);
- surface -> mesh: points on the true surface (band samples projected along the SDF gradient),
  exact point-to-triangle distance to the mesh (nearest of the 16 triangles with the nearest
  centroids);
- chamfer_l1 = mean of the two mean distances; normal consistency = mean of the two mean
  *oriented* cosines between the face normal and the true normal (a flipped face counts -1).
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Callable

import numpy as np
import torch

from .flexicubes import FlexiCubes, extract_flexicubes, sample_sdf_grid, sdf_normal_fn

SdfFn = Callable[[torch.Tensor], torch.Tensor]

# ---------------------------------------------------------------- analytic shapes (exact SDFs)

_OFF = torch.tensor([0.013, -0.021, 0.007])          # keep surfaces off the grid lines


def sphere(p: torch.Tensor) -> torch.Tensor:
    return (p - _OFF.to(p)).norm(dim=-1) - 0.6


def torus(p: torch.Tensor) -> torch.Tensor:
    q = p - _OFF.to(p)
    ring = torch.sqrt(q[:, 0] ** 2 + q[:, 1] ** 2 + 1e-20) - 0.55
    return torch.sqrt(ring ** 2 + q[:, 2] ** 2 + 1e-20) - 0.22


def _box(p: torch.Tensor, center, half) -> torch.Tensor:
    q = (p - torch.tensor(center).to(p)).abs() - torch.tensor(half).to(p)
    outside = q.clamp_min(0).norm(dim=-1)
    return outside + q.max(dim=-1).values.clamp_max(0)


def box(p: torch.Tensor) -> torch.Tensor:
    return _box(p, (0.011, -0.017, 0.023), (0.5, 0.4, 0.3))


def thin_plate(p: torch.Tensor) -> torch.Tensor:
    return _box(p, (0.01, -0.013, 0.009), (0.6, 0.5, 0.035))


def touching_spheres(p: torch.Tensor) -> torch.Tensor:
    """Two spheres of radius 0.35 touching at one point (0, 0.011, -0.007)."""
    mid = torch.tensor([0.0, 0.011, -0.007]).to(p)
    shift = torch.tensor([0.35, 0.0, 0.0]).to(p)
    a = (p - mid - shift).norm(dim=-1) - 0.35
    b = (p - mid + shift).norm(dim=-1) - 0.35
    return torch.minimum(a, b)


SHAPES: dict[str, SdfFn] = {
    "sphere": sphere, "torus": torus, "box": box, "thin_plate": thin_plate,
    "touching_spheres": touching_spheres,
}

# ---------------------------------------------------------------- baselines


def marching_cubes_baseline(grid_rrr: torch.Tensor, bound: float = 1.0,
                            ) -> tuple[np.ndarray, np.ndarray]:
    """PyMCubes on the same (res+1)^3 grid -> (verts, faces) with outward (CCW) faces."""
    try:
        import mcubes
    except ImportError as exc:  # pragma: no cover
        raise ImportError("The marching-cubes baseline needs PyMCubes: "
                          "pip install PyMCubes") from exc
    g = grid_rrr.detach().cpu().double().numpy()
    res = g.shape[0] - 1
    v, f = mcubes.marching_cubes(-g, 0.0)              # mcubes: faces outward for positive inside
    return (v * (2.0 * bound / res) - bound).astype(np.float32), f.astype(np.int32)


def flexicubes_mesh(grid_rrr: torch.Tensor, bound: float = 1.0, sdf_fn: SdfFn | None = None,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """FlexiCubes with neutral weights on the grid; with sdf_fn, the sharp (Hermite QEF) placement
    exactly as `extract_flexicubes` does it."""
    res = grid_rrr.shape[0] - 1
    x_nx3 = FlexiCubes.grid_vertices(res, bound, device=grid_rrr.device)
    normal_fn = sdf_normal_fn(sdf_fn, 0.05 * 2.0 * bound / res) if sdf_fn is not None else None
    with torch.no_grad():
        v, f, _ = FlexiCubes().extract(x_nx3, grid_rrr.reshape(-1), None, res, normal_fn=normal_fn)
    return v.cpu().numpy().astype(np.float32), f.cpu().numpy().astype(np.int32)


# ---------------------------------------------------------------- mesh checks and metrics


def edge_manifold_report(faces_fx3: np.ndarray) -> dict:
    """Watertight + edge-manifold + consistently oriented <=> every directed edge appears once and
    its reverse appears once (so each undirected edge is in exactly two faces)."""
    f = np.asarray(faces_fx3, dtype=np.int64)
    degenerate = int(((f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 0] == f[:, 2])).sum())
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    n = int(f.max()) + 1 if f.size else 1
    directed = e[:, 0] * n + e[:, 1]
    uniq, counts = np.unique(directed, return_counts=True)
    reverse_missing = int((~np.isin(e[:, 1] * n + e[:, 0], uniq)).sum())
    und = np.minimum(e[:, 0], e[:, 1]) * n + np.maximum(e[:, 0], e[:, 1])
    _, und_counts = np.unique(und, return_counts=True)
    return {
        "faces": int(len(f)),
        "degenerate_faces": degenerate,
        "repeated_directed_edges": int((counts > 1).sum()),
        "boundary_or_flipped_edges": reverse_missing,
        "edges_not_in_two_faces": int((und_counts != 2).sum()),
        "ok": bool(len(f) > 0 and degenerate == 0 and (counts == 1).all() and reverse_missing == 0
                   and (und_counts == 2).all()),
    }


def _sdf_and_normal(sdf_fn: SdfFn, p_nx3: np.ndarray, step: float = 1e-6):
    """SDF and unit normal (central differences in float64; exact for these piecewise SDFs away
    from their kinks, where autograd of max/clamp would give zero)."""
    p = torch.from_numpy(np.asarray(p_nx3, dtype=np.float64))
    with torch.no_grad():
        s = sdf_fn(p)
        g = torch.stack([sdf_fn(p + step * e) - sdf_fn(p - step * e)
                         for e in torch.eye(3, dtype=p.dtype)], 1)
    g = g / g.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    return s.numpy(), g.numpy()


def surface_samples(sdf_fn: SdfFn, n: int, bound: float = 1.0, seed: int = 0,
                    band: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """~uniform points on the zero level set and their unit normals, (n, 3) each: uniform points
    in the band |sdf| < band, projected along the gradient (exact SDFs: one step suffices)."""
    rng = np.random.default_rng(seed)
    pts = []
    total = 0
    while total < n:
        p = rng.uniform(-bound, bound, size=(200_000, 3))
        with torch.no_grad():
            s = sdf_fn(torch.from_numpy(p)).numpy()
        p = p[np.abs(s) < band]
        for _ in range(2):
            s, g = _sdf_and_normal(sdf_fn, p)
            p = p - s[:, None] * g
        with torch.no_grad():
            s = sdf_fn(torch.from_numpy(p)).numpy()
        p = p[np.abs(s) < 1e-7]
        pts.append(p)
        total += len(p)
    p = np.concatenate(pts)[:n]
    return p, _sdf_and_normal(sdf_fn, p)[1]


def mesh_samples(verts: np.ndarray, faces: np.ndarray, n: int, seed: int = 0):
    """Area-uniform points on the mesh, with their face's unit normal and face id."""
    rng = np.random.default_rng(seed)
    v = verts.astype(np.float64)[faces]                                      # (F, 3, 3)
    cross = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    area = np.linalg.norm(cross, axis=1)
    fid = rng.choice(len(faces), size=n, p=area / area.sum())
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)
    bary = np.stack([1 - s, s * (1 - r2), s * r2], 1)
    pts = (v[fid] * bary[:, :, None]).sum(1)
    normals = cross[fid] / np.maximum(area[fid], 1e-30)[:, None]
    return pts, normals, fid


def _point_triangle_distance(p, a, b, c):
    """Exact distance from points p (..., 3) to triangles (a, b, c) (..., 3)."""
    ab, ac = b - a, c - a
    n = np.cross(ab, ac)
    nn = (n * n).sum(-1)
    safe = np.maximum(nn, 1e-30)
    ap = p - a
    # barycentric coordinates of the projection
    w_b = (np.cross(ap, ac) * n).sum(-1) / safe
    w_c = (np.cross(ab, ap) * n).sum(-1) / safe
    inside = (w_b >= 0) & (w_c >= 0) & (w_b + w_c <= 1) & (nn > 1e-30)
    plane = np.abs((ap * n).sum(-1)) / np.sqrt(safe)

    def seg(p, s0, s1):
        d = s1 - s0
        t = np.clip(((p - s0) * d).sum(-1) / np.maximum((d * d).sum(-1), 1e-30), 0, 1)
        return np.linalg.norm(p - (s0 + t[..., None] * d), axis=-1)

    edge = np.minimum(np.minimum(seg(p, a, b), seg(p, b, c)), seg(p, c, a))
    return np.where(inside, plane, edge)


def mesh_quality(verts: np.ndarray, faces: np.ndarray, sdf_fn: SdfFn, samples: int = 20000,
                 seed: int = 0, surface: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """Chamfer-L1 and normal consistency of a mesh against the exact surface of sdf_fn."""
    from scipy.spatial import cKDTree

    pm, nm, _ = mesh_samples(verts, faces, samples, seed)
    s, g = _sdf_and_normal(sdf_fn, pm)
    to_surface = np.abs(s)
    cos_mesh = (nm * g).sum(1)

    ps, ns = surface if surface is not None else surface_samples(sdf_fn, samples, seed=seed)
    v = verts.astype(np.float64)
    tri = v[faces]                                                           # (F, 3, 3)
    k = min(16, len(faces))
    _, cand = cKDTree(tri.mean(1)).query(ps, k=k)
    cand = cand.reshape(len(ps), k)
    d = _point_triangle_distance(ps[:, None], tri[cand, 0], tri[cand, 1], tri[cand, 2])
    best = cand[np.arange(len(ps)), d.argmin(1)]
    to_mesh = d.min(1)
    fn = np.cross(tri[best, 1] - tri[best, 0], tri[best, 2] - tri[best, 0])
    fn /= np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-30)
    cos_surf = (fn * ns).sum(1)
    return {
        "chamfer_l1": float(0.5 * (to_surface.mean() + to_mesh.mean())),
        "normal_consistency": float(0.5 * (cos_mesh.mean() + cos_surf.mean())),
        "mesh_to_surface": float(to_surface.mean()),
        "surface_to_mesh": float(to_mesh.mean()),
    }


# ---------------------------------------------------------------- benchmark


def _median_time(fn, repeats: int) -> float:
    fn()                                                                     # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def speed(resolutions=(64, 128, 256), repeats: int = 7, device: str = "cpu",
          training: bool = False, sharp: bool = False) -> dict:
    """Median seconds of `FlexiCubes.extract` on the torus SDF grid (SDF values given; with
    `sharp`, plus the Hermite normals from central differences of the analytic torus)."""
    out = {}
    fc = FlexiCubes()
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    for res in resolutions:
        x_nx3 = FlexiCubes.grid_vertices(res, device=device)
        sdf_n = torus(x_nx3)
        normal_fn = sdf_normal_fn(torus, 0.1 / res) if sharp else None

        def run():
            with torch.no_grad():
                fc.extract(x_nx3, sdf_n, None, res, training=training, normal_fn=normal_fn)
            sync()
        out[res] = _median_time(run, repeats if res <= 128 else max(3, repeats // 2))
    return out


def end_to_end(resolutions=(64, 128), repeats: int = 5, device: str = "cpu") -> dict:
    """Median seconds of `extract_flexicubes(torus, res)`: grid sampling (coarse to fine),
    extraction and Hermite normals, to numpy."""
    return {res: _median_time(lambda: extract_flexicubes(torus, res, device=device), repeats)
            for res in resolutions}


METHODS = ("flexicubes", "flexicubes_mean", "mcubes")


def quality(resolutions=(32, 64, 128), shapes=None, samples: int = 20000) -> dict:
    """{shape: {res: {method: metrics}}} on the same dense SDF grid. Methods: "flexicubes" (what
    `extract_flexicubes` gives: Hermite QEF placement), "flexicubes_mean" (the paper's
    neutral-weight placement, no normals) and "mcubes" (PyMCubes)."""
    out = {}
    for name in shapes or SHAPES:
        fn = SHAPES[name]
        surf = surface_samples(fn, samples, seed=1)
        out[name] = {}
        for res in resolutions:
            grid = sample_sdf_grid(fn, res, levels=0)
            meshers = {"flexicubes": lambda g: flexicubes_mesh(g, sdf_fn=fn),
                       "flexicubes_mean": flexicubes_mesh, "mcubes": marching_cubes_baseline}
            row = {}
            for method, mesher in meshers.items():
                v, f = mesher(grid)
                row[method] = mesh_quality(v, f, fn, samples, surface=surf)
                row[method]["watertight_manifold"] = edge_manifold_report(f)["ok"]
                row[method]["faces"] = int(len(f))
            out[name][res] = row
    return out


def bench_flexicubes(resolutions=(64, 128, 256), quality_resolutions=(32, 64, 128),
                     threads: int | None = 2, repeats: int = 7, device: str = "cpu") -> dict:
    """Speed (median seconds, torus SDF given, neutral weights) and quality figures."""
    if threads:
        torch.set_num_threads(threads)
    return {
        "device": device,
        "threads": torch.get_num_threads(),
        "extract_seconds_median": speed(resolutions, repeats, device),
        "extract_training_seconds_median": speed(resolutions, repeats, device, training=True),
        "extract_sharp_seconds_median": speed(resolutions, repeats, device, sharp=True),
        "extract_flexicubes_end_to_end_seconds_median": end_to_end(
            tuple(r for r in resolutions if r <= 128), max(3, repeats // 2), device),
        "quality": quality(quality_resolutions) if quality_resolutions else {},
    }


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(bench_flexicubes(), indent=1))
