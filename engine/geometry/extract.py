"""Surface extraction: a signed distance field to a closed triangle mesh.

Grid convention: `resolution` cells per axis over [-bound, bound]^3, so (resolution+1)^3
samples; sample (i, j, k) sits at -bound + (i, j, k) * h with h = 2 * bound / resolution,
and the volume is indexed [x, y, z].

Two steps:
1. `sample_grid` evaluates the SDF coarse to fine. A dense grid at resolution/4 is refined
   twice by halving; at each level the cells near the surface (a sign change, or a corner
   with |sdf| below the cell diagonal), dilated by one cell, are evaluated exactly on the
   finer grid and everything else is trilinearly upsampled from the coarser level (which
   keeps the signs of the far field). Near the surface the grid is therefore identical to
   a dense evaluation, for a fraction of the SDF queries.
2. `marching_cubes` runs PyMCubes only on blocks of the grid that hold a sign change and
   welds the blocks along grid edges. The outermost sample layer is forced outside, so the
   mesh is closed even where the shape touches the bound (it is capped there).

`tick`, where a function takes it, is called with no arguments between pieces of work (each
chunk of SDF queries, each refinement pass, each block of marching cubes); it may raise (the
engine's `Cancelled`) to stop the extraction.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from .mesh import Mesh

SdfFn = Callable[[torch.Tensor], torch.Tensor]
Tick = Callable[[], None]


def _no_tick() -> None:
    pass


def extract_surface(sdf_fn: SdfFn, resolution: int = 128, bound: float = 1.0,
                    chunk: int = 262144, levels: int = 2, device: str | torch.device = "cpu",
                    block: int = 16, tick: Tick | None = None) -> Mesh:
    """Marching cubes on `sdf_fn` (negative inside) -> closed Mesh with outward faces.

    levels: halvings of the coarse-to-fine schedule (0 = dense evaluation).
    device: where query points are created (sdf_fn receives tensors there).
    """
    grid = sample_grid(sdf_fn, resolution, bound, chunk=chunk, levels=levels, device=device,
                       tick=tick)
    return marching_cubes(grid, bound, block=block, tick=tick)


# ---------------------------------------------------------------- sampling


def grid_points(index_mx3: torch.Tensor, resolution: int, bound: float) -> torch.Tensor:
    """Integer sample indices -> object-space points, (M, 3) float32."""
    return index_mx3.to(torch.float32) * (2.0 * bound / resolution) - bound


def _evaluate(sdf_fn: SdfFn, points_mx3: torch.Tensor, chunk: int,
              tick: Tick = _no_tick) -> torch.Tensor:
    out = []
    with torch.inference_mode():
        for start in range(0, points_mx3.shape[0], chunk):
            tick()
            out.append(sdf_fn(points_mx3[start:start + chunk]).reshape(-1).to(torch.float32))
    if not out:
        return torch.zeros(0, dtype=torch.float32, device=points_mx3.device)
    return torch.cat(out).to(points_mx3.device)


def _evaluate_mask(sdf_fn: SdfFn, grid: torch.Tensor, mask: torch.Tensor, bound: float,
                   chunk: int, tick: Tick = _no_tick) -> None:
    """grid[mask] = sdf at those samples (in place). grid: (n+1, n+1, n+1)."""
    index_mx3 = mask.nonzero()
    if index_mx3.shape[0] == 0:
        return
    values = _evaluate(sdf_fn, grid_points(index_mx3, grid.shape[0] - 1, bound), chunk, tick)
    grid[index_mx3[:, 0], index_mx3[:, 1], index_mx3[:, 2]] = values


def dense_grid(sdf_fn: SdfFn, resolution: int, bound: float = 1.0, chunk: int = 262144,
               device: str | torch.device = "cpu", tick: Tick = _no_tick) -> torch.Tensor:
    """Every sample evaluated, (n+1, n+1, n+1) float32."""
    n1 = resolution + 1
    grid = torch.empty((n1, n1, n1), dtype=torch.float32, device=device)
    _evaluate_mask(sdf_fn, grid, torch.ones_like(grid, dtype=torch.bool), bound, chunk, tick)
    return grid


def _cell_reduce(x: torch.Tensor, op) -> torch.Tensor:
    """op over the 8 corners of every cell, separably: (n+1)^3 -> (n)^3."""
    x = op(x[1:], x[:-1])
    x = op(x[:, 1:], x[:, :-1])
    return op(x[:, :, 1:], x[:, :, :-1])


def _cells_to_samples(cells: torch.Tensor, tick: Tick = _no_tick) -> torch.Tensor:
    """Mask of the corners of the marked cells: (n)^3 bool -> (n+1)^3 bool."""
    for axis in range(3):
        tick()
        shape = list(cells.shape)
        shape[axis] += 1
        out = torch.zeros(shape, dtype=torch.bool, device=cells.device)
        out.narrow(axis, 0, cells.shape[axis]).logical_or_(cells)
        out.narrow(axis, 1, cells.shape[axis]).logical_or_(cells)
        cells = out
    return cells


def _sign_change(grid: torch.Tensor) -> torch.Tensor:
    """Cells whose corners hold both signs, (n)^3 bool."""
    inside = (grid < 0).to(torch.uint8)
    count = _cell_reduce(inside, torch.add)
    return (count > 0) & (count < 8)


def _upsample(coarse: torch.Tensor, tick: Tick = _no_tick) -> torch.Tensor:
    """Trilinear x2 with shared corners: (n+1)^3 -> (2n+1)^3 (exact at even indices)."""
    x = coarse
    for axis in range(3):
        tick()
        shape = list(x.shape)
        shape[axis] = 2 * shape[axis] - 1
        out = torch.empty(shape, dtype=x.dtype, device=x.device)
        even = [slice(None)] * 3
        odd = [slice(None)] * 3
        even[axis] = slice(0, None, 2)
        odd[axis] = slice(1, None, 2)
        out[tuple(even)] = x
        n = x.shape[axis]
        out[tuple(odd)] = 0.5 * (x.narrow(axis, 0, n - 1) + x.narrow(axis, 1, n - 1))
        x = out
    return x


def _evaluate_needed(sdf_fn: SdfFn, grid: torch.Tensor, exact: torch.Tensor, need: torch.Tensor,
                     bound: float, chunk: int, tick: Tick = _no_tick) -> None:
    """Evaluate the samples in `need` that are not exact yet; marks them exact (in place)."""
    todo = need & ~exact
    tick()
    _evaluate_mask(sdf_fn, grid, todo, bound, chunk, tick)
    exact |= todo


def _refine(sdf_fn: SdfFn, coarse: torch.Tensor, exact: torch.Tensor, bound: float,
            chunk: int, max_grow: int = 64, tick: Tick = _no_tick
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """One halving: coarse (n+1)^3 -> fine (2n+1)^3, exact wherever the surface is.

    Seeds: coarse cells with a sign change, or whose 8 corners all lie within one cell
    diagonal of the surface (a thin part between samples). Then, until nothing changes, every
    fine cell with a sign change and a corner that is only interpolated gets evaluated, so the
    surface is followed wherever the coarse grid misjudged it.
    """
    n = coarse.shape[0] - 1
    diagonal = math.sqrt(3.0) * 2.0 * bound / n
    seeds = _sign_change(coarse) | (_cell_reduce(coarse.abs(), torch.maximum) < diagonal)
    fine = _upsample(coarse, tick)
    tick()
    fine_exact = torch.zeros(fine.shape, dtype=torch.bool, device=fine.device)
    fine_exact[::2, ::2, ::2] = exact
    fine_cells = seeds[:, None, :, None, :, None].expand(-1, 2, -1, 2, -1, 2).reshape((2 * n,) * 3)
    need = _cells_to_samples(fine_cells, tick)
    tick()
    _evaluate_needed(sdf_fn, fine, fine_exact, need, bound, chunk, tick)
    for _ in range(max_grow):
        tick()
        loose = _sign_change(fine)
        tick()
        loose &= ~_cell_reduce(fine_exact, torch.logical_and)
        tick()
        if not bool(loose.any()):
            break
        _evaluate_needed(sdf_fn, fine, fine_exact, _cells_to_samples(loose, tick), bound, chunk,
                         tick)
    return fine, fine_exact


def sample_grid(sdf_fn: SdfFn, resolution: int = 128, bound: float = 1.0, chunk: int = 262144,
                levels: int = 2, device: str | torch.device = "cpu",
                tick: Tick | None = None) -> torch.Tensor:
    """SDF samples on the (n+1)^3 grid, coarse to fine; (n+1, n+1, n+1) float32 on device."""
    if resolution < 2:
        raise ValueError(f"Grid resolution must be at least 2, got {resolution}.")
    levels = max(0, int(levels))
    while levels and (resolution % (2 ** levels) or resolution // 2 ** levels < 8):
        levels -= 1
    tick = tick or _no_tick
    grid = dense_grid(sdf_fn, resolution // 2 ** levels, bound, chunk, device, tick)
    exact = torch.ones_like(grid, dtype=torch.bool)
    for _ in range(levels):
        grid, exact = _refine(sdf_fn, grid, exact, bound, chunk, tick=tick)
    return grid


# ---------------------------------------------------------------- marching cubes


def _prepare(grid_np: np.ndarray, cell: float) -> np.ndarray:
    """No exact zeros (vertices stay strictly inside grid edges), NaN counts as outside, the
    outer layer is forced outside (the mesh is closed, capped at the bound)."""
    g = np.nan_to_num(np.array(grid_np, dtype=np.float32), nan=1.0, posinf=1.0, neginf=-1.0)
    eps = np.float32(1e-5 * cell)
    g[np.abs(g) < eps] = eps
    for axis in range(3):
        for end in (0, -1):
            idx = [slice(None)] * 3
            idx[axis] = end
            g[tuple(idx)] = np.maximum(g[tuple(idx)], eps)
    return g


def _weld(verts_vx3: np.ndarray, faces_fx3: np.ndarray, n1: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge the copies of a vertex that several blocks made, by the grid edge it lies on."""
    base = np.floor(verts_vx3)
    frac = verts_vx3 - base
    axis = np.argmax(frac, axis=1)
    b = base.astype(np.int64)
    key = ((b[:, 0] * n1 + b[:, 1]) * n1 + b[:, 2]) * 3 + axis
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return verts_vx3[first], inverse.reshape(-1)[faces_fx3]


