"""File formats and model folders: GLB export (glb.py), result files
that never replace others' (outputs.py), weights (weights.py).

Import-light on purpose: import the submodule you need.
"""
