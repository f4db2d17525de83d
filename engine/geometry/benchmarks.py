"""Speed figures of the mesh stages, for `python -m engine bench` (medians in seconds).

Inputs are synthetic: an analytic torus SDF, and a field shaped like the real decoder's
(a 32-channel 64x64 tri-plane and a 2-layer 64-wide MLP) with a random init around a sphere.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def _median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def torus_sdf(points_nx3: torch.Tensor, major: float = 0.5, minor: float = 0.2) -> torch.Tensor:
    q = torch.sqrt(points_nx3[:, 0] ** 2 + points_nx3[:, 1] ** 2) - major
    return torch.sqrt(q ** 2 + points_nx3[:, 2] ** 2) - minor


def smooth_rgb(points_nx3: torch.Tensor) -> torch.Tensor:
    """A smooth colour field in [0, 1] (used by tests and the texture bench)."""
    p = points_nx3
    return torch.stack([0.5 + 0.4 * torch.sin(2.0 * p[:, 0] + 0.5),
                        0.5 + 0.4 * torch.cos(1.5 * p[:, 1] - 0.3 * p[:, 2]),
                        0.5 + 0.4 * torch.sin(1.7 * p[:, 2] + p[:, 0])], dim=1)


class TriplaneSDF(torch.nn.Module):
    """Stand-in for the decoder's field: sphere + small MLP on tri-plane features."""

    def __init__(self, channels: int = 32, size: int = 64, hidden: int = 64, seed: int = 0,
                 radius: float = 0.5):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.planes = torch.nn.Parameter(0.1 * torch.randn(3, channels, size, size, generator=gen))
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.mlp = torch.nn.Sequential(torch.nn.Linear(3 * channels, hidden), torch.nn.SiLU(),
                                           torch.nn.Linear(hidden, hidden), torch.nn.SiLU(),
                                           torch.nn.Linear(hidden, 1))
        self.radius = radius

    def forward(self, points_nx3: torch.Tensor) -> torch.Tensor:
        p = points_nx3
        coords = torch.stack([p[:, [0, 1]], p[:, [0, 2]], p[:, [1, 2]]])[:, None]  # (3, 1, N, 2)
        feats = torch.nn.functional.grid_sample(self.planes, coords, align_corners=False)
        feats = feats[:, :, 0].permute(2, 0, 1).reshape(p.shape[0], -1)             # (N, 3C)
        return p.norm(dim=1) - self.radius + 0.05 * self.mlp(feats)[:, 0]


def bench_extract(resolutions=(64, 128, 256), repeats: int = 5) -> dict:
    """Median seconds of extract_surface on a torus SDF and on the tri-plane MLP field.

    Keys: extract_torus_<res>, extract_mlp_<res>. The torus isolates the extraction's own
    cost; the MLP adds the field queries of a decoder-sized field.
    """
    from .extract import extract_surface

    field = TriplaneSDF().eval()
    out = {}
    for res in resolutions:
        reps = repeats if res <= 128 else max(1, repeats // 2)
        out[f"extract_torus_{res}"] = _median_seconds(lambda: extract_surface(torus_sdf, res), reps)
        out[f"extract_mlp_{res}"] = _median_seconds(lambda: extract_surface(field, res), reps)
    return out


def bench_texture(faces: int = 20000, size: int = 1024, repeats: int = 3) -> dict:
    """Median seconds of the mesh stages after extraction, on a torus extracted at 128.

    Keys: decimate_<faces>f (quadric decimation alone), clean_<faces>f (clean-up, decimation,
    normals), texture_<faces>f_<size> (unwrap + raster + colour query + padding, analytic
    colour), texture_<faces>f_<size>_snap (same, with a Newton step onto the SDF), and
    vertex_colors_<faces>f.
    """
    from .extract import extract_surface
    from .mesh_ops import clean, decimate
    from .texture import bake_texture, vertex_colors

    dense = extract_surface(torus_sdf, 128)
    mesh = clean(dense, target_faces=faces)
    return {
        f"decimate_{faces}f": _median_seconds(lambda: decimate(dense, faces), repeats),
        f"clean_{faces}f": _median_seconds(lambda: clean(dense, faces), repeats),
        f"texture_{faces}f_{size}": _median_seconds(lambda: bake_texture(mesh, smooth_rgb, size), repeats),
        f"texture_{faces}f_{size}_snap": _median_seconds(
            lambda: bake_texture(mesh, smooth_rgb, size, sdf_fn=torus_sdf), repeats),
        f"vertex_colors_{faces}f": _median_seconds(lambda: vertex_colors(mesh, smooth_rgb), repeats),
    }
