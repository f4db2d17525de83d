"""Neighbour-word captions (engine/data/neighbours.py): the words come from the text
encoder's space, never from the held-out phrasings, and reach the DiT's latent store."""

import pytest
import torch

from engine.data import captions as C
from engine.data import neighbours as N
from engine.models.conditioners import MiniLMText
from engine.train.cache import build_asset_store, build_latent_store


@pytest.fixture(scope="module")
def minilm():
    return MiniLMText()


def test_held_out_words_and_their_forms_are_banned():
    caption_words, held = N.caption_and_held_words()
    for word in ("seat", "seats", "seating", "cup", "cups", "fungi", "airline", "desks", "chair",
                 "crimson", "ruby"):
        assert N.banned(word, caption_words, held), word
    for word in ("chairs", "toilet", "automobiles", "mattress"):
        assert not N.banned(word, caption_words, held), word


def test_neighbours_are_near_their_category_and_never_held_out(minilm):
    candidates = ["chairs", "seat", "seating", "automobiles", "vehicle", "sedan", "mattress",
                  "desk", "bottles", "wines", "xylophone", "quantum"]
    table = N.category_neighbours(minilm, candidates, k=8, min_sim=0.6)
    assert set(table) == set(C.CATEGORY_SYNONYMS_TRAIN)
    assert "chairs" in table["chair"] and "automobiles" in table["car"]
    assert "mattress" in table["bed"] and "bottles" in table["bottle"]
    used = {w for words in table.values() for w in words}
    held = {w for phrase in C.heldout_only_words() for w in phrase.split()}
    assert not used & (held | {"seating", "desk"})
    assert not used & {"xylophone", "quantum"}          # below min_sim for every category


def test_swap_category_replaces_the_longest_phrase_and_fixes_the_article():
    assert N.swap_category("a red dining chair with four legs", "chair", "seatbox") == \
        "a red seatbox with four legs"
    assert N.swap_category("a red plane", "airplane", "aircraft") == "a red aircraft"
    assert N.swap_category("a small box", "crate", "enclosure") == "a small enclosure"
    assert N.swap_category("a blue armchair", "chair", "stool") is None   # not a whole word


def test_neighbour_captions_swap_or_keep_the_asset_own():
    caps = [["a red chair", "red chair, four legs"], ["a grey rock"]]
    out = N.neighbour_captions(caps, ["chair", None], {"chair": ["chairs"]}, n=3)
    assert out[0] == ["a red chairs", "red chairs, four legs", "a red chairs"]
    assert out[1] == ["a grey rock"] * 3


def test_latent_store_gets_the_neighbour_captions(minilm, monkeypatch):
    from random_model import random_model
    _, tiny_model = random_model()
    assets = build_asset_store(range(2), n_views=1, res=32, n_points=64, workers=1)
    monkeypatch.setattr(N, "vocabulary", lambda path: ["chairs", "tables", "cars", "bowls",
                                                       "lamps", "mugs", "trees"])
    plain = build_latent_store(tiny_model, minilm, assets, captions_per_asset=2)
    more = build_latent_store(tiny_model, minilm, assets, captions_per_asset=2,
                              neighbour_captions=2)
    assert plain.tensors["text_tokens"].shape[1] == 2
    assert more.tensors["text_tokens"].shape[1] == 4
    assert torch.equal(more.tensors["text_pooled"][:, :2], plain.tensors["text_pooled"])
    assert set(more.info["neighbours"]) == set(C.CATEGORY_SYNONYMS_TRAIN)
