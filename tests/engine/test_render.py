"""Cameras, Plücker rays, SDF sphere tracing and mesh ray casting (engine/render)."""

import math

import numpy as np
import pytest
import torch

from engine.render import (camera_rays, orbit_cameras, plucker, project, render, render_mesh,
                           shade)
from engine.render.tracer import sphere_trace


def _sphere(r=0.6, center=(0.0, 0.0, 0.0)):
    c = torch.tensor(center)
    return lambda p: (p - c).norm(dim=1) - r


def _ray_sphere(o, d, r=0.6):
    """Analytic first intersection distance of unit rays with a sphere at the origin."""
    b = (o * d).sum(-1)
    disc = b * b - ((o * o).sum(-1) - r * r)
    return -b - disc.clamp(min=0).sqrt(), disc > 0



pytestmark = pytest.mark.usefixtures("one_torch_thread")

# ----------------------------------------------------------------------------- cameras

def test_orbit_cameras_look_at_origin_z_up():
    c2w = orbit_cameras(5, radius=2.6, elevation_deg=[0, 10, 30, 60, -20], azimuth_deg=15.0)
    assert c2w.shape == (5, 4, 4)
    rot, pos = c2w[:, :3, :3], c2w[:, :3, 3]
    assert torch.allclose(pos.norm(dim=1), torch.full((5,), 2.6), atol=1e-5)
    assert torch.allclose(rot.transpose(1, 2) @ rot, torch.eye(3).expand(5, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(5), atol=1e-5)
    fwd = rot[:, :, 2]                                  # OpenCV: +z looks forward
    assert torch.allclose(fwd, -pos / pos.norm(dim=1, keepdim=True), atol=1e-5)
    assert (rot[:, 2, 1] < 0).all()                     # image "down" points down in Z-up world
    assert rot[:, 2, 0].abs().max() < 1e-5              # image "right" stays horizontal
    # azimuths spread evenly from the start angle; elevation as asked
    az = torch.rad2deg(torch.atan2(pos[:, 1], pos[:, 0]))
    assert torch.allclose(az[:2], torch.tensor([15.0, 87.0]), atol=1e-3)
    assert math.isclose(float(torch.rad2deg(torch.asin(pos[3, 2] / 2.6))), 60.0, abs_tol=1e-3)


def test_camera_rays_unit_and_centred():
    c2w = orbit_cameras(2, elevation_deg=25)
    origins, dirs = camera_rays(c2w, 40.0, 32)
    assert origins.shape == dirs.shape == (2, 32, 32, 3)
    assert torch.allclose(dirs.norm(dim=-1), torch.ones(2, 32, 32), atol=1e-5)
    assert torch.allclose(origins, c2w[:, None, None, :3, 3].expand_as(origins))
    centre = dirs[:, 15:17, 15:17].mean(dim=(1, 2))
    assert torch.allclose(centre / centre.norm(dim=-1, keepdim=True), c2w[:, :3, 2], atol=1e-4)
    # the corner-to-corner angle matches the field of view along each axis
    half = torch.acos((dirs[0, 16, 0] * c2w[0, :3, 2]).sum())
    assert abs(math.degrees(half) - 20.0 * (31 / 32)) < 0.8
    # row 0 is the top of the image: its rays point higher than the bottom row's
    assert (dirs[0, 0, :, 2] > dirs[0, -1, :, 2]).all()


def test_project_inverts_camera_rays():
    c2w = orbit_cameras(1, elevation_deg=30, azimuth_deg=40.0)[0]
    origins, dirs = camera_rays(c2w, 40.0, 16)
    pts = (origins + 2.0 * dirs).reshape(-1, 3)
    uv, z = project(pts, c2w, 40.0, 16)
    j, i = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="xy")
    assert torch.allclose(uv, torch.stack([j, i], -1).reshape(-1, 2) + 0.5, atol=1e-3)
    assert (z > 0).all()


def test_plucker_shape_orthogonality_and_invariance():
    c2w = orbit_cameras(3, elevation_deg=10)
    origins, dirs = camera_rays(c2w, 40.0, 8)
    p = plucker(origins, dirs)
    assert p.shape == (3, 8, 8, 6)
    assert torch.allclose(p[..., :3], dirs)
    assert ((p[..., :3] * p[..., 3:]).sum(-1)).abs().max() < 1e-5   # d . (o x d) = 0
    moved = plucker(origins + 0.7 * dirs, dirs)                      # same line, other origin
    assert torch.allclose(moved, p, atol=1e-5)


# ----------------------------------------------------------------------------- SDF tracing

def test_sphere_depth_matches_analytic_intersection():
    c2w = orbit_cameras(3, elevation_deg=[0, 35, -40])
    out = render(_sphere(), None, c2w, 40.0, 48)
    o, d = out["rays"]
    t_true, hit_true = _ray_sphere(o, d)
    hit = out["alpha"] > 0.5
    assert (hit == hit_true).float().mean() > 0.99          # may differ only on the rim
    both = hit & hit_true
    assert both.sum() > 1000
    pts = o + out["depth"][..., None] * d
    n_true = pts / pts.norm(dim=-1, keepdim=True)
    facing = both & ((-d * n_true).sum(-1) > 0.3)                   # not grazing the rim
    assert (out["depth"][facing] - t_true[facing]).abs().max() < 1e-4
    assert (out["depth"][both] - t_true[both]).abs().max() < 0.01
    assert (_sphere()(pts[both]).abs() < 1e-3).all()
    assert ((out["normal"] * n_true).sum(-1)[both] > 0.999).all()
    assert (out["depth"][~hit] == 0).all() and (out["normal"][~hit] == 0).all()