def _block_any(mask: np.ndarray, block: int) -> np.ndarray:
    """any() over each block's (block+1)^3 samples (blocks share their boundary samples)."""
    for axis in range(3):
        n = mask.shape[axis] - 1
        body = np.take(mask, np.arange(n), axis=axis)
        shape = list(body.shape)
        shape[axis:axis + 1] = [n // block, block]
        reduced = body.reshape(shape).any(axis=axis + 1)
        mask = reduced | np.take(mask, np.arange(block, n + 1, block), axis=axis)
    return mask


def _active_blocks(g: np.ndarray, block: int) -> np.ndarray:
    """(bx, by, bz) indices of blocks whose samples hold both signs."""
    inside = g < 0
    return np.argwhere(_block_any(inside, block) & _block_any(~inside, block))


def marching_cubes(grid, bound: float = 1.0, block: int = 16, tick: Tick | None = None) -> Mesh:
    """Closed mesh of the zero level set of an (n+1)^3 SDF grid (negative inside)."""
    try:
        import mcubes
    except ImportError as exc:  # pragma: no cover - dependency missing
        raise ImportError("Surface extraction needs PyMCubes: pip install PyMCubes") from exc
    if isinstance(grid, torch.Tensor):
        grid = grid.detach().to("cpu", torch.float32).numpy()
    tick = tick or _no_tick
    tick()
    n = grid.shape[0] - 1
    cell = 2.0 * bound / n
    g = _prepare(grid, cell)
    tick()
    nb = -(-n // block)
    pad = nb * block + 1 - g.shape[0]
    if pad:
        g = np.pad(g, ((0, pad),) * 3, constant_values=1.0)
    verts, faces, count = [], [], 0
    for bx, by, bz in _active_blocks(g, block):
        tick()
        o = np.array([bx, by, bz]) * block
        sub = g[o[0]:o[0] + block + 1, o[1]:o[1] + block + 1, o[2]:o[2] + block + 1]
        sub = -sub.astype(np.float64)                     # inside positive -> outward faces
        v, f = mcubes.marching_cubes(sub, 0.0)
        if len(f) == 0:
            continue
        verts.append(v + o)
        faces.append(f.astype(np.int64) + count)
        count += len(v)
    if not faces:
        return Mesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32))
    tick()
    v, f = _weld(np.concatenate(verts), np.concatenate(faces), g.shape[0])
    return Mesh((v * cell - bound).astype(np.float32), f.astype(np.int32))
