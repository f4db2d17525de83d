"""Mesh half of the engine: extraction, cleanup, texture baking.

Import-light on purpose: import the submodules you need (`engine.geometry.extract`,
`engine.geometry.mesh_ops`, `engine.geometry.texture`, `engine.geometry.surface` for SDF
normals and surface samples); only `Mesh` (numpy) is re-exported.
"""

from .mesh import Mesh

__all__ = ["Mesh"]
