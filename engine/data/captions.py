"""Captions for procedural assets, with varied phrasing and synonyms.

Every caption names the asset's main colour (its palette name or a synonym) and its
category (its name or a synonym). Two disjoint phrasing sets:
  split="train":   the templates and synonyms training may use;
  split="heldout": other templates, category and colour synonyms and size words that
                   training never sees (issue 3's unseen-phrasing test, e.g.
                   "a crimson seat with four legs", "a little green cup").
Base names (e.g. "chair", "red") belong to both splits.
"""

from __future__ import annotations

import re

import numpy as np

from . import palette as pal

CATEGORY_SYNONYMS_TRAIN: dict[str, list[str]] = {
    "chair": ["dining chair", "side chair"],
    "table": ["dining table", "kitchen table"],
    "stool": ["bar stool"],
    "sofa": ["couch"],
    "bed": ["bed frame"],
    "shelf": ["bookshelf", "bookcase"],
    "mug": ["coffee mug"],
    "bowl": ["salad bowl"],
    "vase": ["flower vase"],
    "bottle": ["wine bottle"],
    "lamp": ["table lamp", "bedside lamp"],
    "teapot": ["tea pot"],
    "barrel": ["wooden barrel"],
    "crate": ["wooden crate", "box"],
    "mushroom": ["toadstool"],
    "tree": ["small tree"],
    "house": ["cottage"],
    "car": ["automobile"],
    "airplane": ["plane", "aeroplane"],
    "rocket": ["spaceship"],
    "sword": ["longsword"],
    "hammer": ["claw hammer"],
    "snowman": ["snow man"],
    "donut": ["doughnut"],
}
CATEGORY_SYNONYMS_HELDOUT: dict[str, list[str]] = {
    "chair": ["seat"],
    "table": ["desk"],
    "stool": ["barstool"],
    "sofa": ["settee", "loveseat"],
    "bed": ["bedstead", "cot"],
    "shelf": ["shelving unit"],
    "mug": ["cup", "teacup"],
    "bowl": ["dish", "basin"],
    "vase": ["urn", "amphora"],
    "bottle": ["flask"],
    "lamp": ["reading light"],
    "teapot": ["kettle"],
    "barrel": ["cask", "keg"],
    "crate": ["chest", "packing case"],
    "mushroom": ["fungus"],
    "tree": ["sapling"],
    "house": ["hut", "cabin"],
    "car": ["vehicle", "sedan"],
    "airplane": ["jet", "airliner"],
    "rocket": ["spacecraft", "rocketship"],
    "sword": ["sabre", "broadsword"],
    "hammer": ["sledgehammer"],
    "snowman": ["snow figure"],
    "donut": ["cruller"],
}
# Variant-specific train synonyms (only when the asset has that variant).
VARIANT_SYNONYMS = {("tree", "conifer", True): ["pine tree"], ("tree", "conifer", False): ["oak tree"],
                    ("hammer", "mallet", True): ["mallet"], ("chair", "armrests", True): ["armchair"]}

SIZE_WORDS_TRAIN = ["small", "large", "simple", "stylized"]
SIZE_WORDS_HELDOUT = ["little", "tiny", "huge", "petite"]

PATTERN_ADJ = {"stripes": "striped", "two-tone": "two-tone", "checks": "checkered", "dots": "polka-dot"}
PATTERN_NOUN = {"stripes": "stripes", "two-tone": "a {p} base", "checks": "checks", "dots": "dots"}

TEMPLATES_TRAIN = [
    "{color} {cat}",
    "a {color} {cat}",
    "a {size} {color} {cat}",
    "a {color} {cat} with {feat}",
    "a {size} {color} {cat} with {feat}",
    "{color} {cat}, {feat}",
    "a {color} {cat} with {feat} and {feat2}",
    "3d model of a {color} {cat}",
    "{cat}, {color}, {feat}",
    "a {cat} in {color}",
]
TEMPLATES_PATTERN_TRAIN = [
    "a {color} and {p} {padj} {cat}",
    "a {color} {cat} with {pnoun}",
]
TEMPLATES_HELDOUT = [
    "a {size} {color} {cat}",
    "{cat} painted {color}",
    "i'd like a {color} {cat} that has {feat}",
    "{color}-colored {cat}",
    "a {cat}, mostly {color}",
    "make me a {color} {cat}",
    "one {color} {cat} featuring {feat}",
    "a {color} {cat} having {feat} and {feat2}",
]
TEMPLATES_PATTERN_HELDOUT = [
    "{padj} {cat} in {color} and {p}",
]


def _words(split: str):
    if split == "train":
        return (CATEGORY_SYNONYMS_TRAIN, pal.COLOR_SYNONYMS_TRAIN, SIZE_WORDS_TRAIN,
                TEMPLATES_TRAIN, TEMPLATES_PATTERN_TRAIN)
    if split == "heldout":
        return (CATEGORY_SYNONYMS_HELDOUT, pal.COLOR_SYNONYMS_HELDOUT, SIZE_WORDS_HELDOUT,
                TEMPLATES_HELDOUT, TEMPLATES_PATTERN_HELDOUT)
    raise ValueError(f"split must be 'train' or 'heldout', not {split!r}")


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _articles(text: str) -> str:
    """'a' -> 'an' before a vowel sound; tidy spaces."""
    text = re.sub(r"\s+", " ", text).strip()
    return re.sub(r"\b([Aa]) (?=[aeiouAEIOU])", r"\1n ", text)


