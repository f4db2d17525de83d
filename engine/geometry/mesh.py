"""The triangle mesh every geometry stage passes along (numpy only).

Conventions:
- object space is right-handed, Z-up, the asset inside [-1, 1]^3;
- faces are counter-clockwise seen from outside (right-hand normal points out);
- UVs are per vertex (vertices are split along UV seams) in the OpenGL/Blender convention:
  (0, 0) is the bottom-left corner of the texture, v grows upwards. `texture_hxwx3` is
  stored as an image, row 0 on top, so texel row r covers v in [1 - (r+1)/H, 1 - r/H].
  (glTF puts v = 0 at the top; engine/io/glb.py flips v when writing.)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np


@dataclass
class Mesh:
    vertices_nx3: np.ndarray                      # float32, object space
    faces_fx3: np.ndarray                         # int32, CCW seen from outside
    normals_nx3: np.ndarray | None = None         # float32, unit length
    uvs_nx2: np.ndarray | None = None             # float32 in [0, 1], v up
    texture_hxwx3: np.ndarray | None = None       # uint8, row 0 is the top row
    vertex_colors_nx3: np.ndarray | None = None   # uint8

    def __post_init__(self):
        self.vertices_nx3 = np.ascontiguousarray(self.vertices_nx3, dtype=np.float32).reshape(-1, 3)
        self.faces_fx3 = np.ascontiguousarray(self.faces_fx3, dtype=np.int32).reshape(-1, 3)
        if self.normals_nx3 is not None:
            self.normals_nx3 = np.ascontiguousarray(self.normals_nx3, dtype=np.float32)
        if self.uvs_nx2 is not None:
            self.uvs_nx2 = np.ascontiguousarray(self.uvs_nx2, dtype=np.float32)
        if self.texture_hxwx3 is not None:
            self.texture_hxwx3 = np.ascontiguousarray(self.texture_hxwx3, dtype=np.uint8)
        if self.vertex_colors_nx3 is not None:
            self.vertex_colors_nx3 = np.ascontiguousarray(self.vertex_colors_nx3, dtype=np.uint8)

    @property
    def num_vertices(self) -> int:
        return int(self.vertices_nx3.shape[0])

    @property
    def num_faces(self) -> int:
        return int(self.faces_fx3.shape[0])

    def replace(self, **changes) -> "Mesh":
        """A copy with some fields replaced (arrays are shared, not copied)."""
        return dataclasses.replace(self, **changes)

    def face_normals(self) -> np.ndarray:
        """Unnormalised face normals (length = 2 * area), (F, 3) float64."""
        v = self.vertices_nx3.astype(np.float64)
        f = self.faces_fx3
        return np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])

    def area(self) -> float:
        return float(0.5 * np.linalg.norm(self.face_normals(), axis=1).sum())

    def volume(self) -> float:
        """Signed volume (positive for a closed mesh with outward faces)."""
        v = self.vertices_nx3.astype(np.float64)
        f = self.faces_fx3
        return float(np.einsum("ij,ij->i", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])).sum() / 6.0)

    def check(self) -> None:
        """Raise ValueError when the arrays are inconsistent."""
        n = self.num_vertices
        if self.num_faces and (self.faces_fx3.min() < 0 or self.faces_fx3.max() >= n):
            raise ValueError("Mesh faces index vertices that do not exist.")
        for name, arr, width in (("normals_nx3", self.normals_nx3, 3), ("uvs_nx2", self.uvs_nx2, 2),
                                 ("vertex_colors_nx3", self.vertex_colors_nx3, 3)):
            if arr is not None and arr.shape != (n, width):
                raise ValueError(f"Mesh {name} has shape {arr.shape}, expected ({n}, {width}).")
        tex = self.texture_hxwx3
        if tex is not None and (tex.ndim != 3 or tex.shape[2] != 3):
            raise ValueError(f"Mesh texture has shape {self.texture_hxwx3.shape}, expected (H, W, 3).")
