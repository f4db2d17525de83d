"""Texture stage (engine/geometry/texture.py): unwrap without overlaps, accurate bake."""

import math

import numpy as np
import pytest
import torch

from engine.bench.shapes import smooth_rgb, torus_sdf
from engine.geometry.extract import extract_surface
from engine.geometry.mesh_ops import clean
from engine.geometry.texture import (_atlas, _initial_charts, bake_texture, rasterize,
                                     sample_texture, unwrap, vertex_colors)
from ticking import Stop, stop_at


def spring_sdf(p, radius=0.5, pitch=0.3, tube=0.08):
    """A coil over ~4 turns: its upward-facing strip overlaps itself in a top view."""
    r = torch.sqrt(p[:, 0] ** 2 + p[:, 1] ** 2)
    base = pitch * torch.atan2(p[:, 1], p[:, 0]) / (2 * math.pi)
    z0 = base + torch.round((p[:, 2] - base) / pitch) * pitch
    d = torch.sqrt((r - radius) ** 2 + (0.9 * (p[:, 2] - z0)) ** 2) - tube
    return torch.maximum(d, p[:, 2].abs() - 0.6)


@pytest.fixture(scope="module")
def torus_mesh():
    return clean(extract_surface(torus_sdf, 64), 6000)


@pytest.fixture(scope="module")
def torus_baked(torus_mesh):
    return bake_texture(torus_mesh, smooth_rgb, 512)


def surface_samples(mesh, n=100000, seed=0):
    """Random points on the faces: (points, uvs)."""
    rng = np.random.default_rng(seed)
    v = mesh.vertices_nx3.astype(np.float64)
    f = mesh.faces_fx3
    area = np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
    face = rng.choice(len(f), n, p=area / area.sum())
    r = rng.random((n, 2))
    flip = r.sum(axis=1) > 1
    r[flip] = 1 - r[flip]
    w = np.stack([1 - r.sum(axis=1), r[:, 0], r[:, 1]], axis=1)[:, :, None]
    return (v[f[face]] * w).sum(axis=1), (mesh.uvs_nx2[f[face]].astype(np.float64) * w).sum(axis=1)


def bake_error(mesh, rgb_fn=smooth_rgb):
    points, uvs = surface_samples(mesh)
    got = sample_texture(mesh.texture_hxwx3, uvs)
    want = rgb_fn(torch.from_numpy(points).float()).numpy() * 255.0
    return np.abs(got - want).mean()


def texel_coverage(mesh):
    """How many faces' UV triangles hold each texel centre strictly inside, by a plain loop."""
    h, w = mesh.texture_hxwx3.shape[:2]
    count = np.zeros((h, w), np.int32)
    tri = mesh.uvs_nx2[mesh.faces_fx3].astype(np.float64) * [w, h]
    tri[..., 1] = h - tri[..., 1]                                    # pixel rows
    for t in tri:
        x0, y0 = np.floor(t.min(axis=0)).astype(int)
        x1, y1 = np.ceil(t.max(axis=0)).astype(int)
        xs, ys = np.meshgrid(np.arange(x0, x1 + 1) + 0.5, np.arange(y0, y1 + 1) + 0.5)
        signs = []
        for k in range(3):
            a, b = t[k], t[(k + 1) % 3]
            signs.append((b[0] - a[0]) * (ys - a[1]) - (b[1] - a[1]) * (xs - a[0]))
        s = np.stack(signs)
        inside = (s > 1e-6).all(axis=0) | (s < -1e-6).all(axis=0)
        rows, cols = (ys[inside] - 0.5).astype(int), (xs[inside] - 0.5).astype(int)
        count[rows, cols] += 1
    return count


def test_bake_reproduces_the_field(torus_mesh, torus_baked):
    assert bake_error(torus_baked) < 3.0
    assert torus_baked.num_faces == torus_mesh.num_faces
    assert torus_baked.texture_hxwx3.shape == (512, 512, 3)
    # vertices were only split along seams: every one sits where a source vertex is
    src = {tuple(v) for v in torus_mesh.vertices_nx3.tolist()}
    assert all(tuple(v) in src for v in torus_baked.vertices_nx3.tolist())


