"""Analytic fields the benchmarks (and the geometry tests) run on: exact SDFs (negative
inside) of points (N, 3) -> (N,), a smooth colour field, and a decoder-sized tri-plane MLP.

`torus_sdf`: the extraction and texture benches' torus (centred, on the grid's symmetry).
`SHAPES`: the FlexiCubes quality shapes, moved slightly off the grid lines so that no
surface passes exactly through grid vertices.
"""

from __future__ import annotations

from typing import Callable

import torch

SdfFn = Callable[[torch.Tensor], torch.Tensor]


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
    """Stand-in for the decoder's field: sphere + small MLP on tri-plane features (a
    32-channel 64x64 tri-plane and a 2-layer 64-wide MLP, random init)."""

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


# ---------------------------------------------------------------- the FlexiCubes quality shapes

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
