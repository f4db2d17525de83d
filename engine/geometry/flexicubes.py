"""FlexiCubes: differentiable dual-marching-cubes isosurface extraction (Kiln's own code).

Follows Shen et al., "Flexible Isosurface Extraction for Gradient-Based Mesh Optimization"
(SIGGRAPH 2023): one dual vertex per surface patch of each cube, placed at a weighted mean of the
patch's edge crossings, with three sets of per-cube weights and a per-vertex grid deformation.

Grid convention (`FlexiCubes.grid(res, bound)`)
-----------------------------------------------
- `res` cubes per axis over [-bound, bound]^3; (res+1)^3 vertices, vertex (i, j, k) at
  -bound + (i, j, k) * h with h = 2 * bound / res, stored at row (i * (res+1) + j) * (res+1) + k
  (so `sdf_n.view(res+1, res+1, res+1)` is indexed [x, y, z], like `engine.geometry.extract`).
- Cube (a, b, c) is row (a * res + b) * res + c of `cubes_fx8`; its corner k is vertex
  (a + (k & 1), b + ((k >> 1) & 1), c + ((k >> 2) & 1)).
- Edges, faces and the table layout are described in `flexicubes_tables.py`.
- SDF: negative inside; a value of exactly 0 counts as outside. Faces are counter-clockwise
  seen from outside (right-hand normals point to positive SDF).

Per-cube weights (raw, unbounded parameters; 0 means neutral)
-------------------------------------------------------------
- alpha_fx8 (corners): scales the SDF at the cube's corners before the crossing point on each edge
  is interpolated, u_e = (s_a' x_b - s_b' x_a) / (s_a' - s_b'), s' = alpha * s.
- beta_fx12 (edges): the dual vertex is sum(beta_e u_e) / sum(beta_e) over the patch's edges.
- gamma_f: quad splitting. Every crossed grid edge gives one quad from its 4 cubes' dual vertices;
  inference splits it into 2 triangles along the diagonal with the larger gamma product
  (gamma=None or a tie: the shorter diagonal); training splits it into 4 around the centre
  (g02 * mid02 + g13 * mid13) / (g02 + g13), g02 = gamma_0 * gamma_2.
  alpha and beta map to 1 + 0.99 tanh(raw) in (0.01, 1.99); gamma to 0.005 + 0.99 sigmoid(raw).
- deform_nx3: per grid vertex, offset = 0.99 * (h / 2) * tanh(raw) per axis, so cubes never fold.

Topology: each cube's crossed edges are grouped into patches by tables generated in
`flexicubes_tables.py`; ambiguous faces are resolved the same way from both sides, and where two
neighbouring cubes would both route one patch twice through their shared face, the low cube uses
its alternative grouping. Every quad edge is then shared by exactly two quads: meshes are
watertight and edge-manifold with consistent orientation (grid boundary aside: keep the outer
layer of the SDF positive, as `extract_flexicubes` does).

Sharp placement (optional, not in the paper): with `normal_fn` (surface normals at points, e.g.
the SDF gradient) each dual vertex solves a beta-weighted dual-contouring QEF over its crossings'
tangent planes, regularised towards the weighted mean above and clamped to its cube; a patch whose
normals oppose (a pinch, two sides of a sheet) keeps the mean. This recovers sharp edges and puts
vertices on curved surfaces; `extract_flexicubes` uses it by default.

Only cubes with a sign change are processed: after the (cheap, byte-sized) configuration pass over
the grid, the work runs over the K crossed edges of the surface cubes, so memory and time grow
with the surface. Everything is differentiable with respect to sdf_n, the weights, deform_nx3 and
x_nx3 (topology is piecewise constant). Faces are int32. The device follows the inputs; nothing
defaults to CUDA. `tick`, where a function takes it, is called with no arguments between pieces
of work; it may raise (the engine's `Cancelled`) to stop the extraction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..config import FLEXI_HEAD_SLICES
from .flexicubes_tables import CORNERS_8x3, EDGES_12x2, MAX_GROUPS, build_tables
from .surface import sdf_normals

SdfFn = Callable[[torch.Tensor], torch.Tensor]
Tick = Callable[[], None]


def _no_tick() -> None:
    pass

WEIGHT_SCALE = 0.99
SLAB = 32                  # grid planes filled between two ticks
CUBES_PER_TICK = 1 << 16   # surface cubes handled between two ticks

# neighbour cubes around the edge owned by a cube's corner 0, in right-handed cyclic order
# about the edge's axis: (cube offset (dx, dy, dz), local edge index in that cube)
_AROUND_EDGE = (
    (((0, 0, 0), 0), ((0, -1, 0), 1), ((0, -1, -1), 3), ((0, 0, -1), 2)),      # x edges
    (((0, 0, 0), 4), ((0, 0, -1), 6), ((-1, 0, -1), 7), ((-1, 0, 0), 5)),      # y edges
    (((0, 0, 0), 8), ((-1, 0, 0), 9), ((-1, -1, 0), 11), ((0, -1, 0), 10)),    # z edges
)

_TABLE_CACHE: dict = {}


def _tables(device: torch.device) -> dict:
    key = str(device)
    if key not in _TABLE_CACHE:
        t = build_tables()
        def mk(a):
            return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.long, device=device)
        _TABLE_CACHE[key] = {
            "edge_group": mk(t.edge_group_rx12),
            "num_groups": mk(t.num_groups_r),
            "double_face": mk(t.double_face_256),
            "alt_row": mk(t.alt_row_256),
            "edge_a": mk(EDGES_12x2[:, 0]),
            "edge_b": mk(EDGES_12x2[:, 1]),
        }
    return _TABLE_CACHE[key]


# ---------------------------------------------------------------- weight parameterisation


def _edge_corner_weight(raw: torch.Tensor) -> torch.Tensor:
    return 1.0 + WEIGHT_SCALE * torch.tanh(raw)


def _split_weight(raw: torch.Tensor) -> torch.Tensor:
    return (1.0 - WEIGHT_SCALE) / 2 + WEIGHT_SCALE * torch.sigmoid(raw)


# ---------------------------------------------------------------- the extractor


class FlexiCubes:
    """Stateless FlexiCubes extractor; see the module docstring for conventions."""

    @staticmethod
    def grid(res: int, bound: float = 1.0, device: str | torch.device = "cpu",
             dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """(verts_nx3, cubes_fx8): the regular grid; cubes_fx8 is int32."""
        r1 = res + 1
        verts_nx3 = FlexiCubes.grid_vertices(res, bound, device, dtype)
        cube = torch.arange(res, device=device, dtype=torch.int32)
        a, b, c = torch.meshgrid(cube, cube, cube, indexing="ij")
        base_f = ((a * r1 + b) * r1 + c).reshape(-1)
        cubes_fx8 = base_f[:, None] + _corner_offsets(res, device).to(torch.int32)[None]
        return verts_nx3, cubes_fx8

    @staticmethod
    def grid_vertices(res: int, bound: float = 1.0, device: str | torch.device = "cpu",
                      dtype: torch.dtype = torch.float32, tick: Tick | None = None) -> torch.Tensor:
        """Just the (res+1)^3 x 3 vertices of `grid` (what `extract` needs; cubes_fx8=None),
        filled SLAB planes of x at a time (a tick before each)."""
        r1 = res + 1
        axis = torch.linspace(-bound, bound, r1, device=device, dtype=dtype)
        verts = torch.empty((r1, r1, r1, 3), device=device, dtype=dtype)
        for start in range(0, r1, SLAB):
            (tick or _no_tick)()
            slab = verts[start:start + SLAB]
            slab[..., 0] = axis[start:start + SLAB, None, None]
            slab[..., 1] = axis[None, :, None]
            slab[..., 2] = axis[None, None, :]
        return verts.reshape(-1, 3)

    def __call__(self, *args, **kwargs):
        return self.extract(*args, **kwargs)

    def extract(self, x_nx3: torch.Tensor, sdf_n: torch.Tensor, cubes_fx8: torch.Tensor | None,
                res: int, beta_fx12: torch.Tensor | None = None,
                alpha_fx8: torch.Tensor | None = None, gamma_f: torch.Tensor | None = None,
                deform_nx3: torch.Tensor | None = None, training: bool = False,
                normal_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
                tick: Tick | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (verts_vx3, faces_fx3 int32, l_dev_d) for the zero level set of sdf_n.

        cubes_fx8 must be the array from `grid(res)` (or None, which means the same): the
        extraction uses its regular layout for speed and for neighbour look-ups.
        l_dev_d: per dual vertex, the mean absolute deviation of its distances to its edge
        crossings (the paper's L_dev term; take .mean() for the loss).
        normal_fn: optional Hermite data, points (K, 3) -> surface normals (K, 3) (e.g. the SDF
        gradient). When given, each dual vertex minimises the beta-weighted squared distances to
        its crossings' tangent planes, regularised towards the paper's weighted mean and kept in
        its cube (a dual-contouring QEF): sharp edges and curved surfaces come out far closer to
        the true surface. Gradients flow through normal_fn only if it is differentiable.
        tick: called between the steps.
        """
        tick = tick or _no_tick
        tick()
        _check_inputs(x_nx3, sdf_n, cubes_fx8, res)
        surf = _surface_cubes(sdf_n, res, tick)
        tick()
        if surf is None:
            return _empty(x_nx3, sdf_n)
        cube_s, row_s = surf
        t = _tables(sdf_n.device)
        eg_sx12 = t["edge_group"][row_s]                   # (S, 12) patch of each edge, -1: none
        ng_s = t["num_groups"][row_s]                      # (S,) dual vertices per cube
        vd_start_s = torch.cumsum(ng_s, 0) - ng_s
        num_vd = int(vd_start_s[-1] + ng_s[-1])
        cr = _crossing_list(cube_s, eg_sx12, vd_start_s, res)
        u_kx3, w_k = _edge_crossings(x_nx3, sdf_n, cr, alpha_fx8, beta_fx12, deform_nx3, res)
        vd_vx3 = _scatter_mean(w_k[:, None] * u_kx3, w_k, cr.vd_k, num_vd)
        tick()
        if normal_fn is not None:
            n_kx3 = _crossing_normals(normal_fn, u_kx3, cr, shared=alpha_fx8 is None)
            tick()
            bounds = _cube_bounds(x_nx3, deform_nx3, cube_s, ng_s, res)
            tick()
            vd_vx3 = _qef_vertices(u_kx3, w_k, n_kx3, vd_vx3, cr, eg_sx12, ng_s, bounds, tick)
            tick()
        quads_qx4 = _quads(cube_s, sdf_n, eg_sx12, vd_start_s, res)
        tick()
        gamma_v = None
        if gamma_f is not None:
            gamma_v = _split_weight(gamma_f.index_select(0, cube_s)).repeat_interleave(ng_s, 0)
        verts, faces = _triangulate(vd_vx3, quads_qx4, gamma_v, training)
        l_dev = _deviation(u_kx3, vd_vx3, cr.vd_k, num_vd)
        return verts, faces, l_dev


