"""A cube with a UV map of its own, for the restyle tests."""

import numpy as np


def cube(size: float = 1.0):
    """A cube of side 2 * size: 12 triangles, each face its own UV square in a 3 x 2 grid
    -> (positions (8, 3), triangles (12, 3), per-corner UVs (12, 3, 2))."""
    v = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)],
                 np.float32) * size
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    tris, uvs = [], []
    for k, (a, b, c, d) in enumerate(quads):
        u0, v0 = (k % 3) / 3, (k // 3) / 2
        sq = [(u0 + .02, v0 + .02), (u0 + .31, v0 + .02), (u0 + .31, v0 + .48),
              (u0 + .02, v0 + .48)]
        tris += [(a, b, c), (a, c, d)]
        uvs += [(sq[0], sq[1], sq[2]), (sq[0], sq[2], sq[3])]
    return v, np.array(tris), np.array(uvs, np.float32)
