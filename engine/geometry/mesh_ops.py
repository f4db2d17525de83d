"""Mesh clean-up: small parts, degenerate faces, decimation, normals, topology checks.

All numpy (scipy for connected components); decimation uses fast-simplification
(quadric edge collapse), imported lazily.
"""

from __future__ import annotations

import numpy as np

from .mesh import Mesh


# ---------------------------------------------------------------- topology checks


def _half_edges(faces_fx3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Directed edges (a -> b) of every face, as (3F,) int64 arrays a, b (face-major)."""
    f = faces_fx3.astype(np.int64)
    return f.reshape(-1), f[:, [1, 2, 0]].reshape(-1)


def is_edge_manifold(mesh: Mesh) -> bool:
    """Every undirected edge is shared by exactly two faces (closed, no fins)."""
    if mesh.num_faces == 0:
        return False
    a, b = _half_edges(mesh.faces_fx3)
    key = np.minimum(a, b) * mesh.num_vertices + np.maximum(a, b)
    _, counts = np.unique(key, return_counts=True)
    return bool((counts == 2).all())


def is_watertight(mesh: Mesh) -> bool:
    """Closed, edge-manifold and consistently oriented: each directed edge occurs once and
    its reverse occurs once."""
    if mesh.num_faces == 0 or (mesh.faces_fx3[:, 0] == mesh.faces_fx3[:, 1]).any():
        return False
    a, b = _half_edges(mesh.faces_fx3)
    n = mesh.num_vertices
    key = np.sort(a * n + b)
    if (key[1:] == key[:-1]).any():
        return False
    reverse = b * n + a
    pos = np.searchsorted(key, reverse)
    pos = np.minimum(pos, key.size - 1)
    return bool((key[pos] == reverse).all())


# ---------------------------------------------------------------- clean-up


def remove_unused_vertices(mesh: Mesh) -> Mesh:
    used = np.zeros(mesh.num_vertices, dtype=bool)
    used[mesh.faces_fx3.reshape(-1)] = True
    if used.all():
        return mesh
    remap = np.cumsum(used) - 1
    keep = lambda arr: None if arr is None else arr[used]  # noqa: E731
    return mesh.replace(vertices_nx3=mesh.vertices_nx3[used], faces_fx3=remap[mesh.faces_fx3],
                        normals_nx3=keep(mesh.normals_nx3), uvs_nx2=keep(mesh.uvs_nx2),
                        vertex_colors_nx3=keep(mesh.vertex_colors_nx3))


def remove_degenerate(mesh: Mesh) -> Mesh:
    """Drop faces that repeat a vertex, duplicated faces, and unused vertices.

    Zero-area faces with three distinct vertices are kept: removing them would open holes
    (decimation collapses them instead).
    """
    f = mesh.faces_fx3
    ok = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 2] != f[:, 0])
    f = f[ok]
    if f.shape[0]:
        _, first = np.unique(np.sort(f, axis=1), axis=0, return_index=True)
        f = f[np.sort(first)]
    return remove_unused_vertices(mesh.replace(faces_fx3=f))


def connected_components(mesh: Mesh) -> tuple[int, np.ndarray]:
    """(count, label per face) of the parts connected through shared vertices."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as cc

    a, b = _half_edges(mesh.faces_fx3)
    n = mesh.num_vertices
    graph = coo_matrix((np.ones(a.size, dtype=np.int8), (a, b)), shape=(n, n))
    count, vertex_labels = cc(graph, directed=False)
    return int(count), vertex_labels[mesh.faces_fx3[:, 0]]


def remove_small_components(mesh: Mesh, min_fraction: float = 0.02) -> Mesh:
    """Drop parts with fewer than min_fraction of all faces (the largest part always stays)."""
    if mesh.num_faces == 0:
        return mesh
    count, labels = connected_components(mesh)
    if count == 1:
        return mesh
    sizes = np.bincount(labels, minlength=count)
    keep_label = sizes >= min_fraction * mesh.num_faces
    keep_label[np.argmax(sizes)] = True
    return remove_unused_vertices(mesh.replace(faces_fx3=mesh.faces_fx3[keep_label[labels]]))


# ---------------------------------------------------------------- decimation and normals


def decimate(mesh: Mesh, target_faces: int, aggressiveness: float = 7.0) -> Mesh:
    """Quadric edge-collapse decimation to about target_faces (fast-simplification).

    Returns a mesh with geometry only (per-vertex attributes are dropped: recompute them).
    """
    if target_faces <= 0 or mesh.num_faces <= target_faces:
        return mesh
    try:
        import fast_simplification
    except ImportError as exc:  # pragma: no cover - dependency missing
        raise ImportError("Decimation needs fast-simplification: pip install fast-simplification") from exc
    verts, faces = fast_simplification.simplify(mesh.vertices_nx3, mesh.faces_fx3,
                                                target_count=int(target_faces), agg=aggressiveness)
    return Mesh(verts.astype(np.float32), faces.astype(np.int32))


def compute_normals(mesh: Mesh) -> Mesh:
    """Area-weighted unit vertex normals."""
    face_n = mesh.face_normals()                      # (F, 3), length = 2 * area
    normals = np.zeros((mesh.num_vertices, 3), dtype=np.float64)
    idx = mesh.faces_fx3.reshape(-1)
    rep = np.repeat(face_n, 3, axis=0)
    for k in range(3):
        normals[:, k] = np.bincount(idx, weights=rep[:, k], minlength=mesh.num_vertices)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.where(length > 0, normals / np.maximum(length, 1e-30), np.array([0.0, 0.0, 1.0]))
    return mesh.replace(normals_nx3=normals.astype(np.float32))


def clean(mesh: Mesh, target_faces: int | None = None, min_fraction: float = 0.02) -> Mesh:
    """Degenerate faces out, small floating parts out, decimate to the budget, normals in."""
    mesh = remove_degenerate(mesh)
    mesh = remove_small_components(mesh, min_fraction)
    if target_faces:
        mesh = remove_degenerate(decimate(mesh, target_faces))
    return compute_normals(mesh)
