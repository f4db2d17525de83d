"""Kiln's training data: the procedural world (SDF assets with colour, captions), users'
meshes, and the one asset-store format both become (dataset.py)."""

from .shapes import CATEGORIES, Asset, make_asset
from .palette import COLOR_NAMES

__all__ = ["CATEGORIES", "COLOR_NAMES", "Asset", "make_asset"]
