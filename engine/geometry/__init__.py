"""Mesh half of the engine: extraction, cleanup, texture baking.

Import-light on purpose: import the submodules you need (`engine.geometry.extract`,
`engine.geometry.mesh_ops`, `engine.geometry.texture`); only `Mesh` (numpy) is re-exported.
"""

from .mesh import Mesh

__all__ = ["Mesh"]
