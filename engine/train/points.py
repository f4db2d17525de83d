"""Fresh 3D supervision every step, from the exact SDF of each procedural asset.

A store keeps one fixed set of sample points per asset; the procedural world can give new
exact samples at any time. Every VAE step draws, per asset:
- `near_frac` of the points around the asset's surface bank (points on its zero level set,
  spread evenly over the surface area, thin parts included), jittered by a Gaussian whose
  sigma is drawn per point from `sigmas` (mostly tight: the sign is decided there);
- the rest uniform in [-1, 1]^3 (the empty space must stay empty);
and their exact SDF and colour. Cost: one SDF+colour evaluation of the asset's primitives
(about 1 ms per 1,000 points on one core), far below a decoder pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PointDraw:
    count: int = 2048                       # points per asset per step
    near_frac: float = 0.5                  # share drawn around the surface
    sigmas: tuple = (0.005, 0.015, 0.04)    # jitter of the near points (one per point)


class TrueAssets:
    """The procedural assets of a store, rebuilt from their seeds and cached (exact SDF
    and colour at any point)."""

    def __init__(self):
        self._cache = {}

    def __call__(self, seed: int):
        if seed not in self._cache:
            from ..data.shapes import make_asset
            self._cache[seed] = make_asset(seed)
        return self._cache[seed]

    def sdf(self, seed: int):
        return self(seed).sdf


def draw_points(surface_sx3: torch.Tensor, d: PointDraw, gen: torch.Generator) -> torch.Tensor:
    """(count, 3) points in [-1, 1]^3: near the surface bank, then uniform."""
    n_near = int(round(d.count * d.near_frac)) if len(surface_sx3) else 0
    pick = torch.randint(0, max(1, len(surface_sx3)), (n_near,), generator=gen)
    sigmas = torch.tensor(d.sigmas)
    sigma = sigmas[torch.randint(0, len(sigmas), (n_near,), generator=gen)]
    near = surface_sx3[pick] + sigma[:, None] * torch.randn(n_near, 3, generator=gen)
    uniform = torch.rand(d.count - n_near, 3, generator=gen) * 2 - 1
    return torch.cat([near.clamp(-1, 1), uniform])


@torch.no_grad()
def fresh_samples(assets: TrueAssets, seeds: list, surface_bxsx3: torch.Tensor, d: PointDraw,
                  gen: torch.Generator) -> dict:
    """New exact samples for a batch: points (B, P, 3), sdf (B, P), rgb (B, P, 3)."""
    pts, sdf, rgb = [], [], []
    for seed, bank in zip(seeds, surface_bxsx3):
        p = draw_points(bank.float(), d, gen)
        s, c = assets(seed).node.eval(p)
        pts.append(p), sdf.append(s), rgb.append(c.clamp(0.0, 1.0))
    return {"points": torch.stack(pts), "sdf": torch.stack(sdf), "rgb": torch.stack(rgb)}
