"""Named colours: the palette assets are painted from, and colour words for captions.

`COLOR_NAMES` fixes the order of colour indices (the dataset's `color` label).
`classify_rgb` maps any colour (or a set of texture samples) back to a palette name,
which is what colour-accuracy evaluation uses.
"""

from __future__ import annotations

import colorsys

import numpy as np

# Canonical linear-ish sRGB values in [0, 1], chosen to stay apart from one another.
PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.80, 0.10, 0.10),
    "orange": (0.95, 0.50, 0.10),
    "yellow": (0.95, 0.85, 0.15),
    "green": (0.18, 0.60, 0.20),
    "blue": (0.15, 0.30, 0.85),
    "purple": (0.50, 0.20, 0.65),
    "pink": (0.95, 0.55, 0.72),
    "white": (0.93, 0.93, 0.93),
    "black": (0.08, 0.08, 0.08),
    "grey": (0.50, 0.50, 0.50),
    "brown": (0.45, 0.27, 0.12),
}
COLOR_NAMES: list[str] = list(PALETTE)

# Colour words per split. The base name is shared by both splits; the held-out
# synonyms never appear in training captions (unseen-phrasing test, issue 3).
COLOR_SYNONYMS_TRAIN: dict[str, list[str]] = {
    "red": ["crimson", "scarlet"],
    "orange": ["amber"],
    "yellow": ["golden", "mustard"],
    "green": ["emerald", "forest green"],
    "blue": ["navy", "cobalt"],
    "purple": ["violet", "lilac"],
    "pink": ["rose", "salmon pink"],
    "white": ["ivory", "snow white"],
    "black": ["pitch black", "ebony"],
    "grey": ["gray", "silver"],
    "brown": ["chocolate", "walnut"],
}
COLOR_SYNONYMS_HELDOUT: dict[str, list[str]] = {
    "red": ["ruby", "cherry red"],
    "orange": ["tangerine"],
    "yellow": ["lemon"],
    "green": ["lime green", "jade"],
    "blue": ["sapphire", "royal blue"],
    "purple": ["plum", "lavender"],
    "pink": ["bubblegum", "fuchsia"],
    "white": ["pearl", "cream"],
    "black": ["coal", "onyx"],
    "grey": ["ash", "slate"],
    "brown": ["cocoa", "mahogany"],
}


def color_index(name: str) -> int:
    return COLOR_NAMES.index(name)


def jitter(name: str, rng: np.random.Generator, amount: float = 1.0) -> tuple[float, float, float]:
    """The palette colour `name` with a small random shift in hue, saturation and value
    that keeps it recognisably that colour (and classified as it)."""
    r, g, b = PALETTE[name]
    h, s, v = colorsys.rgb_to_hsv(r, g, b)
    if s > 0.2:  # chromatic colours: shift hue a little, saturation and value more
        h = (h + amount * rng.uniform(-0.015, 0.015)) % 1.0
        s = float(np.clip(s * (1 + amount * rng.uniform(-0.12, 0.08)), 0, 1))
        v = float(np.clip(v * (1 + amount * rng.uniform(-0.1, 0.05)), 0, 1))
    else:        # neutrals: value only, keep them neutral
        v = float(np.clip(v + amount * rng.uniform(-0.05, 0.05), 0, 1))
    return colorsys.hsv_to_rgb(h, s, v)


def pick(rng: np.random.Generator, options: list[str] | None = None,
         exclude: tuple[str, ...] | list[str] = ()) -> str:
    """A colour name from `options` (default: the whole palette) not in `exclude`."""
    names = [n for n in (options or COLOR_NAMES) if n not in exclude]
    if not names:
        names = [n for n in COLOR_NAMES if n not in exclude]
    return names[int(rng.integers(len(names)))]


def classify_rgb(rgb) -> str:
    """Palette name nearest to a colour, or the most common name over an (n, 3) array
    of colour samples in [0, 1] (each sample voted to its nearest palette colour)."""
    arr = np.asarray(rgb, dtype=np.float64).reshape(-1, 3)
    table = np.asarray([PALETTE[n] for n in COLOR_NAMES])            # (K, 3)
    d = ((arr[:, None, :] - table[None]) ** 2).sum(-1)               # (n, K)
    votes = np.bincount(d.argmin(1), minlength=len(COLOR_NAMES))
    return COLOR_NAMES[int(votes.argmax())]
