"""Mesh clean-up (engine/geometry/mesh_ops.py): checks, parts, decimation budget, normals."""

import numpy as np
import pytest
import torch

from engine.geometry.benchmarks import torus_sdf
from engine.geometry.extract import extract_surface
from engine.geometry.mesh import Mesh
from engine.geometry.mesh_ops import (clean, compute_normals, connected_components, decimate,
                                      is_edge_manifold, is_watertight, remove_degenerate,
                                      remove_small_components, split_nonmanifold)

TETRA_V = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
TETRA_F = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], np.int32)


def tetra(offset=(0, 0, 0), scale=1.0):
    return Mesh(TETRA_V * scale + np.array(offset, np.float32), TETRA_F.copy())


def merge(*meshes):
    verts, faces, count = [], [], 0
    for m in meshes:
        verts.append(m.vertices_nx3)
        faces.append(m.faces_fx3 + count)
        count += m.num_vertices
    return Mesh(np.concatenate(verts), np.concatenate(faces))


def blobs_sdf(p):
    gen = torch.Generator().manual_seed(0)
    centres = torch.rand(12, 3, generator=gen) * 1.2 - 0.6
    radii = torch.rand(12, generator=gen) * 0.2 + 0.05
    return ((p[:, None, :] - centres[None]).norm(dim=2) - radii).min(dim=1).values


@pytest.fixture(scope="module")
def torus64():
    return extract_surface(torus_sdf, 64)


def test_checks_on_small_meshes():
    t = tetra()
    assert is_watertight(t) and is_edge_manifold(t) and t.volume() > 0
    open_mesh = Mesh(t.vertices_nx3, t.faces_fx3[:3])
    assert not is_watertight(open_mesh) and not is_edge_manifold(open_mesh)
    flipped = Mesh(t.vertices_nx3, np.concatenate([t.faces_fx3[:3], t.faces_fx3[3:, ::-1]]))
    assert is_edge_manifold(flipped) and not is_watertight(flipped)
    fin = Mesh(np.concatenate([t.vertices_nx3, [[1, 1, 1]]]),
               np.concatenate([t.faces_fx3, [[1, 2, 4]]]))
    assert not is_edge_manifold(fin) and not is_watertight(fin)


def test_remove_small_components_keeps_the_main_part(torus64):
    speck = tetra((0.9, 0.9, 0.9), 0.01)
    mesh = merge(torus64, speck)
    assert connected_components(mesh)[0] == 2
    cleaned = remove_small_components(mesh, 0.01)
    assert cleaned.num_faces == torus64.num_faces and cleaned.num_vertices == torus64.num_vertices
    assert is_watertight(cleaned)
    assert remove_small_components(speck, 0.5).num_faces == 4       # the largest part stays


def test_remove_degenerate():
    t = tetra()
    faces = np.concatenate([t.faces_fx3, [[0, 0, 1]], t.faces_fx3[:1], [[0, 1, 2], [0, 2, 1]][:1]])
    mesh = Mesh(np.concatenate([t.vertices_nx3, [[5, 5, 5]]]), faces)
    out = remove_degenerate(mesh)
    # repeated index, same-winding duplicate and the unused vertex go; [0,1,2] cancels [0,2,1]
    assert out.num_vertices == 4
    assert out.num_faces == 3
    assert not any(sorted(f) == [0, 1, 2] for f in out.faces_fx3.tolist())


@pytest.mark.parametrize("target", [8000, 3000, 500])
def test_decimate_hits_budget_and_stays_closed(torus64, target):
    out = decimate(torus64, target)
    assert abs(out.num_faces - target) <= 0.05 * target
    assert is_watertight(out)
    assert out.volume() == pytest.approx(torus64.volume(), rel=0.05 if target > 1000 else 0.15)


def test_decimate_below_budget_is_identity(torus64):
    assert decimate(torus64, torus64.num_faces + 10) is torus64


def test_clean_repairs_pinched_sheets_and_keeps_budget():
    # near-touching blobs: quadric collapse (fast-simplification 0.1.x) pinches two sheets
    # onto one edge here, which clean() must separate again
    mesh = extract_surface(blobs_sdf, 128)
    for target in (20000, 5000):
        out = clean(mesh, target)
        assert is_watertight(out)
        assert abs(out.num_faces - target) <= 0.05 * target
        assert out.normals_nx3 is not None and out.normals_nx3.shape == (out.num_vertices, 3)


def test_split_nonmanifold_separates_two_tetras_sharing_an_edge():
    # B is A turned 180 degrees about the x axis: the two touch only along edge 0-1
    b_verts = TETRA_V[2:] * np.array([1, -1, -1], np.float32)
    mesh = Mesh(np.concatenate([TETRA_V, b_verts]),
                np.concatenate([TETRA_F, np.array([0, 1, 4, 5])[TETRA_F]]))
    assert not is_edge_manifold(mesh)
    fixed = split_nonmanifold(mesh)
    assert is_watertight(fixed)
    assert fixed.num_faces == mesh.num_faces and fixed.num_vertices == mesh.num_vertices + 2
    assert connected_components(fixed)[0] == 2
    assert fixed.volume() == pytest.approx(mesh.volume()) and fixed.volume() > 0


def test_compute_normals_point_outward():
    mesh = compute_normals(extract_surface(lambda p: p.norm(dim=1) - 0.5, 32))
    n = mesh.normals_nx3
    assert np.allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-5)
    radial = mesh.vertices_nx3 / np.linalg.norm(mesh.vertices_nx3, axis=1, keepdims=True)
    assert (np.sum(n * radial, axis=1) > 0.95).all()