# ---------------------------------------------------------------- steps


def _check_inputs(x_nx3, sdf_n, cubes_fx8, res):
    n = (res + 1) ** 3
    if x_nx3.shape != (n, 3) or sdf_n.reshape(-1).shape[0] != n:
        raise ValueError(f"FlexiCubes at res {res} needs {n} grid vertices, got x "
                         f"{tuple(x_nx3.shape)} and sdf {tuple(sdf_n.shape)}; build them with "
                         "FlexiCubes.grid(res).")
    if cubes_fx8 is not None and cubes_fx8.shape != (res ** 3, 8):
        raise ValueError(f"cubes_fx8 must be the (res^3, 8) array from FlexiCubes.grid({res}), "
                         f"got {tuple(cubes_fx8.shape)}.")


def _empty(x_nx3, sdf_n):
    dtype = torch.promote_types(x_nx3.dtype, sdf_n.dtype)
    return (x_nx3.new_zeros((0, 3), dtype=dtype), torch.zeros((0, 3), dtype=torch.int32,
            device=sdf_n.device), sdf_n.new_zeros((0,), dtype=dtype))


def _corner_offsets(res: int, device) -> torch.Tensor:
    r1 = res + 1
    c = torch.as_tensor(CORNERS_8x3, device=device)
    return (c[:, 0] * r1 + c[:, 1]) * r1 + c[:, 2]                          # (8,)


