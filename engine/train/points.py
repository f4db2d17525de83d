"""Fresh 3D supervision every step, for every kind of asset, through one interface.

`StoreTruth(store)` knows the truth of each row of an asset store (engine.data.dataset):
- a procedural asset is rebuilt from its seed: every step draws new points around its
  surface bank (`near_frac` of them, jittered by a Gaussian whose sigma is drawn per point
  from `sigmas`, mostly tight: the sign is decided there; the rest uniform in [-1, 1]^3,
  the empty space must stay empty) and evaluates its exact SDF and colour (about 1 ms
  per 1,000 points on one core, far below a decoder pass);
- a mesh's exact SDF is costly per step (a winding number over its triangles), so its
  row holds a large pool of exact samples drawn the same way once, and every step takes
  a fresh random subset: the same share near the surface, the rest uniform.
`query(i, points)` gives the SDF and its gradient direction at any points (the
FlexiCubes losses): exact for procedural assets, first order from the nearest oriented
surface-bank point for meshes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PointDraw:
    count: int = 2048                       # points per asset per step
    near_frac: float = 0.5                  # share drawn around the surface
    sigmas: tuple = (0.005, 0.015, 0.04)    # jitter of the near points (one per point)

    @property
    def near(self) -> int:
        return int(round(self.count * self.near_frac))


class TrueAssets:
    """Procedural assets rebuilt from their seeds and cached (exact SDF and colour)."""

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
    """(count, 3) points in [-1, 1]^3: d.near around the surface bank, then uniform."""
    n_near = d.near if len(surface_sx3) else 0
    pick = torch.randint(0, max(1, len(surface_sx3)), (n_near,), generator=gen)
    sigmas = torch.tensor(d.sigmas)
    sigma = sigmas[torch.randint(0, len(sigmas), (n_near,), generator=gen)]
    near = surface_sx3[pick] + sigma[:, None] * torch.randn(n_near, 3, generator=gen)
    uniform = torch.rand(d.count - n_near, 3, generator=gen) * 2 - 1
    return torch.cat([near.clamp(-1, 1), uniform])


class StoreTruth:
    """The truth of an asset store's rows (see the module docstring)."""

    def __init__(self, store):
        from .store import asset_seeds
        self.store, self.seeds, self.procedural = store, asset_seeds(store), TrueAssets()
        pool = store.tensors["points"].shape[1]
        self.pool_near = PointDraw(count=pool).near          # the pool was drawn this way

    @torch.no_grad()
    def fresh(self, rows: list[int], d: PointDraw, gen: torch.Generator) -> dict:
        """New samples for a batch of rows: points (B, P, 3), sdf (B, P), rgb (B, P, 3)."""
        pts, sdf, rgb = [], [], []
        for i in rows:
            p, s, c = self._exact(i, d, gen) if self.seeds[i] is not None else self._pooled(i, d, gen)
            pts.append(p), sdf.append(s), rgb.append(c)
        return {"points": torch.stack(pts), "sdf": torch.stack(sdf), "rgb": torch.stack(rgb)}

    def _exact(self, i: int, d: PointDraw, gen):
        p = draw_points(self.store.tensors["surface"][i].float(), d, gen)
        s, c = self.procedural(self.seeds[i]).node.eval(p)
        return p, s, c.clamp(0.0, 1.0)

    def _pooled(self, i: int, d: PointDraw, gen):
        t, size = self.store.tensors, self.store.tensors["points"].shape[1]
        near = torch.randint(0, self.pool_near, (d.near,), generator=gen)
        far = torch.randint(self.pool_near, size, (d.count - d.near,), generator=gen)
        pick = torch.cat([near, far])
        return t["points"][i, pick].float(), t["sdf"][i, pick].float(), t["rgb"][i, pick].float()

    def query(self, i: int, points_px3: torch.Tensor):
        """SDF (P,) and unit gradient (P, 3) of row i at points (no autograd)."""
        from ..geometry.surface import sdf_normals
        if self.seeds[i] is not None:
            sdf_fn = self.procedural.sdf(self.seeds[i])
            return sdf_fn(points_px3), sdf_normals(sdf_fn, points_px3)
        bank = self.store.tensors["surface"][i].float()                   # (S, 3)
        normals = self.store.tensors["normals"][i].float()
        nearest = torch.cdist(points_px3, bank).argmin(1)
        q, n = bank[nearest], normals[nearest]
        return ((points_px3 - q) * n).sum(1), n
