"""Captions for procedural assets: varied phrasing, colour and category synonyms.

`captions(asset, rng, split)` returns a list of captions (one per template draw). Every
caption names the main colour (or a synonym) and the category (or a synonym). The
"heldout" split uses colour words, category words and sentence shapes that the "train"
split never uses, for the unseen-phrasing evaluation.
"""

from __future__ import annotations

import numpy as np

from .palette import COLOR_SYNONYMS_HELDOUT, COLOR_SYNONYMS_TRAIN

CATEGORY_SYNONYMS_TRAIN = {
    "chair": ["chair", "dining chair", "seat"], "table": ["table", "desk"],
    "stool": ["stool", "bar stool"], "sofa": ["sofa", "couch"], "bed": ["bed"],
    "shelf": ["shelf", "bookshelf", "shelving unit"], "mug": ["mug", "coffee mug"],
    "bowl": ["bowl"], "vase": ["vase", "flower vase"], "bottle": ["bottle"],
    "lamp": ["lamp", "table lamp"], "teapot": ["teapot", "tea kettle"], "barrel": ["barrel"],
    "crate": ["crate", "wooden box"], "mushroom": ["mushroom", "toadstool"],
    "tree": ["tree"], "house": ["house", "cottage"], "car": ["car", "automobile"],
    "airplane": ["airplane", "plane", "aircraft"], "rocket": ["rocket", "spaceship"],
    "sword": ["sword", "blade"], "hammer": ["hammer", "mallet"],
    "snowman": ["snowman"], "donut": ["donut", "doughnut"],
}
CATEGORY_SYNONYMS_HELDOUT = {
    "chair": ["armchair"], "table": ["dining table"], "stool": ["footstool"],
    "sofa": ["settee"], "bed": ["bunk"], "shelf": ["bookcase"], "mug": ["cup"],
    "bowl": ["dish"], "vase": ["urn"], "bottle": ["flask"], "lamp": ["light"],
    "teapot": ["kettle"], "barrel": ["keg"], "crate": ["chest"], "mushroom": ["fungus"],
    "tree": ["oak"], "house": ["home"], "car": ["vehicle"], "airplane": ["jet"],
    "rocket": ["missile"], "sword": ["sabre"], "hammer": ["gavel"],
    "snowman": ["snow figure"], "donut": ["ring cake"],
}
TEMPLATES_TRAIN = [
    "a {adj}{color} {cat}", "a {adj}{color} {cat} with {feat}", "{color} {cat}, {feat}",
    "a 3d model of a {color} {cat}", "{cat} in {color}", "a {color} {cat}",
    "a {adj}{cat}, {color}", "{color} {cat}",
]
TEMPLATES_HELDOUT = [
    "a little {color} {cat}", "a {color} {cat} that has {feat}",
    "one {color} {cat}", "render of a {color} {cat}",
]


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _color_word(name: str, rng, split: str) -> str:
    if split == "train":
        return _pick(rng, [name, name] + COLOR_SYNONYMS_TRAIN.get(name, []))
    return _pick(rng, [name] + COLOR_SYNONYMS_HELDOUT.get(name, []))


def _category_word(category: str, rng, split: str) -> str:
    table = CATEGORY_SYNONYMS_TRAIN if split == "train" else CATEGORY_SYNONYMS_HELDOUT
    words = table.get(category, [category])
    return _pick(rng, words if split == "train" else [category] + words)


def caption(asset, rng: np.random.Generator, split: str = "train") -> str:
    templates = TEMPLATES_TRAIN if split == "train" else TEMPLATES_HELDOUT
    template = _pick(rng, templates)
    feats = list(asset.features) or ["a simple shape"]
    adjs = list(asset.adjectives)
    adj = _pick(rng, adjs) + " " if adjs and rng.random() < 0.5 else ""
    text = template.format(adj=adj, color=_color_word(asset.main_color, rng, split),
                           cat=_category_word(asset.category, rng, split),
                           feat=_pick(rng, feats))
    return " ".join(text.split())


def captions(asset, rng: np.random.Generator, split: str = "train", n: int = 1) -> list[str]:
    if split not in ("train", "heldout"):
        raise ValueError("split must be 'train' or 'heldout'")
    return [caption(asset, rng, split) for _ in range(n)]
