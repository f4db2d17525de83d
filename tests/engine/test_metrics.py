"""Evaluation metrics on point sets and meshes with known answers."""

import math

import numpy as np
import pytest

from engine.evaluation import metrics as M
from engine.geometry.mesh import Mesh


def sphere_points(n, seed, radius=1.0, center=(0.0, 0.0, 0.0)):
    x = np.random.default_rng(seed).normal(size=(n, 3))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x * radius + np.asarray(center)


def box_mesh(half=(1.0, 1.0, 1.0)):
    """Closed axis-aligned box, CCW faces seen from outside."""
    hx, hy, hz = half
    v = np.array([[x, y, z] for x in (-hx, hx) for y in (-hy, hy) for z in (-hz, hz)])
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = [f for a, b, c, d in quads for f in ((a, b, c), (a, c, d))]
    return Mesh(v, np.array(faces))


# ----------------------------------------------------------------------------- sampling

def test_sample_surface_on_faces_with_outward_normals():
    mesh = box_mesh((1.0, 0.5, 0.25))
    s = M.sample_surface(mesh, 4000, seed=1)
    p, nrm = s.points_nx3, s.normals_nx3
    on_face = np.isclose(np.abs(p) / [1.0, 0.5, 0.25], 1.0, atol=1e-5).any(1)
    assert on_face.all()
    assert np.allclose(np.linalg.norm(nrm, axis=1), 1.0, atol=1e-5)
    assert ((p * nrm).sum(1) > 0).all()          # outward


def test_sample_surface_is_area_weighted_and_deterministic():
    mesh = box_mesh((1.0, 1.0, 0.1))             # two big faces (z) hold 4 / 4.8 of the area
    a = M.sample_surface(mesh, 20000, seed=3)
    frac_z = (np.abs(a.normals_nx3[:, 2]) > 0.9).mean()
    assert abs(frac_z - 4 / 4.8) < 0.02
    b = M.sample_surface(mesh, 20000, seed=3)
    assert np.array_equal(a.points_nx3, b.points_nx3)


def test_sample_surface_rejects_empty_mesh():
    with pytest.raises(ValueError):
        M.sample_surface(Mesh(np.zeros((0, 3)), np.zeros((0, 3))), 10)


# ----------------------------------------------------------------------------- Chamfer

def test_chamfer_identical_is_zero_and_normals_agree():
    p = sphere_points(2048, 0)
    assert M.chamfer_l1(p, p) == 0.0
    assert M.chamfer_pointflow(p, p) == 0.0
    assert M.normal_consistency(p, p, p, p) == pytest.approx(1.0)


def test_chamfer_concentric_spheres_is_radius_gap():
    p = sphere_points(1000, 0)
    # each point's nearest neighbour on the scaled copy is its own image, at distance 0.2
    assert M.chamfer_l1(p, 1.2 * p) == pytest.approx(0.2, rel=1e-6)
    assert M.chamfer_pointflow(p, 1.2 * p) == pytest.approx(2 * 0.04, rel=1e-6)


@pytest.mark.parametrize("delta", [0.1, 0.3])
def test_chamfer_shifted_sphere_matches_analytic(delta):
    # A uniform point on a sphere lies at mean distance delta/2 from the same sphere
    # shifted by delta (any radius, delta <= 2r), with mean squared distance delta^2/3.
    a = sphere_points(30000, 1, radius=0.8)
    b = sphere_points(30000, 2, radius=0.8, center=(delta, 0.0, 0.0))
    assert M.chamfer_l1(a, b) == pytest.approx(delta / 2, rel=0.04)
    assert M.chamfer_pointflow(a, b) == pytest.approx(2 * delta ** 2 / 3, rel=0.06)


def test_normal_consistency_detects_perpendicular_normals():
    p = sphere_points(500, 0)
    n1 = np.tile([1.0, 0.0, 0.0], (500, 1))
    n2 = np.tile([0.0, 1.0, 0.0], (500, 1))
    assert M.normal_consistency(p, n1, p, n2) == pytest.approx(0.0, abs=1e-12)
    assert M.normal_consistency(p, n1, p, -n1) == pytest.approx(1.0)   # orientation-agnostic


# ----------------------------------------------------------------------------- PSNR

def test_psnr_known_mse():
    a = np.zeros((8, 8, 3))
    b = a + 0.1                                  # MSE 0.01 -> 20 dB
    assert M.psnr(a, b) == pytest.approx(20.0)
    assert M.psnr(a, a + 0.01) == pytest.approx(40.0)
    assert M.psnr(a, a) == M.PSNR_CAP_DB
    assert M.psnr(a * 255, b * 255, max_val=255.0) == pytest.approx(20.0)


