"""Mesh clean-up: small parts, degenerate faces, decimation, normals, topology checks.

All numpy (scipy for connected components); decimation is Kiln's own manifold-safe
quadric edge collapse (`engine.geometry.simplify`).
"""

from __future__ import annotations

import numpy as np

from .mesh import Mesh
from .simplify import decimate_manifold


# ---------------------------------------------------------------- topology checks


def _half_edges(faces_fx3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Directed edges (a -> b) of every face, as (3F,) int64 arrays a, b (face-major)."""
    f = faces_fx3.astype(np.int64)
    return f.reshape(-1), f[:, [1, 2, 0]].reshape(-1)


def edge_manifold_report(faces_fx3: np.ndarray) -> dict:
    """What keeps faces from being a closed, edge-manifold, consistently oriented surface,
    counted: degenerate faces (a repeated corner), directed edges that occur more than
    once, directed edges whose reverse is missing (boundary or flipped), undirected edges
    not in exactly two faces. "ok": faces and none of these (every directed edge occurs
    once and its reverse once)."""
    f = np.asarray(faces_fx3, dtype=np.int64).reshape(-1, 3)
    degenerate = int(((f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 0] == f[:, 2])).sum())
    a, b = _half_edges(f)
    n = int(f.max()) + 1 if f.size else 1
    directed, counts = np.unique(a * n + b, return_counts=True)
    reverse_missing = int((~np.isin(b * n + a, directed)).sum())
    _, und_counts = np.unique(np.minimum(a, b) * n + np.maximum(a, b), return_counts=True)
    report = {"faces": int(len(f)), "degenerate_faces": degenerate,
              "repeated_directed_edges": int((counts > 1).sum()),
              "boundary_or_flipped_edges": reverse_missing,
              "edges_not_in_two_faces": int((und_counts != 2).sum())}
    report["ok"] = bool(len(f) > 0 and not any(v for k, v in report.items() if k != "faces"))
    return report


def is_edge_manifold(mesh: Mesh) -> bool:
    """Every undirected edge is shared by exactly two faces (closed, no fins)."""
    report = edge_manifold_report(mesh.faces_fx3)
    return report["faces"] > 0 and report["edges_not_in_two_faces"] == 0


def is_watertight(mesh: Mesh) -> bool:
    """Closed, edge-manifold and consistently oriented (edge_manifold_report's "ok")."""
    return edge_manifold_report(mesh.faces_fx3)["ok"]


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

    A face listed twice with the same winding keeps one copy; a face listed twice with
    opposite windings is a zero-thickness double wall and both copies go. Zero-area faces
    with three distinct vertices are kept: removing them would open holes (decimation
    collapses them instead).
    """
    f = mesh.faces_fx3
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 2] != f[:, 0])]
    if f.shape[0]:
        key_fwd = _row_keys(_canonical_rotation(f), mesh.num_vertices)
        key_rev = _row_keys(_canonical_rotation(f[:, ::-1]), mesh.num_vertices)
        keep = np.zeros(len(f), dtype=bool)
        keep[np.unique(key_fwd, return_index=True)[1]] = True  # one copy per winding
        keep &= ~np.isin(key_fwd, key_rev)                     # double walls cancel
        f = f[keep]
    return remove_unused_vertices(mesh.replace(faces_fx3=f))


def _canonical_rotation(f: np.ndarray) -> np.ndarray:
    """Rotate each face so its smallest index comes first (winding kept)."""
    start = np.argmin(f, axis=1)
    idx = (start[:, None] + np.arange(3)[None]) % 3
    return np.take_along_axis(f, idx, axis=1)


def _row_keys(f: np.ndarray, n: int) -> np.ndarray:
    f = f.astype(np.int64)
    return (f[:, 0] * n + f[:, 1]) * n + f[:, 2]


def connected_components(mesh: Mesh) -> tuple[int, np.ndarray]:
    """(count, label per face) of the parts connected through shared vertices."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as cc

    a, b = _half_edges(mesh.faces_fx3)
    n = mesh.num_vertices
    graph = coo_matrix((np.ones(a.size, dtype=np.int32), (a, b)), shape=(n, n))
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


# ---------------------------------------------------------------- manifold repair


def _pair_around_edge(verts: np.ndarray, faces: np.ndarray, u: int, v: int, members: np.ndarray):
    """Pair the faces on a non-manifold edge (u, v) so each pair bounds one solid wedge.

    Angles are measured about e = v - u. A face running u->v has the solid on its smaller-angle
    side, one running v->u on its larger-angle side; so each v->u face pairs with the next
    face counter-clockwise. Returns a list of (face, face) or None when that does not work.
    """
    e = verts[v] - verts[u]
    e = e / max(np.linalg.norm(e), 1e-30)
    ref = np.cross(e, [1.0, 0.0, 0.0] if abs(e[0]) < 0.9 else [0.0, 1.0, 0.0])
    ref /= np.linalg.norm(ref)
    angles, forward = [], []
    for f in members:
        tri = list(faces[f])
        w = [x for x in tri if x != u and x != v][0]
        d = verts[w] - verts[u]
        angles.append(np.arctan2(np.dot(np.cross(ref, d), e), np.dot(ref, d)))
        i = tri.index(u)
        forward.append(tri[(i + 1) % 3] == v)
    order = np.argsort(angles)
    ring = [(members[i], forward[i]) for i in order]
    pairs = []
    for k, (f, fwd) in enumerate(ring):
        if fwd:
            continue
        g, g_fwd = ring[(k + 1) % len(ring)]
        if not g_fwd:
            return None
        pairs.append((f, g))
    return pairs if 2 * len(pairs) == len(ring) else None


def _paired_faces(mesh: Mesh) -> np.ndarray:
    """(P, 2) faces that share an edge; on edges with more than two faces, the geometric
    pairs of `_pair_around_edge`."""
    faces = mesh.faces_fx3.astype(np.int64)
    n = mesh.num_vertices
    a, b = _half_edges(mesh.faces_fx3)
    key = np.minimum(a, b) * n + np.maximum(a, b)
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    counts = np.diff(np.r_[starts, key.size])
    face_of = order // 3
    two = starts[counts == 2]
    pairs = [np.stack([face_of[two], face_of[two + 1]], axis=1)]
    verts = mesh.vertices_nx3.astype(np.float64)
    for s, c in zip(starts[counts > 2], counts[counts > 2]):
        k = int(sorted_key[s])
        found = _pair_around_edge(verts, faces, k // n, k % n, face_of[s:s + c])
        if found:
            pairs.append(np.array(found, dtype=np.int64))
    return np.concatenate(pairs)


def split_nonmanifold(mesh: Mesh) -> Mesh:
    """Make the mesh edge-manifold by duplicating vertices where sheets only touch.

    Faces on an edge with more than two faces are paired geometrically; then every vertex
    gets one copy per fan of faces connected through its (paired) edges: the corners of two
    paired faces at a shared vertex are one vertex. Geometry is unchanged; per-vertex
    attributes are copied along.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as cc

    faces = mesh.faces_fx3.astype(np.int64)
    pairs = _paired_faces(mesh)
    fa, fb = faces[pairs[:, 0]], faces[pairs[:, 1]]
    rows, cols = np.nonzero((fa[:, :, None] == fb[:, None, :]).any(axis=2))   # shared corners of fa
    cols_b = np.argmax(fb[rows] == fa[rows, cols][:, None], axis=1)          # same vertex in fb
    corner_a = 3 * pairs[rows, 0] + cols
    corner_b = 3 * pairs[rows, 1] + cols_b
    graph = coo_matrix((np.ones(corner_a.size, dtype=np.int32), (corner_a, corner_b)),
                       shape=(3 * len(faces),) * 2)
    _, label = cc(graph, directed=False)
    _, first, new_faces = np.unique(label, return_index=True, return_inverse=True)
    source = faces.reshape(-1)[first]
    gather = lambda arr: None if arr is None else arr[source]  # noqa: E731
    return mesh.replace(vertices_nx3=mesh.vertices_nx3[source], faces_fx3=new_faces.reshape(-1, 3),
                        normals_nx3=gather(mesh.normals_nx3), uvs_nx2=gather(mesh.uvs_nx2),
                        vertex_colors_nx3=gather(mesh.vertex_colors_nx3))


# ---------------------------------------------------------------- decimation and normals


def decimate(mesh: Mesh, target_faces: int, tick=None) -> Mesh:
    """Quadric edge-collapse decimation to about target_faces that keeps a closed
    2-manifold one (see `engine.geometry.simplify`); `tick()` is called between its steps.

    Returns a mesh with geometry only (per-vertex attributes are dropped: recompute them).
    """
    if target_faces <= 0 or mesh.num_faces <= target_faces:
        return mesh
    verts, faces = decimate_manifold(mesh.vertices_nx3, mesh.faces_fx3, int(target_faces), tick)
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


def clean(mesh: Mesh, target_faces: int | None = None, min_fraction: float = 0.02,
          tick=None) -> Mesh:
    """Degenerate faces out, small floating parts out, decimate to the budget, normals in.

    The decimation keeps a closed 2-manifold one, so the result stays closed and
    edge-manifold even when welded by position; an input that was not (open, or with
    sheets touching along an edge) gets its touching sheets separated by
    `split_nonmanifold`. tick: called between pieces of work (it may raise to stop).
    """
    tick = tick or (lambda: None)
    mesh = remove_degenerate(mesh)
    tick()
    mesh = remove_small_components(mesh, min_fraction)
    tick()
    if target_faces:
        mesh = remove_degenerate(decimate(mesh, target_faces, tick))
        if not is_watertight(mesh):
            mesh = _drop_tiny_parts(split_nonmanifold(mesh))
    return compute_normals(mesh)


def _drop_tiny_parts(mesh: Mesh, min_faces: int = 4) -> Mesh:
    """Drop parts too small to enclose anything (a tetrahedron has 4 faces)."""
    count, labels = connected_components(mesh)
    sizes = np.bincount(labels, minlength=count)
    return remove_unused_vertices(mesh.replace(faces_fx3=mesh.faces_fx3[sizes[labels] >= min_faces]))
