"""Lookup tables for Kiln's FlexiCubes (dual marching cubes), generated here from first principles.

Nothing is typed in by hand except the cube's corner and edge numbering; every table is derived
from the 256 inside/outside corner configurations by `build_tables()`.

Cube convention (shared with `flexicubes.py`)
---------------------------------------------
Corner k sits at offset (k & 1, (k >> 1) & 1, (k >> 2) & 1) in (x, y, z) units of one cell.
Bit k of a configuration is set when corner k is *inside* (sdf < 0).
Edges 0-3 run along x, 4-7 along y, 8-11 along z; each is (low corner, high corner):

    x: (0,1) (2,3) (4,5) (6,7)    y: (0,2) (1,3) (4,6) (5,7)    z: (0,4) (1,5) (2,6) (3,7)

Faces 0..5 are -x, +x, -y, +y, -z, +z.

How the edge groups are found
-----------------------------
Dual marching cubes puts one vertex per surface *patch* inside a cube. A patch is bounded by a
closed loop on the cube's surface, and the loop visits the crossed (bipolar) edges. On each face
the iso-contour joins the crossed edges of that face pairwise: a face with two crossed edges has
one segment; a face with four (two inside corners on one diagonal, two outside on the other) is
*ambiguous*. Kiln's default rule resolves every ambiguous face the same way in every cube,
"inside corners connect across the face" (the contour cuts off the two outside corners), so the
two cubes sharing a face always agree. The loops are the connected components of the crossed
edges under these face segments (union-find); each loop is one group = one dual vertex.

One more case remains. For some configurations a single loop passes through an ambiguous face
twice, so all four of that face's crossed edges fall into one group. If the cube on the other
side of that face does the same, the two dual vertices would be joined by four quads (a
non-manifold edge). Such a configuration has exactly one ambiguous face (checked below), and for
it the tables also hold an *alternative* grouping with that one face resolved the other way
("outside corners connect"), which always splits the loop in two. At run time, when two
neighbouring cubes both pass twice through their shared face, the cube on the low side switches
to its alternative grouping; one group each side of the face then holds two quads per dual edge
and the mesh stays watertight and edge-manifold.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

CORNERS_8x3 = np.array([[k & 1, (k >> 1) & 1, (k >> 2) & 1] for k in range(8)], dtype=np.int64)

EDGES_12x2 = np.array([
    [0, 1], [2, 3], [4, 5], [6, 7],        # along x
    [0, 2], [1, 3], [4, 6], [5, 7],        # along y
    [0, 4], [1, 5], [2, 6], [3, 7],        # along z
], dtype=np.int64)

EDGE_AXIS_12 = np.repeat(np.arange(3), 4)

# face f = 2 * axis + side; its corners in cyclic order (around the face)
FACE_AXIS_6 = np.array([0, 0, 1, 1, 2, 2])
FACE_SIDE_6 = np.array([0, 1, 0, 1, 0, 1])

MAX_GROUPS = 4


def _face_corners(face: int) -> list[int]:
    """The 4 corners of a face in cyclic order."""
    axis, side = FACE_AXIS_6[face], FACE_SIDE_6[face]
    a, b = [d for d in range(3) if d != axis]
    cyc = [(0, 0), (1, 0), (1, 1), (0, 1)]
    out = []
    for ua, ub in cyc:
        off = [0, 0, 0]
        off[axis], off[a], off[b] = side, ua, ub
        out.append(off[0] | (off[1] << 1) | (off[2] << 2))
    return out


def _edge_index(c0: int, c1: int) -> int:
    lo, hi = min(c0, c1), max(c0, c1)
    for e, (p, q) in enumerate(EDGES_12x2):
        if p == lo and q == hi:
            return e
    raise ValueError(f"corners {c0}, {c1} share no edge")


FACE_CORNERS_6x4 = np.array([_face_corners(f) for f in range(6)], dtype=np.int64)
# FACE_EDGES_6x4[f, i] = edge between cyclic corners i and i+1 of face f
FACE_EDGES_6x4 = np.array([[_edge_index(FACE_CORNERS_6x4[f, i], FACE_CORNERS_6x4[f, (i + 1) % 4])
                            for i in range(4)] for f in range(6)], dtype=np.int64)


def _inside(case: int, corner: int) -> bool:
    return bool((case >> corner) & 1)


def _crossed(case: int) -> list[int]:
    return [e for e, (p, q) in enumerate(EDGES_12x2) if _inside(case, p) != _inside(case, q)]


def _face_segments(case: int, face: int, inside_connects: bool) -> list[tuple[int, int]]:
    """Contour segments on one face: pairs of crossed edges joined by the iso-line."""
    corners = FACE_CORNERS_6x4[face]
    edges = FACE_EDGES_6x4[face]
    crossed = [i for i in range(4)
               if _inside(case, corners[i]) != _inside(case, corners[(i + 1) % 4])]
    if len(crossed) == 2:
        return [(int(edges[crossed[0]]), int(edges[crossed[1]]))]
    if len(crossed) == 4:
        # cut off the corners that do *not* connect: corner i lies between edges i-1 and i
        cut_inside = not inside_connects
        segs = []
        for i in range(4):
            if _inside(case, corners[i]) == cut_inside:
                segs.append((int(edges[(i - 1) % 4]), int(edges[i])))
        return segs
    return []


def _is_ambiguous(case: int, face: int) -> bool:
    c = [_inside(case, k) for k in FACE_CORNERS_6x4[face]]
    return c[0] == c[2] and c[1] == c[3] and c[0] != c[1]


def _groups(case: int, flipped_face: int = -1) -> list[int]:
    """Group id (0..) of each of the 12 edges (-1 = not crossed), groups ordered by first edge."""
    parent = list(range(12))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for face in range(6):
        for a, b in _face_segments(case, face, inside_connects=(face != flipped_face)):
            parent[find(a)] = find(b)
    crossed = _crossed(case)
    out = [-1] * 12
    roots: dict[int, int] = {}
    for e in crossed:
        out[e] = roots.setdefault(find(e), len(roots))
    return out


def _double_pass_face(case: int, groups: list[int]) -> list[int]:
    """Ambiguous faces whose four crossed edges all lie in one group."""
    faces = []
    for face in range(6):
        if _is_ambiguous(case, face) and len({groups[e] for e in FACE_EDGES_6x4[face]}) == 1:
            faces.append(face)
    return faces


@dataclass(frozen=True)
class Tables:
    """Generated tables. Rows 0..255: default grouping of each configuration; rows 256..: the
    alternative groupings (one per configuration with a double-pass face)."""

    edge_group_rx12: np.ndarray   # int64, group of each edge, -1 when the edge is not crossed
    num_groups_r: np.ndarray      # int64, dual vertices in the cube
    double_face_256: np.ndarray   # int64, face a loop passes twice (default rule), else -1
    alt_row_256: np.ndarray       # int64, row of the alternative grouping, else -1


@lru_cache(maxsize=1)
def build_tables() -> Tables:
    rows, counts = [], []
    double_face = np.full(256, -1, dtype=np.int64)
    alt_row = np.full(256, -1, dtype=np.int64)
    alts = []
    for case in range(256):
        g = _groups(case)
        rows.append(g)
        counts.append(max(g) + 1)
        faces = _double_pass_face(case, g)
        if not faces:
            continue
        if len(faces) != 1:
            raise AssertionError(f"configuration {case} passes twice through {len(faces)} faces")
        alt = _groups(case, flipped_face=faces[0])
        if _double_pass_face(case, alt) or max(alt) != max(g) + 1:
            raise AssertionError(f"alternative grouping of configuration {case} does not split")
        double_face[case] = faces[0]
        alts.append(alt)
    for i, case in enumerate(np.nonzero(double_face >= 0)[0]):
        alt_row[case] = 256 + i
    rows += alts
    counts += [max(a) + 1 for a in alts]
    return Tables(
        edge_group_rx12=np.array(rows, dtype=np.int64),
        num_groups_r=np.array(counts, dtype=np.int64),
        double_face_256=double_face,
        alt_row_256=alt_row,
    )