def category_words(category: str, split: str = "train", params: dict | None = None) -> list[str]:
    cats, *_ = _words(split)
    words = [category] + cats[category]
    if split == "train" and params:
        for (cat, key, value), syn in VARIANT_SYNONYMS.items():
            if cat == category and params.get(key) == value:
                words += syn
    return words


def color_words(color: str, split: str = "train") -> list[str]:
    _, cols, *_ = _words(split)
    return [color] + cols[color]


def _fill(template: str, rng, split: str, category: str, color: str, params: dict,
          features: list[str], adjectives: list[str], pattern: str | None,
          pattern_color: str | None) -> str:
    _, _, sizes, _, _ = _words(split)
    feats = list(features)
    order = rng.permutation(len(feats)) if feats else []
    f1 = feats[order[0]] if len(feats) > 0 else ""
    f2 = feats[order[1]] if len(feats) > 1 else ""
    size_opts = (list(adjectives) if split == "train" else []) + sizes
    vals = {
        "cat": _pick(rng, category_words(category, split, params)),
        "color": _pick(rng, color_words(color, split)),
        "size": _pick(rng, size_opts),
        "feat": f1, "feat2": f2,
    }
    if pattern and pattern_color:
        vals["p"] = _pick(rng, color_words(pattern_color, split))
        vals["padj"] = PATTERN_ADJ[pattern]
        vals["pnoun"] = PATTERN_NOUN[pattern].format(p=vals["p"])
        if pattern != "two-tone":
            vals["pnoun"] = f"{vals['p']} {vals['pnoun']}"
    return _articles(template.format(**vals))


def _usable(template: str, n_features: int, has_pattern: bool) -> bool:
    if "{feat2}" in template and n_features < 2:
        return False
    if "{feat}" in template and n_features < 1:
        return False
    if "{p}" in template or "{pnoun}" in template or "{padj}" in template:
        return has_pattern
    return True


def describe(category: str, color: str, rng: np.random.Generator, split: str = "train",
             n: int = 1, params: dict | None = None, features: list[str] | None = None,
             adjectives: list[str] | None = None, pattern: str | None = None,
             pattern_color: str | None = None) -> list[str]:
    """`n` distinct captions (fewer if the phrasings run out) for a category and colour,
    optionally using an asset's features, adjectives and pattern."""
    _, _, _, templates, pattern_templates = _words(split)
    features, adjectives = features or [], adjectives or []
    has_pattern = bool(pattern and pattern != "solid" and pattern_color)
    pool = [t for t in templates + (pattern_templates if has_pattern else [])
            if _usable(t, len(features), has_pattern)]
    out: list[str] = []
    for _ in range(8 * n):
        if len(out) >= n:
            break
        text = _fill(_pick(rng, pool), rng, split, category, color, params or {}, features,
                     adjectives, pattern if has_pattern else None, pattern_color)
        if text not in out:
            out.append(text)
    return out


def captions(asset, rng: np.random.Generator, split: str = "train", n: int = 1) -> list[str]:
    """`n` distinct varied captions of a procedural asset (see the module docstring)."""
    return describe(asset.category, asset.main_color, rng, split, n, params=asset.params,
                    features=asset.features, adjectives=asset.adjectives,
                    pattern=asset.params.get("pattern"), pattern_color=asset.colors.get("pattern"))


def caption(asset, rng: np.random.Generator, split: str = "train") -> str:
    """One caption of a procedural asset."""
    return captions(asset, rng, split, 1)[0]


def prompt(category: str, color: str, rng: np.random.Generator, split: str = "train") -> str:
    """One short prompt without asset details, e.g. for text-to-3D evaluation."""
    return describe(category, color, rng, split, 1)[0]


# Held-out category nouns that training captions still contain inside feature phrases
# ("a chair with a round seat", as issue 3 phrases its own examples): held out as the noun
# naming the object, not as a word.
IN_TRAIN_FEATURES = {"seat"}


def heldout_only_words() -> set[str]:
    """Held-out words and phrases that never occur in any training caption."""
    words = set(SIZE_WORDS_HELDOUT)
    for syn in list(CATEGORY_SYNONYMS_HELDOUT.values()) + list(pal.COLOR_SYNONYMS_HELDOUT.values()):
        words.update(syn)
    return words - IN_TRAIN_FEATURES


def reading_names() -> dict[str, str | None]:
    """What an unknown prompt word may be read as (engine/reading.py): each training
    category phrase with its category, each training size word with itself, each training
    colour phrase with None (left as written)."""
    names: dict[str, str | None] = {}
    for base, syns in pal.COLOR_SYNONYMS_TRAIN.items():
        names.update({phrase: None for phrase in [base, *syns]})
    for base, syns in CATEGORY_SYNONYMS_TRAIN.items():
        names.update({phrase: base for phrase in [base, *syns]})
    for (base, _, _), syns in VARIANT_SYNONYMS.items():
        names.update({phrase: base for phrase in syns})
    names.update({word: word for word in SIZE_WORDS_TRAIN})
    return names
