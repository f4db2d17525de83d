"""Where do unseen-phrasing prompts lose their colour? The eval's unseen-phrasing prompts
(held-out sentence shapes, category and colour words) are generated as the model reads
them and split by how they name their colour: by its base word ("a mug, mostly grey") or
by a held-out colour word ("a bowl, mostly cocoa"). Then the same prompts again with each
held-out colour word swapped for its base word: a diagnostic of what the colour words
alone cost, not a feature. Prints JSON with the hit counts.

    .venv/bin/python scripts/unseen_colour_study.py [--model kiln-mini] [--prompts 144]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def base_named(prompt) -> bool:
    return re.search(rf"\b{prompt.color}\b", prompt.text) is not None


def with_base_words(prompt):
    """The prompt with every held-out colour word replaced by its base colour word."""
    from engine.data import palette as P
    text = prompt.text
    for base, words in P.COLOR_SYNONYMS_HELDOUT.items():
        for word in sorted(words, key=len, reverse=True):
            text = re.sub(rf"\b{re.escape(word)}\b", base, text)
    return dataclasses.replace(prompt, text=text)


def hits(ev, prompts) -> list[bool]:
    _, colours = ev.run_prompts(prompts, "unseen")
    return [c == p.color for c, p in zip(colours, prompts)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="kiln-mini")
    p.add_argument("--prompts", type=int, default=144)
    args = p.parse_args()
    import torch
    from engine.evaluation.run import EvalSettings, Evaluator, SurfaceCache, default_cache_dir
    from engine.pipeline import Pipeline
    torch.set_num_threads(2)
    pipe = Pipeline.from_pretrained(args.model, device="cpu")
    settings = EvalSettings()
    settings.n_unseen = args.prompts
    ev = Evaluator(pipe, settings, lambda *a: None, SurfaceCache(default_cache_dir()))
    prompts = ev.unseen_set()
    named = [base_named(q) for q in prompts]
    as_read, swapped = hits(ev, prompts), hits(ev, [with_base_words(q) for q in prompts])
    count = lambda ok, want: [sum(o for o, n in zip(ok, named) if n == want),  # noqa: E731
                              sum(n == want for n in named)]
    print(json.dumps({"prompts": len(prompts), "base_word": count(as_read, True),
                      "held_out_word": count(as_read, False),
                      "held_out_word_swapped_for_base": count(swapped, False)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