def _case_grid(inside_rrr: torch.Tensor) -> torch.Tensor:
    """(R+1)^3 bool -> (R, R, R) uint8 configuration of every cube (bit k = corner k inside).
    Built one axis at a time: x gives bits 0-1, y shifts them to 2-3, z to 4-7."""
    g = inside_rrr.to(torch.uint8)
    g = g[:-1] | (g[1:] << 1)
    g = g[:, :-1] | (g[:, 1:] << 2)
    return g[:, :, :-1] | (g[:, :, 1:] << 4)


def _surface_cubes(sdf_n: torch.Tensor, res: int, tick: Tick = _no_tick):
    """-> (cube ids (S,) sorted, table rows (S,)) of cubes with a sign change, or None."""
    t = _tables(sdf_n.device)
    with torch.no_grad():
        inside = (sdf_n.detach().reshape(res + 1, res + 1, res + 1) < 0)
        case_flat = _case_grid(inside).reshape(-1)
        tick()
        cube_s = ((case_flat + 1) > 1).nonzero().squeeze(1)            # uint8: 255 + 1 wraps to 0
        if cube_s.numel() == 0:
            return None
        case_s = case_flat[cube_s].long()
        row_s = _resolve_double_passes(cube_s, case_s, case_flat, res, t)
    return cube_s, row_s


