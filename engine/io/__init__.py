"""File formats and model folders: GLB export (glb.py), weights (weights.py).

Import-light on purpose: import the submodule you need.
"""