# ----------------------------------------------------------------------------- COV / MMD / 1-NNA

def shape_family(k, seed, radius_lo=0.5, radius_hi=0.9, n=512):
    rng = np.random.default_rng(seed)
    return [sphere_points(n, seed * 1000 + i, radius=rng.uniform(radius_lo, radius_hi))
            for i in range(k)]


def test_identical_sets():
    S = shape_family(8, 0)
    g = M.generation_metrics(S, S)
    assert g["cov"] == 100.0
    assert g["mmd_cd"] == 0.0
    # memorisation: each cloud's leave-one-out nearest neighbour is its twin -> 0%
    assert g["one_nna"] == 0.0


def test_all_ties_gives_fractional_one_nna():
    one = sphere_points(256, 0)
    k = 5
    g = M.generation_metrics([one] * k, [one] * k)
    assert g["one_nna"] == pytest.approx(100.0 * (k - 1) / (2 * k - 1))
    assert g["mmd_cd"] == 0.0


def test_same_distribution_gives_about_half():
    # radii from one distribution, independent draws; Chamfer then mostly measures the
    # radius gap, so the 1-NN classifier is near chance
    G = shape_family(40, 1, n=128)
    R = shape_family(40, 2, n=128)
    g = M.generation_metrics(G, R)
    assert 30.0 <= g["one_nna"] <= 70.0
    assert g["cov"] >= 40.0


def test_separated_sets_and_mode_collapse():
    R = shape_family(6, 3, 0.3, 0.5)
    far = shape_family(6, 4, 1.5, 1.7)
    g = M.generation_metrics(far, R)
    assert g["one_nna"] == 100.0
    collapsed = [R[0] + 1e-3] * 6               # every generated shape is one reference
    c = M.generation_metrics(collapsed, R)
    assert c["cov"] == pytest.approx(100.0 / 6)
    assert c["mmd_cd"] > 0.0


def test_coverage_mmd_from_matrix():
    d = np.array([[0.1, 0.5, 0.9],
                  [0.2, 0.4, 0.3]])
    assert M.coverage(d) == pytest.approx(1 / 3)       # both pick reference 0
    assert M.mmd(d) == pytest.approx((0.1 + 0.4 + 0.3) / 3)


def test_nearest_reference_matches_full_search():
    refs = shape_family(12, 5, 0.3, 1.0)
    queries = shape_family(6, 6, 0.3, 1.0)
    idx, dist = M.nearest_reference(queries, refs, coarse_points=64, shortlist=4)
    full = M.pairwise_chamfer(queries, refs)
    assert np.array_equal(idx, full.argmin(1))
    assert np.allclose(dist, full.min(1))


# ----------------------------------------------------------------------------- colour

def test_dominant_color_from_vertex_colors_and_arrays():
    mesh = box_mesh()
    colors = np.tile(np.array([[204, 25, 25]], np.uint8), (8, 1))     # red
    colors[0] = (20, 20, 20)                                            # one black corner
    painted = mesh.replace(vertex_colors_nx3=colors)
    assert M.dominant_color(painted) == "red"
    assert M.dominant_color(np.array([[0.15, 0.3, 0.85]] * 3 + [[0.9, 0.9, 0.1]])) == "blue"
    assert M.dominant_color(mesh) is None                                # no colour at all


def test_dominant_color_from_texture():
    mesh = box_mesh()
    tex = np.zeros((4, 4, 3), np.uint8)
    tex[:] = (40, 150, 50)                                              # green
    painted = mesh.replace(uvs_nx2=np.full((8, 2), 0.5, np.float32), texture_hxwx3=tex)
    assert M.dominant_color(painted) == "green"


def test_asset_surface_lies_on_the_asset():
    torch = pytest.importorskip("torch")
    from engine.data import make_asset
    asset = make_asset(10**8 + 5)
    s = M.asset_surface(asset, n=512, seed=0, resolution=48)
    d = asset.sdf(torch.from_numpy(s.points_nx3)).abs()
    assert float(d.max()) < 2.0 / 48 * 2                 # within a cell of the surface
    assert s.colors_nx3.shape == (512, 3)
    assert M.dominant_color(s.colors_nx3) == asset.main_color


def test_near_sign_error_counts_wrong_signs_near_the_surface_only():
    true = np.array([0.01, -0.01, 0.04, -0.04, 0.5, -0.5])
    assert M.near_sign_error(true, true) == 0.0
    flipped = true.copy()
    flipped[[0, 4]] *= -1                  # one near point wrong, one far point wrong
    assert M.near_sign_error(flipped, true) == 0.25
    import torch
    assert M.near_sign_error(torch.tensor(-true), torch.tensor(true)) == 1.0
    assert math.isnan(M.near_sign_error(true, true + 1.0))