def _resolve_double_passes(cube_s, case_s, case_flat, res, t) -> torch.Tensor:
    """Table row per surface cube: the default grouping, or the alternative one where this cube
    and its neighbour both pass twice through their shared face and this cube is the low one."""
    face_s = t["double_face"][case_s]
    cand = (face_s >= 0).nonzero().squeeze(1)
    row_s = case_s.clone()
    if cand.numel() == 0:
        return row_s
    face = face_s[cand]
    cube = cube_s[cand]
    axis, side = face // 2, face % 2
    coord = _cube_coords(cube, res)
    step = torch.tensor([res * res, res, 1], device=cube.device)[axis]
    along = coord.gather(1, axis[:, None]).squeeze(1)
    # only the low cube (whose + face is shared) switches; its neighbour is at +1 along the axis
    ok = (side == 1) & (along + 1 < res)
    nbr = torch.where(ok, cube + step, cube)
    nbr_face = t["double_face"][case_flat[nbr].long()]
    switch = ok & (nbr_face == face - 1)
    row_s[cand[switch]] = t["alt_row"][case_s[cand[switch]]]
    return row_s


def _cube_coords(cube: torch.Tensor, res: int) -> torch.Tensor:
    """Cube ids -> their (a, b, c) grid coordinates, (..., 3) long."""
    return torch.stack((cube // (res * res), (cube // res) % res, cube % res), -1)


def _vertex_base(cube_s: torch.Tensor, res: int) -> torch.Tensor:
    """Grid vertex id of each cube's corner 0."""
    r1 = res + 1
    return ((cube_s // (res * res)) * r1 + (cube_s // res) % res) * r1 + cube_s % res


@dataclass
class _Crossings:
    """The K crossed (cube, local edge) pairs of the surface cubes, flattened."""

    k_s: torch.Tensor      # (K,) surface cube row
    k_e: torch.Tensor      # (K,) local edge 0..11
    vd_k: torch.Tensor     # (K,) dual vertex the crossing belongs to
    va: torch.Tensor       # (K,) grid vertex at the edge's low end
    vb: torch.Tensor       # (K,) grid vertex at the high end
    cube_k: torch.Tensor   # (K,) grid cube id


def _crossing_list(cube_s, eg_sx12, vd_start_s, res) -> _Crossings:
    t = _tables(cube_s.device)
    crossed = eg_sx12 >= 0
    k_s, k_e = crossed.nonzero(as_tuple=True)
    vd_k = vd_start_s[k_s] + eg_sx12[crossed]
    base_k = _vertex_base(cube_s, res)[k_s]
    off = _corner_offsets(res, cube_s.device)
    return _Crossings(k_s, k_e, vd_k, base_k + off[t["edge_a"][k_e]],
                      base_k + off[t["edge_b"][k_e]], cube_s[k_s])


def _grid_positions(x_nx3, deform_nx3, vid, res):
    """Grid vertex positions with the bounded deformation applied, (..., 3)."""
    x = x_nx3[vid]
    if deform_nx3 is None:
        return x
    half_cell_3 = (x_nx3[-1] - x_nx3[0]).detach() * (WEIGHT_SCALE / (2 * res))
    return x + torch.tanh(deform_nx3[vid]) * half_cell_3


def _edge_crossings(x_nx3, sdf_n, cr: _Crossings, alpha_fx8, beta_fx12, deform_nx3, res):
    """Crossing point u_k on each crossed edge (alpha-weighted interpolation) and its beta
    weight. -> (K, 3), (K,)."""
    t = _tables(sdf_n.device)
    xa = _grid_positions(x_nx3, deform_nx3, cr.va, res)
    xb = _grid_positions(x_nx3, deform_nx3, cr.vb, res)
    sdf = sdf_n.reshape(-1)
    sa, sb = sdf[cr.va], sdf[cr.vb]
    if alpha_fx8 is not None:
        alpha = _edge_corner_weight(alpha_fx8.reshape(-1))
        sa = sa * alpha[cr.cube_k * 8 + t["edge_a"][cr.k_e]]
        sb = sb * alpha[cr.cube_k * 8 + t["edge_b"][cr.k_e]]
    tpar = sa / (sa - sb)                          # the ends have opposite signs: never 0 / 0
    u = xa + tpar[:, None] * (xb - xa)
    if beta_fx12 is None:
        return u, torch.ones_like(tpar)
    return u, _edge_corner_weight(beta_fx12.reshape(-1)[cr.cube_k * 12 + cr.k_e])


def _scatter_sum(src, index, n):
    return src.new_zeros((n,) + tuple(src.shape[1:])).index_add(0, index, src)


def _scatter_mean(weighted_src, w, index, n):
    """sum(weighted_src) / sum(w) per target index."""
    return _scatter_sum(weighted_src, index, n) / _scatter_sum(w, index, n)[:, None]


def _crossing_normals(normal_fn, u_kx3, cr: _Crossings, shared: bool) -> torch.Tensor:
    """Unit normals at the crossings, (K, 3). With `shared`, each grid edge's crossing is the
    same in all its cubes, so normal_fn sees every edge once. Differentiable through normal_fn
    when it is (e.g. an analytic or autograd gradient)."""
    if shared:
        with torch.no_grad():
            gid = cr.va * 3 + cr.k_e // 4
            uniq, inverse = torch.unique(gid, return_inverse=True)
            first = torch.zeros(len(uniq), dtype=torch.long, device=gid.device)
            first.scatter_(0, inverse, torch.arange(len(gid), device=gid.device))
        n = normal_fn(u_kx3[first]).reshape(-1, 3).to(u_kx3.dtype)[inverse]
    else:
        n = normal_fn(u_kx3).reshape(-1, 3).to(u_kx3.dtype)
    return n / _safe_norm(n)[:, None]


def _cube_bounds(x_nx3, deform_nx3, cube_s, ng_s, res):
    """Per dual vertex, the bounding box of its (deformed) cube: (V, 3), (V, 3)."""
    vid_sx8 = _vertex_base(cube_s, res)[:, None] + _corner_offsets(res, cube_s.device)
    corners = _grid_positions(x_nx3, deform_nx3, vid_sx8, res)                 # (S, 8, 3)
    return (corners.amin(1).repeat_interleave(ng_s, 0), corners.amax(1).repeat_interleave(ng_s, 0))


QEF_REG = 0.02
QEF_OPPOSED_DOT = -0.3


def _qef_vertices(u_kx3, w_k, n_kx3, vd_vx3, cr: _Crossings, eg_sx12, ng_s, bounds,
                  tick: Tick = _no_tick):
    """Dual vertices minimising sum_k w_k (n_k . (v - u_k))^2 + QEF_REG * sum_k w_k |v - m|^2
    (m = the weighted mean), clamped to the cube's bounding box. (V, 3)"""
    num_vd = vd_vx3.shape[0]
    wn = w_k[:, None] * n_kx3
    a = _scatter_sum((wn[:, :, None] * n_kx3[:, None, :]).reshape(-1, 9), cr.vd_k, num_vd)
    resid = (n_kx3 * (u_kx3 - vd_vx3[cr.vd_k])).sum(1)
    b = _scatter_sum(wn * resid[:, None], cr.vd_k, num_vd)
    wsum = _scatter_sum(w_k, cr.vd_k, num_vd)
    eye = torch.eye(3, dtype=a.dtype, device=a.device)
    a = a.reshape(-1, 3, 3) + (QEF_REG * wsum + 1e-12)[:, None, None] * eye
    vd = vd_vx3 + torch.linalg.solve(a, b)
    vd = torch.minimum(torch.maximum(vd, bounds[0]), bounds[1])
    tick()
    # two sides of a thin part or a pinch in one patch (opposing normals): keep the weighted mean
    opposed = _min_normal_dot(n_kx3, cr, eg_sx12, ng_s, tick) < QEF_OPPOSED_DOT
    return torch.where(opposed[:, None], vd_vx3, vd)


def _min_normal_dot(n_kx3, cr: _Crossings, eg_sx12, ng_s, tick: Tick = _no_tick) -> torch.Tensor:
    """Smallest dot product between two crossing normals of the same dual vertex, (V,);
    CUBES_PER_TICK surface cubes at a time."""
    with torch.no_grad():
        n_sx12x3 = n_kx3.new_zeros(eg_sx12.shape + (3,))
        n_sx12x3[cr.k_s, cr.k_e] = n_kx3.detach()
        out = n_kx3.new_full((eg_sx12.shape[0], MAX_GROUPS), 2.0)
        for start in range(0, eg_sx12.shape[0], CUBES_PER_TICK):
            tick()
            rows = slice(start, start + CUBES_PER_TICK)
            eg, n = eg_sx12[rows], n_sx12x3[rows]
            same = (eg[:, :, None] == eg[:, None, :]) & (eg[:, :, None] >= 0)
            dots = torch.bmm(n, n.transpose(1, 2)).masked_fill(~same, 2.0)
            per_edge = dots.amin(2).masked_fill(eg < 0, 2.0)                   # (s, 12)
            out[rows] = out[rows].scatter_reduce(1, eg.clamp_min(0), per_edge, "amin")
        return out[torch.arange(MAX_GROUPS, device=ng_s.device) < ng_s[:, None]]


def _quads(cube_s, sdf_n, eg_sx12, vd_start_s, res):
    """One quad per interior crossed grid edge, (Q, 4) dual vertex ids, CCW seen from outside."""
    dev = cube_s.device
    out = []
    with torch.no_grad():
        coord_sx3 = torch.stack((cube_s // (res * res), (cube_s // res) % res, cube_s % res), 1)
        inside0_s = sdf_n.reshape(-1)[_vertex_base(cube_s, res)] < 0
        for axis in range(3):
            around = _AROUND_EDGE[axis]
            others = [d for d in range(3) if d != axis]
            own = eg_sx12[:, around[0][1]] >= 0
            own &= (coord_sx3[:, others[0]] > 0) & (coord_sx3[:, others[1]] > 0)
            owner = own.nonzero().squeeze(1)
            if owner.numel() == 0:
                continue
            steps = torch.tensor([(dx * res + dy) * res + dz for (dx, dy, dz), _ in around[1:]],
                                 device=dev)
            nbr = torch.searchsorted(cube_s, (cube_s[owner][None] + steps[:, None]).reshape(-1))
            rows = torch.cat((owner, nbr)).reshape(4, -1)                    # (4, Qa)
            edges = torch.tensor([e for _, e in around], device=dev)
            quad = (vd_start_s[rows] + eg_sx12[rows, edges[:, None]]).T       # (Qa, 4)
            flip = ~inside0_s[owner]
            out.append(torch.where(flip[:, None], quad.flip(1), quad))
    if not out:
        return torch.zeros((0, 4), dtype=torch.long, device=dev)
    return torch.cat(out)


def _triangulate(vd_vx3, quads_qx4, gamma_v, training):
    dev = vd_vx3.device
    if training:
        p = vd_vx3[quads_qx4]                                                  # (Q, 4, 3)
        if gamma_v is None:
            center = p.mean(1)
        else:
            g = gamma_v[quads_qx4]
            g02, g13 = (g[:, 0] * g[:, 2])[:, None], (g[:, 1] * g[:, 3])[:, None]
            center = (g02 * (p[:, 0] + p[:, 2]) + g13 * (p[:, 1] + p[:, 3])) / (2 * (g02 + g13))
        c_id = torch.arange(quads_qx4.shape[0], device=dev) + vd_vx3.shape[0]
        q = quads_qx4
        faces = torch.stack([
            torch.stack((q[:, i], q[:, (i + 1) % 4], c_id), 1) for i in range(4)], 1).reshape(-1, 3)
        return torch.cat((vd_vx3, center)), faces.to(torch.int32)
    with torch.no_grad():
        p = vd_vx3.detach()[quads_qx4]
        split02 = ((p[:, 0] - p[:, 2]) ** 2).sum(1) <= ((p[:, 1] - p[:, 3]) ** 2).sum(1)
        if gamma_v is not None:     # the larger gamma product wins; a tie keeps the shorter
            g = gamma_v.detach()[quads_qx4]
            g02, g13 = g[:, 0] * g[:, 2], g[:, 1] * g[:, 3]
            split02 = torch.where(g02 == g13, split02, g02 > g13)
        q = quads_qx4
        t02 = torch.stack((q[:, [0, 1, 2]], q[:, [0, 2, 3]]), 1)
        t13 = torch.stack((q[:, [0, 1, 3]], q[:, [1, 2, 3]]), 1)
        faces = torch.where(split02[:, None, None], t02, t13).reshape(-1, 3)
    return vd_vx3, faces.to(torch.int32)


def _deviation(u_kx3, vd_vx3, vd_k, num_vd):
    """Per dual vertex: mean |d_k - mean(d)| with d_k = |u_k - v_d| over its crossings. (V,)"""
    d = _safe_norm(u_kx3 - vd_vx3[vd_k])
    count = _scatter_sum(torch.ones_like(d), vd_k, num_vd)
    mean = _scatter_sum(d, vd_k, num_vd) / count
    return _scatter_sum((d - mean[vd_k]).abs(), vd_k, num_vd) / count


def _safe_norm(v: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    return torch.sqrt((v * v).sum(-1) + eps)


# ---------------------------------------------------------------- regularisers


def deviation_loss(l_dev_d: torch.Tensor) -> torch.Tensor:
    """The paper's L_dev: mean over dual vertices of the per-vertex deviation from `extract`."""
    return l_dev_d.mean() if l_dev_d.numel() else l_dev_d.sum()


def weight_magnitude_loss(*raw_weights: torch.Tensor | None) -> torch.Tensor:
    """Mean |raw weight| over the given weight tensors (beta, alpha, gamma): pulls to neutral."""
    terms = [w.abs().mean() for w in raw_weights if w is not None and w.numel()]
    if not terms:
        raise ValueError("weight_magnitude_loss needs at least one non-empty weight tensor.")
    return torch.stack(terms).mean()


def sdf_sign_flip_loss(sdf_n: torch.Tensor, res: int) -> torch.Tensor:
    """Sign-flip regulariser (as in nvdiffrec / FlexiCubes): on every grid edge whose ends have
    opposite signs, binary cross-entropy pushing each end's logit towards the other end's sign.
    Discourages spurious sign changes (floaters, internal surfaces). 0 when nothing flips."""
    g = sdf_n.reshape(res + 1, res + 1, res + 1)
    a_list, b_list = [], []
    for axis in range(3):
        a = g.narrow(axis, 0, res).reshape(-1)
        b = g.narrow(axis, 1, res).reshape(-1)
        flip = (a > 0) != (b > 0)
        a_list.append(a[flip])
        b_list.append(b[flip])
    a, b = torch.cat(a_list), torch.cat(b_list)
    if a.numel() == 0:
        return sdf_n.sum() * 0
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    return bce(a, (b > 0).to(a.dtype)) + bce(b, (a > 0).to(b.dtype))


# ---------------------------------------------------------------- predicted weights


def predicted_weights(head_fn: Callable[[torch.Tensor], torch.Tensor], sdf_n: torch.Tensor,
                      res: int, bound: float = 1.0) -> tuple[dict, torch.Tensor]:
    """FlexiCubes inputs predicted by a field head, evaluated only where they matter.

    head_fn: points (K, 3) -> raw (K, 24) [deform 3 | beta 12 | alpha 8 | gamma 1].
    The weights are read at the centres of the surface cubes, the deformation at their
    corners; every other cube and vertex stays neutral (0). -> ({"beta_fx12", "alpha_fx8",
    "gamma_f", "deform_nx3"}: full-grid keyword arrays for `FlexiCubes.extract`, raw_sx21: the
    raw weights of the surface cubes alone, for `weight_magnitude_loss`), differentiable with
    respect to whatever head_fn depends on.
    """
    r1, dev, dtype = res + 1, sdf_n.device, sdf_n.dtype
    out = {"beta_fx12": sdf_n.new_zeros((res ** 3, 12)), "alpha_fx8": sdf_n.new_zeros((res ** 3, 8)),
           "gamma_f": sdf_n.new_zeros((res ** 3,)), "deform_nx3": sdf_n.new_zeros((r1 ** 3, 3))}
    surf = _surface_cubes(sdf_n, res)
    if surf is None:
        return out, sdf_n.new_zeros((0, 21))
    cube_s, h = surf[0], 2.0 * bound / res
    coord_sx3 = _cube_coords(cube_s, res)
    w_sx24 = head_fn(-bound + (coord_sx3.to(dtype) + 0.5) * h)
    with torch.no_grad():
        vid = torch.unique((_vertex_base(cube_s, res)[:, None] + _corner_offsets(res, dev)).reshape(-1))
        vcoord_vx3 = torch.stack((vid // (r1 * r1), (vid // r1) % r1, vid % r1), 1).to(dtype)
    d_vx24 = head_fn(-bound + vcoord_vx3 * h)
    for key, name in (("beta", "beta_fx12"), ("alpha", "alpha_fx8"), ("gamma", "gamma_f")):
        src = w_sx24[:, FLEXI_HEAD_SLICES[key]].reshape((-1,) + out[name].shape[1:])
        out[name] = out[name].index_copy(0, cube_s, src.to(dtype))
    deform_vx3 = d_vx24[:, FLEXI_HEAD_SLICES["deform"]].to(dtype)
    out["deform_nx3"] = out["deform_nx3"].index_copy(0, vid, deform_vx3)
    return out, w_sx24[:, 3:]


# ---------------------------------------------------------------- convenience


def sample_sdf_grid(sdf_fn: SdfFn, resolution: int, bound: float = 1.0, levels: int = 2,
                    chunk: int = 262144, device: str | torch.device = "cpu",
                    tick: Tick | None = None) -> torch.Tensor:
    """SDF on the (res+1)^3 grid, (res+1, res+1, res+1) float32, outer layer forced outside.

    Uses the coarse-to-fine sampler of `engine.geometry.extract` (exact near the surface) when
    `levels` > 0, else a dense evaluation in chunks of `chunk` points.
    """
    tick = tick or _no_tick
    if levels > 0:
        from .extract import sample_grid
        grid = sample_grid(sdf_fn, resolution, bound, chunk=chunk, levels=levels, device=device,
                           tick=tick)
        tick()
    else:
        x_nx3 = FlexiCubes.grid_vertices(resolution, bound, device=device, tick=tick)
        with torch.inference_mode():
            vals = [_ticked(tick, sdf_fn, x_nx3[i:i + chunk]).reshape(-1).float()
                    for i in range(0, len(x_nx3), chunk)]
        grid = torch.cat(vals).reshape((resolution + 1,) * 3)
    grid = grid.clone()
    eps = 1e-6 * (2.0 * bound / resolution)
    for axis in range(3):
        for end in (0, resolution):
            grid.select(axis, end).clamp_(min=eps)
    return grid


def _ticked(tick: Tick, fn, *args):
    tick()
    return fn(*args)


def sdf_normal_fn(sdf_fn: SdfFn, step: float, chunk: int = 262144, tick: Tick | None = None,
                  ) -> Callable[[torch.Tensor], torch.Tensor]:
    """points (K, 3) -> unit SDF normals by central differences of `step`
    (geometry.surface.sdf_normals: 6 queries a point, in chunks of `chunk` points, `tick()`
    before each), as data: no graph through sdf_fn."""
    tick = tick or _no_tick

    def normals(p_kx3: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return sdf_normals(sdf_fn, p_kx3, step, chunk, tick)
    return normals


def extract_flexicubes(sdf_fn: SdfFn, resolution: int, bound: float = 1.0, levels: int = 2,
                       sharp: bool = True, device: str | torch.device = "cpu",
                       head_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
                       tick: Tick | None = None) -> tuple[np.ndarray, np.ndarray]:
    """FlexiCubes with neutral weights on `sdf_fn` (negative inside) -> (verts float32 (V, 3),
    faces int32 (F, 3), CCW seen from outside). Same role as the marching-cubes extractor: the
    mesh is closed (the grid's outer layer counts as outside) and edge-manifold.

    sharp: place dual vertices by the QEF on Hermite data (normals from central differences of
    sdf_fn at the edge crossings, step = 5% of a cell); keeps sharp edges and puts vertices on
    the surface. False: the paper's neutral-weight placement (mean of the crossings).
    head_fn: a field's FlexiCubes head (see `predicted_weights`): its weights and deformation
    place the vertices as the paper does (the QEF is then off, whatever `sharp` says).
    tick: called between pieces of work (it may raise to stop)."""
    if resolution < 2:
        raise ValueError(f"Grid resolution must be at least 2, got {resolution}.")
    tick = tick or _no_tick
    grid = sample_sdf_grid(sdf_fn, resolution, bound, levels=levels, device=device, tick=tick)
    x_nx3 = FlexiCubes.grid_vertices(resolution, bound, device=grid.device, tick=tick)
    tick()
    with torch.no_grad():
        weights = {} if head_fn is None else predicted_weights(head_fn, grid.reshape(-1),
                                                                resolution, bound)[0]
        tick()
        sharp = sharp and head_fn is None
        normal_fn = (sdf_normal_fn(sdf_fn, 0.05 * 2.0 * bound / resolution, tick=tick)
                     if sharp else None)
        verts, faces, _ = FlexiCubes().extract(x_nx3, grid.reshape(-1), None, resolution,
                                               normal_fn=normal_fn, tick=tick, **weights)
    return (verts.detach().to("cpu", torch.float32).numpy(),
            faces.to("cpu").numpy().astype(np.int32))
