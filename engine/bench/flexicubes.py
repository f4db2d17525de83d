"""FlexiCubes benchmark: extraction speed and mesh quality against PyMCubes on analytic SDFs.

`bench_flexicubes()` returns a dict of figures (no printing); `python -m
engine.bench.flexicubes` prints it as JSON. The shapes are engine.bench.shapes.SHAPES (exact
SDFs); the quality figures are engine.evaluation.metrics.exact_surface_quality against
the true surface (Chamfer-L1, oriented normal consistency, both directions on `samples`
points each way); the watertight check is engine.geometry.mesh_ops.edge_manifold_report.
"""

from __future__ import annotations

import json

import numpy as np
import torch

from ..evaluation.metrics import exact_surface_quality, exact_surface_samples
from ..geometry.flexicubes import FlexiCubes, extract_flexicubes, sample_sdf_grid, sdf_normal_fn
from ..geometry.mesh_ops import edge_manifold_report
from . import median_seconds
from .shapes import SHAPES, SdfFn, torus

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


# ---------------------------------------------------------------- benchmark


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
        out[res] = median_seconds(run, repeats if res <= 128 else max(3, repeats // 2))
    return out


def end_to_end(resolutions=(64, 128), repeats: int = 5, device: str = "cpu") -> dict:
    """Median seconds of `extract_flexicubes(torus, res)`: grid sampling (coarse to fine),
    extraction and Hermite normals, to numpy."""
    return {res: median_seconds(lambda: extract_flexicubes(torus, res, device=device),
                          repeats)
            for res in resolutions}


METHODS = ("flexicubes", "flexicubes_mean", "mcubes")


def quality(resolutions=(32, 64, 128), shapes=None, samples: int = 20000) -> dict:
    """{shape: {res: {method: metrics}}} on the same dense SDF grid. Methods: "flexicubes" (what
    `extract_flexicubes` gives: Hermite QEF placement), "flexicubes_mean" (the paper's
    neutral-weight placement, no normals) and "mcubes" (PyMCubes)."""
    out = {}
    for name in shapes or SHAPES:
        fn = SHAPES[name]
        surf = exact_surface_samples(fn, samples, seed=1)
        out[name] = {}
        for res in resolutions:
            grid = sample_sdf_grid(fn, res, levels=0)
            meshers = {"flexicubes": lambda g: flexicubes_mesh(g, sdf_fn=fn),
                       "flexicubes_mean": flexicubes_mesh, "mcubes": marching_cubes_baseline}
            row = {}
            for method, mesher in meshers.items():
                v, f = mesher(grid)
                row[method] = exact_surface_quality(v, f, fn, samples, surface=surf)
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