def test_render_outputs_and_white_background():
    out = render(_sphere(0.5), lambda p: torch.tensor([[1.0, 0.0, 0.0]]).expand(len(p), 3),
                 orbit_cameras(2), 40.0, 24)
    assert out["rgb"].shape == (2, 24, 24, 3) and out["alpha"].shape == (2, 24, 24)
    assert out["depth"].shape == (2, 24, 24) and out["normal"].shape == (2, 24, 24, 3)
    bg, fg = out["alpha"] == 0, out["alpha"] == 1
    assert torch.allclose(out["rgb"][bg], torch.ones(3))
    assert torch.allclose(out["rgb"][fg], torch.tensor([1.0, 0.0, 0.0]))
    lit = shade(out["rgb"], out["normal"], out["alpha"], out["rays"][1])
    assert torch.allclose(lit[bg], torch.ones(3)) and (lit[fg][:, 0] < 1).any()


def test_supersampling_gives_fractional_edges():
    out = render(_sphere(0.5), None, orbit_cameras(1), 40.0, 24, supersample=3)
    a = out["alpha"]
    assert a.shape == (1, 24, 24)
    assert ((a > 0.05) & (a < 0.95)).any()
    assert math.isclose(float(a.sum()), float(render(_sphere(0.5), None, orbit_cameras(1), 40.0,
                                                     72)["alpha"].sum()) / 9, rel_tol=0.02)


def test_depth_lands_on_the_surface_of_a_procedural_asset():
    from engine.data import make_asset
    asset = make_asset(3)   # a sofa: many parts, edges and rounded boxes
    out = render(asset.sdf, asset.rgb, orbit_cameras(2, elevation_deg=30), 40.0, 40)
    o, d = out["rays"]
    hit = out["alpha"] > 0.5
    pts = (o + out["depth"][..., None] * d)[hit]
    err = asset.sdf(pts).abs()
    assert hit.sum() > 300
    assert float(err.median()) < 2e-4
    assert float((err < 1e-3).float().mean()) > 0.9      # the rest: edge pixels, where
    footprint = math.tan(math.radians(20)) / 40 * 3.6   # the surface passes within half a
    assert float(err.max()) < footprint                  # pixel of the ray


def test_sphere_trace_misses_and_grazing_rays():
    o = torch.tensor([[0.0, -3.0, 0.0], [0.0, -3.0, 0.61], [0.0, -3.0, 0.3]])
    d = torch.tensor([[0.0, 1.0, 0.0]]).expand(3, 3).contiguous()
    t, hit = sphere_trace(_sphere(0.6), o, d, bound=1.0)
    assert hit.tolist() == [True, False, True]
    assert abs(float(t[0]) - 2.4) < 1e-4
    assert abs(float(t[2]) - (3.0 - math.sqrt(0.36 - 0.09))) < 1e-4


# ----------------------------------------------------------------------------- meshes

def test_mesh_render_matches_sdf_render_of_the_same_sphere():
    trimesh = pytest.importorskip("trimesh")
    m = trimesh.creation.icosphere(subdivisions=4, radius=0.6)
    c2w = orbit_cameras(2, elevation_deg=[20, -30])
    out_m = render_mesh(torch.as_tensor(m.vertices, dtype=torch.float32),
                        torch.as_tensor(m.faces), c2w, 40.0, 40)
    out_s = render(_sphere(0.6), None, c2w, 40.0, 40)
    assert out_m["rgb"].shape == (2, 40, 40, 3) and out_m["face"].shape == (2, 40, 40)
    agree = (out_m["alpha"] == out_s["alpha"]).float().mean()
    assert agree > 0.98
    both = (out_m["alpha"] > 0) & (out_s["alpha"] > 0)
    assert (out_m["depth"][both] - out_s["depth"][both]).abs().max() < 0.01   # facets
    assert ((out_m["normal"] * out_s["normal"]).sum(-1)[both] > 0.98).all()
    assert ((out_m["face"] >= 0) == (out_m["alpha"] > 0)).all()


def test_mesh_raycast_hits_the_nearest_face_of_a_box():
    trimesh = pytest.importorskip("trimesh")
    box = trimesh.creation.box((1.0, 1.0, 1.0))
    c2w = orbit_cameras(1, elevation_deg=0, azimuth_deg=0.0)     # looking along -x
    colors = lambda face, bary: torch.tensor([[0.0, 0.0, 1.0]]).expand(len(face), 3)
    out = render_mesh(torch.as_tensor(box.vertices, dtype=torch.float32),
                      torch.as_tensor(box.faces), c2w, 40.0, 32, color_fn=colors)
    hit = out["alpha"][0] > 0
    o, d = out["rays"]
    pts = (o + out["depth"][..., None] * d)[0][hit]
    assert torch.allclose(pts[:, 0], torch.full((len(pts),), 0.5), atol=1e-4)  # front face x=0.5
    assert torch.allclose(out["normal"][0][hit], torch.tensor([1.0, 0.0, 0.0]), atol=1e-5)
    assert torch.allclose(out["rgb"][0][hit], torch.tensor([0.0, 0.0, 1.0]))
    # the face spans |y|,|z| <= 0.5 at distance 2.1: its pixel footprint is known
    half_px = 0.5 / 2.1 / math.tan(math.radians(20)) * 16
    assert abs(int(hit.sum()) - (2 * half_px) ** 2) < 4 * 2 * half_px
    np.testing.assert_array_equal(hit.numpy(), hit.numpy()[::-1])  # symmetric top/bottom