def test_uvs_inside_unit_square_and_charts_do_not_overlap(torus_baked):
    uv = torus_baked.uvs_nx2
    assert uv.min() >= 0.0 and uv.max() <= 1.0
    count = texel_coverage(torus_baked)
    assert count.max() == 1
    assert (count > 0).mean() > 0.3                                   # the atlas is used


def test_no_dark_texels_outside_charts(torus_baked):
    # the field never goes below 0.1 * 255: every texel, in a chart or not, must hold colour
    assert torus_baked.texture_hxwx3.min() >= 20


def test_snapping_to_the_field_surface(torus_mesh):
    coarse = clean(extract_surface(torus_sdf, 32), 800)              # far from the true surface

    def radial_rgb(p):
        # colour that changes across the surface: only right when the point is on it
        d = torus_sdf(p)
        return torch.stack([0.5 + 4 * d, 0.5 + 0 * d, 0.5 - 4 * d], dim=1).clamp(0, 1)

    plain = bake_texture(coarse, radial_rgb, 256)
    snapped = bake_texture(coarse, radial_rgb, 256, sdf_fn=torus_sdf)
    target = np.array([127.5, 127.5, 127.5])
    points, uvs = surface_samples(snapped, 20000)
    err_snapped = np.abs(sample_texture(snapped.texture_hxwx3, uvs) - target).mean()
    points, uvs = surface_samples(plain, 20000)
    err_plain = np.abs(sample_texture(plain.texture_hxwx3, uvs) - target).mean()
    # texels hold integers and the target is 127.5: 0.5 is as close as a bake can come
    assert err_snapped < max(0.25 * err_plain, 0.5)
    assert err_plain > 1.5


def test_self_overlapping_charts_are_split():
    mesh = clean(extract_surface(spring_sdf, 64), 6000)
    chart, group, _ = _initial_charts(mesh)
    atlas = _atlas(mesh, chart, group, 512, 4)
    assert rasterize(atlas.pixels_mx2[atlas.faces_fx3], 512).overlapping_faces.size > 0
    atlas, raster = unwrap(mesh, 512)
    assert raster.overlapping_faces.size == 0
    baked = bake_texture(mesh, smooth_rgb, 512)
    assert texel_coverage(baked).max() == 1
    assert bake_error(baked) < 3.0


def test_vertex_colors_match_the_field(torus_mesh):
    out = vertex_colors(torus_mesh, smooth_rgb)
    want = smooth_rgb(torch.from_numpy(torus_mesh.vertices_nx3)).numpy() * 255.0
    assert out.vertex_colors_nx3.dtype == np.uint8
    assert np.abs(out.vertex_colors_nx3 - want).max() <= 0.5 + 1e-3


def test_sample_texture_convention():
    tex = np.zeros((4, 4, 3), np.uint8)
    tex[0, 0] = 255                                                   # top-left texel
    assert sample_texture(tex, np.array([[0.125, 0.875]]))[0, 0] == 255   # v up: top is v=1
    assert sample_texture(tex, np.array([[0.125, 0.125]]))[0, 0] == 0


def test_detach_gives_each_overlapping_face_its_own_chart_and_keeps_the_rest():
    from engine.geometry.texture import _detach
    chart = np.array([0, 0, 0, 1, 1, 2])
    out = _detach(chart, np.array([1, 4]))
    assert out[0] == out[2] and out[0] != out[1]          # chart 0 keeps faces 0 and 2
    assert out[3] != out[4] and out[5] not in (out[1], out[4])
    assert len(set(out.tolist())) == 5 and out.max() == 4  # ids renumbered 0..C-1


def test_baking_ticks_as_it_works_and_a_raising_tick_stops_it(torus_mesh):
    """The engine's cancel lands at these ticks: unwrap, rasterising, queries, fill all tick."""
    count = stop_at(0)
    baked = bake_texture(torus_mesh, smooth_rgb, 512, sdf_fn=torus_sdf, tick=count)
    assert baked.texture_hxwx3.shape == (512, 512, 3) and count.calls >= 10
    for call in (1, count.calls // 2, count.calls):
        with pytest.raises(Stop):
            bake_texture(torus_mesh, smooth_rgb, 512, sdf_fn=torus_sdf, tick=stop_at(call))
