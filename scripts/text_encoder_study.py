"""Does the text encoder know the held-out words? Each held-out colour and category word
(the unseen-phrasing test's vocabulary) is embedded alone by the frozen text encoder and
matched to its nearest training word by cosine similarity; a match is right when that
word names the same colour / category. Prints JSON: the hit rates and every match.

Then whole captions: every held-out-phrasing caption of every category and colour is
matched to its nearest training-phrasing caption (pooled states); the hit rates are what
a model that only looked up the nearest caption it was trained on would score.

A model conditioned on this encoder learns colours and categories from training words
only, so a held-out word the encoder places nearer another colour's words ("ruby" by
"emerald") cannot be expected to come out in its own colour.

    .venv/bin/python scripts/text_encoder_study.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def nearest_words(embed, train_words: dict[str, list[str]], probes: dict[str, list[str]]):
    """{label: [train words]}, {label: [probe words]} -> rows (probe, label, nearest word,
    its label, cosine)."""
    vocab = [(w, label) for label, words in train_words.items() for w in [label] + words]
    probe_rows = [(w, label) for label, words in probes.items() for w in words]
    sim = embed([p for p, _ in probe_rows]) @ embed([w for w, _ in vocab]).T   # (P, V)
    best = sim.argmax(dim=1)
    return [(p, label, vocab[j][0], vocab[j][1], round(float(sim[i, j]), 3))
            for i, ((p, label), j) in enumerate(zip(probe_rows, best.tolist()))]


def caption_hits(embed, per_pair: dict[str, int]) -> dict:
    """Nearest training caption of each held-out caption: % with its category / colour."""
    import numpy as np
    import torch
    from engine.data import captions as cap
    from engine.data import palette as pal
    rng = np.random.default_rng(0)
    sets = {}
    for split, n in per_pair.items():
        sets[split] = [(text, c, k) for c in cap.CATEGORY_SYNONYMS_TRAIN for k in pal.COLOR_NAMES
                       for text in cap.describe(c, k, rng, split, n)]
    train, held = sets["train"], sets["heldout"]
    embed_all = lambda rows: torch.cat([embed([r[0] for r in rows[i:i + 256]])
                                        for i in range(0, len(rows), 256)])
    best = (embed_all(held) @ embed_all(train).T).argmax(dim=1).tolist()
    pct = lambda k: round(100.0 * sum(h[k] == train[j][k] for h, j in zip(held, best)) / len(held), 1)
    return {"category": pct(1), "colour": pct(2), "train_n": len(train), "heldout_n": len(held)}


def main() -> int:
    from engine.data import captions as cap
    from engine.data import palette as pal
    from engine.models.conditioners import MiniLMText, offline_env
    offline_env()
    encoder = MiniLMText()
    embed = lambda words: encoder(words)[2]                                  # (N, 384) unit
    out = {}
    for name, train, held in (("colour", pal.COLOR_SYNONYMS_TRAIN, pal.COLOR_SYNONYMS_HELDOUT),
                              ("category", cap.CATEGORY_SYNONYMS_TRAIN,
                               cap.CATEGORY_SYNONYMS_HELDOUT)):
        rows = nearest_words(embed, train, held)
        hits = sum(r[1] == r[3] for r in rows)
        out[name] = {"hit_rate": round(100.0 * hits / len(rows), 1), "n": len(rows),
                     "matches": [f"{p} -> {w} ({got}, {s})" for p, _, w, got, s in rows]}
    out["nearest_caption"] = caption_hits(embed, {"train": 6, "heldout": 2})
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
