"""Where do unseen-phrasing prompts go wrong: in prompt reading or in the DiT? The eval's
unseen-phrasing prompts (held-out sentence shapes, category and colour words) are
generated as the model reads them (engine/reading.py) and scored as the eval scores them.

- category: split by whether the prompt, as read, names its category with a training
  word (so what is left is the DiT's) or not (a word read wrong or left unread);
- colour: split by how the prompt names its colour, by its base word ("a mug, mostly
  grey") or a held-out colour word ("a bowl, mostly cocoa"); then the same prompts again
  with each held-out colour word swapped for its base word, a diagnostic of what the
  colour words alone cost, not a feature.

Prints JSON of [right, of] counts.

    .venv/bin/python scripts/unseen_phrasing_study.py [--model kiln-mini] [--prompts 144]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def names_word(text: str, words: list[str]) -> bool:
    return any(re.search(rf"\b{re.escape(w)}\b", text) for w in words)


def with_base_words(prompt):
    """The prompt with every held-out colour word replaced by its base colour word."""
    from engine.data import palette as P
    text = prompt.text
    for base, words in P.COLOR_SYNONYMS_HELDOUT.items():
        for word in sorted(words, key=len, reverse=True):
            text = re.sub(rf"\b{re.escape(word)}\b", base, text)
    return dataclasses.replace(prompt, text=text)


def scored(ev, prompts, refs) -> tuple[list[bool], list[bool]]:
    """(category hits, colour hits) per prompt, as the eval scores them."""
    from engine.evaluation import metrics as M
    clouds, colours = ev.run_prompts(prompts, "unseen")
    cats = M.category_hits(clouds, [p.category for p in prompts], *refs)
    return cats, [c == p.color for c, p in zip(colours, prompts)]


def split(hits: list[bool], by: list[bool]) -> dict:
    count = lambda want: [sum(h for h, b in zip(hits, by) if b == want),  # noqa: E731
                          sum(b == want for b in by)]
    return {"yes": count(True), "no": count(False)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="kiln-mini")
    p.add_argument("--prompts", type=int, default=144)
    args = p.parse_args()
    import torch
    from engine.data import captions as C
    from engine.evaluation import metrics as M
    from engine.evaluation.run import EvalSettings, Evaluator, SurfaceCache, default_cache_dir
    from engine.pipeline import Pipeline
    torch.set_num_threads(2)
    pipe = Pipeline.from_pretrained(args.model, device="cpu")
    settings = EvalSettings()
    settings.n_unseen = args.prompts
    ev = Evaluator(pipe, settings, lambda *a: None, SurfaceCache(default_cache_dir()))
    refs = ev.references()
    ref_cats = [c for c in ev.categories for _ in range(len(refs[c][0]))]
    all_refs = M.CloudSet([q for c in ev.categories for q in refs[c][1].clouds])
    prompts = ev.unseen_set()
    cats, colours = scored(ev, prompts, (all_refs, ref_cats))
    read_names = [names_word(pipe.read_prompt(q.text).text, C.category_words(q.category))
                  for q in prompts]
    base = [names_word(q.text, [q.color]) for q in prompts]
    _, swapped = scored(ev, [with_base_words(q) for q in prompts], (all_refs, ref_cats))
    print(json.dumps({"prompts": len(prompts),
                      "category_by_read_text_naming_it": split(cats, read_names),
                      "colour_by_base_word": split(colours, base),
                      "colour_held_out_word_swapped_for_base": split(swapped, base)["no"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
