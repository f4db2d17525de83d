"""Kiln's procedural world: SDF assets with colour, captions, multi-view examples, shards."""

from .shapes import CATEGORIES, Asset, make_asset
from .palette import COLOR_NAMES

__all__ = ["CATEGORIES", "COLOR_NAMES", "Asset", "make_asset"]
