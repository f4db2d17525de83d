"""Surface extraction (engine/geometry/extract.py): closed, outward, coarse-to-fine == dense."""

import math

import numpy as np
import pytest
import torch

from engine.bench.shapes import TriplaneSDF, torus_sdf
from engine.geometry.extract import dense_grid, extract_surface, marching_cubes, sample_grid
from engine.geometry.mesh_ops import connected_components, is_edge_manifold, is_watertight
from ticking import Stop, stop_at


def sphere_sdf(p):
    return p.norm(dim=1) - 0.6


def box_sdf(p, half=0.5):
    q = p.abs() - half
    return q.clamp(min=0).norm(dim=1) + q.max(dim=1).values.clamp(max=0)


def plate_sdf(p):
    return torch.maximum(p[:, 2].abs() - 0.02, (p[:, :2].abs() - 0.6).max(dim=1).values)


def wobbly_sdf(p):
    """Not a distance (gradient up to ~3): the refinement must still follow the surface."""
    return 2.5 * (p.norm(dim=1) - 0.55 + 0.08 * torch.sin(7 * p[:, 0]) * torch.cos(5 * p[:, 1]))


SHAPES = {"sphere": sphere_sdf, "torus": torus_sdf, "box": box_sdf}
VOLUMES = {"sphere": 4 / 3 * math.pi * 0.6 ** 3, "torus": 2 * math.pi ** 2 * 0.5 * 0.2 ** 2, "box": 1.0}
GENUS = {"sphere": 0, "torus": 1, "box": 0}


@pytest.mark.parametrize("resolution", [32, 64])
@pytest.mark.parametrize("name", sorted(SHAPES))
def test_closed_manifold_outward(name, resolution):
    mesh = extract_surface(SHAPES[name], resolution)
    assert mesh.vertices_nx3.dtype == np.float32 and mesh.faces_fx3.dtype == np.int32
    assert is_edge_manifold(mesh) and is_watertight(mesh)
    assert connected_components(mesh)[0] == 1
    euler = mesh.num_vertices - mesh.num_faces * 3 // 2 + mesh.num_faces
    assert euler == 2 - 2 * GENUS[name]
    # outward faces: positive volume close to the true one; vertices lie on the surface
    assert mesh.volume() == pytest.approx(VOLUMES[name], rel=0.05)
    sdf_at_vertices = SHAPES[name](torch.from_numpy(mesh.vertices_nx3)).abs().max().item()
    assert sdf_at_vertices < 2.0 / resolution


def _surface_cell_corners(grid):
    """Samples that are corners of a cell with a sign change, (n+1)^3 bool."""
    inside = (grid < 0).astype(np.int8)
    count = sum(inside[i:i + grid.shape[0] - 1, j:j + grid.shape[1] - 1, k:k + grid.shape[2] - 1]
                for i in (0, 1) for j in (0, 1) for k in (0, 1))
    cells = (count > 0) & (count < 8)
    corners = np.zeros(grid.shape, dtype=bool)
    for i in (0, 1):
        for j in (0, 1):
            for k in (0, 1):
                corners[i:i + cells.shape[0], j:j + cells.shape[1], k:k + cells.shape[2]] |= cells
    return torch.from_numpy(corners)


def test_coarse_to_fine_equals_dense_near_surface():
    for fn in (torus_sdf, wobbly_sdf, plate_sdf):
        grid = sample_grid(fn, 64)
        dense = dense_grid(fn, 64)
        near = _surface_cell_corners(dense.numpy())
        assert near.sum() > 1000
        assert torch.equal(grid[near], dense[near])
        assert torch.equal(grid < 0, dense < 0)
        a, b = marching_cubes(grid), marching_cubes(dense)
        assert a.num_faces == b.num_faces > 0
        np.testing.assert_allclose(np.sort(a.vertices_nx3, axis=0), np.sort(b.vertices_nx3, axis=0),
                                   atol=1e-6)


def test_coarse_to_fine_queries_far_fewer_points():
    calls = []

    def counted(p):
        calls.append(p.shape[0])
        return torus_sdf(p)

    extract_surface(counted, 128, chunk=50000)
    assert max(calls) <= 50000
    assert sum(calls) < 0.15 * 129 ** 3


def test_shape_touching_the_bound_is_capped_and_closed():
    mesh = extract_surface(lambda p: p.norm(dim=1) - 1.3, 32)     # sphere larger than the cube
    assert is_watertight(mesh)
    assert np.abs(mesh.vertices_nx3).max() <= 1.0 + 1e-6
    points = np.random.default_rng(0).uniform(-1, 1, (200000, 3))
    expected = 8.0 * (np.linalg.norm(points, axis=1) < 1.3).mean()   # cube ∩ ball
    assert mesh.volume() == pytest.approx(expected, rel=0.03)


def test_sharp_box_on_grid_samples_stays_manifold():
    # faces of the box lie exactly on grid planes: sdf == 0 at many samples
    mesh = extract_surface(lambda p: box_sdf(p, 0.5), 32, levels=0)
    assert is_watertight(mesh)


def test_bound_scales_object_coordinates():
    mesh = extract_surface(lambda p: p.norm(dim=1) - 0.3, 32, bound=0.5)
    radius = np.linalg.norm(mesh.vertices_nx3, axis=1)
    assert abs(radius.mean() - 0.3) < 0.01


def test_empty_field_gives_empty_mesh():
    mesh = extract_surface(lambda p: p.norm(dim=1) + 1.0, 32)
    assert mesh.num_faces == 0 and mesh.num_vertices == 0


def test_triplane_mlp_field_is_closed():
    field = TriplaneSDF().eval()
    mesh = extract_surface(field, 64)
    assert is_watertight(mesh)
    dense = marching_cubes(dense_grid(field, 64))
    assert mesh.num_faces == dense.num_faces


def test_extraction_ticks_as_it_works_and_a_raising_tick_stops_it():
    """The engine's cancel lands at these ticks: grid sampling and marching cubes both tick."""
    count = stop_at(0)
    mesh = extract_surface(torus_sdf, 64, block=8, tick=count)
    assert is_watertight(mesh) and count.calls >= 20
    for call in (1, count.calls // 2, count.calls):
        with pytest.raises(Stop):
            extract_surface(torus_sdf, 64, block=8, tick=stop_at(call))
