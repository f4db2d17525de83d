"""Neighbour-word captions: training captions with the category's word swapped for a word
the text encoder itself places near that category, so the DiT learns each category as a
region of the text encoder's space rather than as its two or three training words.

The candidates are the text encoder's own vocabulary (whole words of 3+ letters of the
MiniLM tokenizer), each embedded as "a WORD" (the pooled vector). A candidate belongs to
the category whose centroid (the mean of its training words' embeddings) it lies nearest,
if its cosine similarity to that centroid is at least `min_sim`; each category keeps its
`k` nearest. Never used: any word of any caption vocabulary (both splits: every category
and colour word, size word and phrase), and any form of a held-out word (see `banned`),
so the unseen-phrasing evaluation stays unseen. Colours are not swapped: MiniLM's neighbours
of colour words are mostly not colours (measured; see the model card).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch

from . import captions as C
from . import palette as P


def vocabulary(tokenizer_json: Path) -> list[str]:
    """Whole lower-case words of 3+ letters in a WordPiece tokenizer.json, sorted."""
    vocab = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))["model"]["vocab"]
    return sorted(w for w in vocab if re.fullmatch(r"[a-z]{3,}", w))


def _stem(word: str) -> str:
    """A held-out word without its last ending ("fungus" -> "fung", "seats" -> "seat")."""
    for ending in ("us", "es", "s", "e"):
        if word.endswith(ending) and len(word) - len(ending) >= 4:
            return word[:-len(ending)]
    return word


def banned(word: str, caption_words: set[str], held_words: set[str]) -> bool:
    """Never a neighbour: a word of any caption phrase, or a form of a held-out word (one
    that starts with its stem, as "seating" with "seat" or "fungi" with "fung", lies
    inside it, as "airline" in "airliner", or is its plural, as "cups")."""
    if word in caption_words or any(word in (h + "s", h + "es") for h in held_words):
        return True
    return any((len(_stem(h)) >= 4 and word.startswith(_stem(h))) or word in h
               for h in held_words)


def caption_and_held_words() -> tuple[set[str], set[str]]:
    """(every single word of every caption phrase of both splits, the held-out ones)."""
    held = C.heldout_only_words() | set(C.IN_TRAIN_FEATURES)
    every = held | set(C.SIZE_WORDS_TRAIN)
    for table in (C.CATEGORY_SYNONYMS_TRAIN, C.CATEGORY_SYNONYMS_HELDOUT,
                  P.COLOR_SYNONYMS_TRAIN, P.COLOR_SYNONYMS_HELDOUT):
        for base, syns in table.items():
            every.update([base, *syns])
    every.update(w for syns in C.VARIANT_SYNONYMS.values() for w in syns)
    return ({w for phrase in every for w in phrase.split()},
            {w for phrase in held for w in phrase.split()})


def _embed(text_encoder, texts: list[str], batch: int = 512) -> torch.Tensor:
    """Unit pooled vectors (N, D) of texts."""
    return torch.cat([text_encoder(texts[s:s + batch])[2].float()
                      for s in range(0, len(texts), batch)])


def category_neighbours(text_encoder, candidates: list[str], k: int = 8,
                        min_sim: float = 0.6) -> dict[str, list[str]]:
    """Per category: up to k vocabulary words nearest its centroid (see the module
    docstring), nearest first."""
    caption_words, held_words = caption_and_held_words()
    words = [w for w in candidates if not banned(w, caption_words, held_words)]
    cats = list(C.CATEGORY_SYNONYMS_TRAIN)
    centroids = torch.stack([_embed(text_encoder, [f"a {w}" for w in C.category_words(c)]).mean(0)
                             for c in cats])
    centroids = torch.nn.functional.normalize(centroids, dim=-1)          # (24, D)
    sims = _embed(text_encoder, [f"a {w}" for w in words]) @ centroids.T  # (W, 24)
    best_sim, best = sims.max(1)
    out = {}
    for ci, cat in enumerate(cats):
        mine = ((best == ci) & (best_sim >= min_sim)).nonzero()[:, 0]
        order = mine[best_sim[mine].argsort(descending=True)][:k]
        out[cat] = [words[i] for i in order.tolist()]
    return out


def swap_category(caption: str, category: str, new: str) -> str | None:
    """The caption with its category phrase (the longest of the category's training words
    that occurs as whole words) replaced by `new`; None if none occurs."""
    for phrase in sorted(C.category_words(category, "train"), key=len, reverse=True):
        pattern = rf"\b{re.escape(phrase)}\b"
        if re.search(pattern, caption):
            return C._articles(re.sub(pattern, new, caption, count=1))
    return None


def neighbour_captions(captions: list[list[str]], categories: list[str | None],
                       neighbours: dict[str, list[str]], n: int, seed: int = 0) -> list[list[str]]:
    """Per asset: n captions, each one of its own with the category word swapped for a
    random neighbour (an asset's own captions where it has no category or no swap)."""
    rng = np.random.default_rng(seed)
    out = []
    for caps, cat in zip(captions, categories):
        options = neighbours.get(cat, []) if cat else []
        made = []
        for j in range(n):
            own = caps[j % len(caps)]
            swapped = swap_category(own, cat, options[int(rng.integers(len(options)))]) \
                if options else None
            made.append(swapped or own)
        out.append(made)
    return out
