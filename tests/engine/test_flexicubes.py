"""FlexiCubes: generated tables, watertight manifold meshes, accuracy vs PyMCubes, gradients,
fitting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

import engine.geometry.flexicubes as fcmod
from engine.bench.flexicubes import flexicubes_mesh, marching_cubes_baseline
from engine.bench.shapes import SHAPES
from engine.evaluation.metrics import exact_surface_quality, exact_surface_samples
from engine.geometry.flexicubes import (
    FlexiCubes, deviation_loss, extract_flexicubes, sample_sdf_grid, sdf_sign_flip_loss,
    weight_magnitude_loss,
)
from engine.geometry.flexicubes_tables import (
    EDGES_12x2, FACE_CORNERS_6x4, FACE_EDGES_6x4, build_tables,
)
from engine.geometry.mesh_ops import edge_manifold_report
from ticking import Stop, stop_at

SAMPLES = 8000


@pytest.fixture(autouse=True)
def _threads(request):
    """Two threads for the big grids; one for the many tiny ops of the small problems (extra
    threads only spin there, badly so on a loaded machine)."""
    old = torch.get_num_threads()
    torch.set_num_threads(2 if "analytic_shape" in request.node.name else 1)
    yield
    torch.set_num_threads(old)


def _signed_volume(v: np.ndarray, f: np.ndarray) -> float:
    t = v.astype(np.float64)[f]
    return float(np.einsum("ij,ij->i", t[:, 0], np.cross(t[:, 1], t[:, 2])).sum() / 6.0)


# ---------------------------------------------------------------- tables and grid


def test_tables_are_consistent_groupings_of_all_256_configurations():
    t = build_tables()
    assert t.edge_group_rx12.shape[1] == 12 and t.num_groups_r[0] == 0 and t.num_groups_r[255] == 0
    assert t.num_groups_r.max() == 4
    for case in range(256):
        inside = [(case >> k) & 1 for k in range(8)]
        crossed = [inside[a] != inside[b] for a, b in EDGES_12x2]
        row = t.edge_group_rx12[case]
        assert [g >= 0 for g in row] == crossed
        assert set(row[row >= 0]) == set(range(t.num_groups_r[case]))
        for face in range(6):   # a face with one contour segment keeps both ends in one group
            fe = [e for e in FACE_EDGES_6x4[face] if crossed[e]]
            if len(fe) == 2:
                assert row[fe[0]] == row[fe[1]]
    doubles = np.nonzero(t.double_face_256 >= 0)[0]
    assert len(doubles) > 0
    for case in doubles:
        face = t.double_face_256[case]
        alt = t.edge_group_rx12[t.alt_row_256[case]]
        assert len({t.edge_group_rx12[case][e] for e in FACE_EDGES_6x4[face]}) == 1
        assert len({alt[e] for e in FACE_EDGES_6x4[face]}) == 2
        corners = [(case >> k) & 1 for k in FACE_CORNERS_6x4[face]]
        assert corners[0] == corners[2] != corners[1] == corners[3]        # ambiguous face


def test_grid_convention():
    res = 3
    x, cubes = FlexiCubes.grid(res, bound=0.5)
    assert x.device.type == "cpu" and cubes.dtype == torch.int32
    assert x.shape == (64, 3) and cubes.shape == (27, 8)
    assert torch.allclose(x.min(0).values, torch.full((3,), -0.5))
    assert torch.allclose(x[1] - x[0], torch.tensor([0.0, 0.0, 1.0 / 3]))  # k (z) is fastest
    cube = (1 * res + 2) * res + 0                                          # cube (1, 2, 0)
    for k in range(8):
        expect = torch.tensor([1 + (k & 1), 2 + ((k >> 1) & 1), (k >> 2) & 1]) / 3.0 - 0.5
        assert torch.allclose(x[cubes[cube, k].long()], expect)


# ---------------------------------------------------------------- topology


def _box_boundary_positive(sdf: torch.Tensor, res: int) -> torch.Tensor:
    g = sdf.reshape(res + 1, res + 1, res + 1).clone()
    for axis in range(3):
        for end in (0, res):
            g.select(axis, end).clamp_(min=0.1)
    return g.reshape(-1)


@pytest.mark.parametrize("training", [False, True])
def test_random_fields_are_watertight_and_edge_manifold(training):
    """Noise fields hit every configuration, including both-sides ambiguous faces."""
    fc = FlexiCubes()
    res = 8
    x, cubes = fc.grid(res)
    gen = torch.Generator().manual_seed(1)
    for trial in range(12):
        sdf = torch.randn(x.shape[0], generator=gen) + 0.3 * (trial % 3 - 1)
        sdf = _box_boundary_positive(sdf, res)
        gamma = torch.randn(res ** 3, generator=gen)
        v, f, l_dev = fc(x, sdf, cubes, res, gamma_f=gamma, training=training)
        rep = edge_manifold_report(f.numpy())
        assert rep["ok"], (trial, rep)
        assert f.dtype == torch.int32 and int(f.max()) < v.shape[0]
        assert torch.isfinite(v).all() and torch.isfinite(l_dev).all()


def test_double_pass_resolution_is_what_keeps_random_fields_manifold(monkeypatch):
    res = 10
    x, cubes = FlexiCubes.grid(res)
    gen = torch.Generator().manual_seed(2)
    fields = [_box_boundary_positive(torch.randn(x.shape[0], generator=gen), res) for _ in range(5)]
    monkeypatch.setattr(fcmod, "_resolve_double_passes", lambda cube_s, case_s, *a: case_s.clone())
    broken = [not edge_manifold_report(FlexiCubes()(x, s, cubes, res)[1].numpy())["ok"]
              for s in fields]
    assert any(broken)


# ---------------------------------------------------------------- analytic shapes


CASES = [(name, res) for name in SHAPES for res in (32, 64)] + [("box", 128), ("torus", 128)]


@pytest.fixture(scope="module")
def surfaces():
    return {name: exact_surface_samples(fn, SAMPLES, seed=1) for name, fn in SHAPES.items()}


@pytest.mark.parametrize("name,res", CASES)
def test_analytic_shape_closed_manifold_and_more_accurate_than_mcubes(name, res, surfaces):
    fn = SHAPES[name]
    grid = sample_sdf_grid(fn, res, levels=0)
    v, f = flexicubes_mesh(grid, sdf_fn=fn)                 # what extract_flexicubes returns
    vp, fp = flexicubes_mesh(grid)                          # the paper's neutral weights
    vm, fmc = marching_cubes_baseline(grid)
    for faces in (f, fp):
        rep = edge_manifold_report(faces)
        assert rep["ok"], rep
    assert _signed_volume(v, f) > 0                         # outward faces
    q = exact_surface_quality(v, f, fn, SAMPLES, surface=surfaces[name])
    qp = exact_surface_quality(vp, fp, fn, SAMPLES, surface=surfaces[name])
    qm = exact_surface_quality(vm, fmc, fn, SAMPLES, surface=surfaces[name])
    h = 2.0 / res
    assert qp["chamfer_l1"] < 0.2 * h and qp["normal_consistency"] > 0.95
    assert q["chamfer_l1"] < qm["chamfer_l1"]
    assert q["normal_consistency"] > qm["normal_consistency"] - 2e-3
    if name == "box":                                       # sharp edges: strictly better on both
        assert q["chamfer_l1"] < 0.75 * qm["chamfer_l1"]
        assert q["normal_consistency"] > qm["normal_consistency"]


def test_extract_flexicubes_matches_pipeline_role():
    # a sphere poking out of the bound is capped: still closed
    big = lambda p: p.norm(dim=-1) - 1.15                   # noqa: E731
    v, f = extract_flexicubes(big, 24)
    assert v.dtype == np.float32 and f.dtype == np.int32
    assert edge_manifold_report(f)["ok"] and np.abs(v).max() <= 1.0 + 1e-6
    # coarse-to-fine sampling gives the same mesh as dense sampling near the surface
    v2, f2 = extract_flexicubes(SHAPES["torus"], 32, levels=2)
    v0, f0 = extract_flexicubes(SHAPES["torus"], 32, levels=0)
    assert np.array_equal(f2, f0) and np.allclose(v2, v0, atol=1e-5)
    ve, fe = extract_flexicubes(lambda p: p.norm(dim=-1) + 0.5, 16)
    assert ve.shape == (0, 3) and fe.shape == (0, 3)


def test_outputs_follow_input_device_and_dtype():
    x, cubes = FlexiCubes.grid(8, dtype=torch.float64)
    sdf = x.norm(dim=1) - 0.5
    v, f, l_dev = FlexiCubes()(x, sdf, cubes, 8)
    assert v.dtype == torch.float64 and v.device == x.device and l_dev.shape[0] == v.shape[0]
    with pytest.raises(ValueError):
        FlexiCubes()(x, sdf, cubes[:-1], 8)


# ---------------------------------------------------------------- splitting


def test_training_splits_quads_in_four_and_gamma_picks_the_inference_diagonal():
    fc = FlexiCubes()
    res = 12
    x, cubes = fc.grid(res)
    sdf = SHAPES["sphere"](x)
    v_inf, f_inf, _ = fc(x, sdf, cubes, res)
    v_tr, f_tr, _ = fc(x, sdf, cubes, res, training=True)
    n_quads = f_inf.shape[0] // 2
    assert f_tr.shape[0] == 4 * n_quads and v_tr.shape[0] == v_inf.shape[0] + n_quads
    assert edge_manifold_report(f_tr.numpy())["ok"]
    # gamma: a huge weight on one cube's vertex makes every quad through it split at that vertex
    gamma = torch.zeros(res ** 3)
    a, b = fc(x, sdf, cubes, res, gamma_f=gamma)[1], fc(x, sdf, cubes, res, gamma_f=gamma - 0.0)[1]
    assert torch.equal(a, b)
    gamma_hi = gamma.clone()
    gamma_hi[::7] = 20.0
    f_hi = fc(x, sdf, cubes, res, gamma_f=gamma_hi)[1]
    assert not torch.equal(torch.sort(f_hi, 1).values, torch.sort(a, 1).values)
    assert edge_manifold_report(f_hi.numpy())["ok"]


# ---------------------------------------------------------------- gradients


def _small_problem():
    fc = FlexiCubes()
    res = 4
    x, cubes = fc.grid(res, dtype=torch.float64)
    c = torch.tensor([0.05, -0.03, 0.02], dtype=torch.float64)
    sdf = (x - c).norm(dim=1) - 0.55
    g = torch.Generator().manual_seed(0)
    f = res ** 3
    rnd = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64) * 0.3     # noqa: E731
    return fc, res, x, cubes, c, sdf, rnd(f, 12), rnd(f, 8), rnd(f), rnd(x.shape[0], 3)


def test_gradcheck_sdf_weights_and_deformation():
    fc, res, x, cubes, _, sdf, beta, alpha, gamma, deform = _small_problem()

    def fn(sdf, beta, alpha, gamma, deform):
        v, _, l_dev = fc(x, sdf, cubes, res, beta, alpha, gamma, deform, training=True)
        return v, l_dev

    inputs = [t.clone().requires_grad_(True) for t in (sdf, beta, alpha, gamma, deform)]
    assert gradcheck(fn, inputs, eps=1e-6, atol=1e-5, fast_mode=True)
    v, l_dev = fn(*inputs)
    (v.sum() + l_dev.sum()).backward()
    for t in inputs:                                        # every input really receives gradient
        assert t.grad is not None and t.grad.abs().sum() > 0


def test_gradcheck_sharp_placement():
    fc, res, x, cubes, c, sdf, beta, alpha, _, deform = _small_problem()
    normal_fn = lambda p: p - c                             # noqa: E731  exact sphere normals

    def fn(sdf, beta, alpha, deform):
        v, _, l_dev = fc(x, sdf, cubes, res, beta, alpha, None, deform, normal_fn=normal_fn)
        return v, l_dev

    inputs = [t.clone().requires_grad_(True) for t in (sdf, beta, alpha, deform)]
    assert gradcheck(fn, inputs, eps=1e-6, atol=1e-5, fast_mode=True)


# ---------------------------------------------------------------- regularisers


def test_regularisers():
    res = 6
    x, _ = FlexiCubes.grid(res)
    sdf = (x.norm(dim=1) - 0.5).requires_grad_(True)
    flip = sdf_sign_flip_loss(sdf, res)
    flip.backward()
    assert flip > 0 and sdf.grad.abs().sum() > 0
    assert sdf_sign_flip_loss(x.norm(dim=1) + 1.0, res) == 0
    w = torch.tensor([[1.0, -3.0]])
    assert torch.isclose(weight_magnitude_loss(w, None, torch.zeros(4)), torch.tensor(1.0))
    # L_dev is zero on a flat surface with neutral weights (all crossings equidistant)
    plane = x[:, 2] - 0.013
    _, _, l_dev = FlexiCubes()(x, plane, None, res)
    assert deviation_loss(l_dev) < 1e-5
    _, _, l_sph = FlexiCubes()(x, x.norm(dim=1) - 0.5, None, res)
    assert deviation_loss(l_sph) > 1e-4


# ---------------------------------------------------------------- fitting


def test_fitting_sdf_and_weights_to_a_target_lowers_the_loss_steadily():
    """A small version of the paper's experiment: an SDF grid, weights and deformation fitted to
    a box (sharp edges) from a sphere by a two-sided point loss."""
    torch.manual_seed(0)
    fc = FlexiCubes()
    res = 16
    x, cubes = fc.grid(res)
    target = SHAPES["box"]
    tgt_pts = torch.from_numpy(exact_surface_samples(target, 1500, seed=3)[0]).float()
    sdf = (x.norm(dim=1) - 0.45).requires_grad_(True)
    beta = torch.zeros(res ** 3, 12, requires_grad=True)
    alpha = torch.zeros(res ** 3, 8, requires_grad=True)
    gamma = torch.zeros(res ** 3, requires_grad=True)
    deform = torch.zeros(x.shape[0], 3, requires_grad=True)
    opt = torch.optim.Adam([sdf, beta, alpha, gamma, deform], lr=0.02)
    losses = []
    for _ in range(50):
        v, f, l_dev = fc(x, sdf, cubes, res, beta, alpha, gamma, deform, training=True)
        tri = v[f.long()]                                               # (F, 3, 3)
        area = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=1).norm(dim=1)
        bary = torch.distributions.Dirichlet(torch.ones(3)).sample((len(f),))
        pts = (tri * bary[:, :, None]).sum(1)
        to_target = (target(pts).abs() * area).sum() / area.sum()
        to_mesh = torch.cdist(tgt_pts, pts).min(1).values.mean()
        point_loss = to_target + to_mesh
        loss = point_loss + 0.1 * deviation_loss(l_dev) + 1e-3 * sdf_sign_flip_loss(sdf, res)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(point_loss.item())
    windows = np.array(losses).reshape(5, 10).mean(1)
    assert losses[-1] < 0.3 * losses[0]
    assert (np.diff(windows) < 0).all(), windows


def test_extract_flexicubes_ticks_as_it_works_and_a_raising_tick_stops_it():
    """The engine's cancel lands at these ticks: sampling, normals, QEF and quads all tick."""
    count = stop_at(0)
    verts, faces = extract_flexicubes(SHAPES["torus"], 48, tick=count)
    assert len(faces) and count.calls >= 10
    for call in (1, count.calls // 2, count.calls):
        with pytest.raises(Stop):
            extract_flexicubes(SHAPES["torus"], 48, tick=stop_at(call))
