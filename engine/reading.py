"""Prompt reading: the words of a prompt that a model never saw in its training captions,
read as the nearest name it knows ("a tiny green sedan" -> "a small green car").

A model folder may hold VOCABULARY_FILE (`train dit` writes it from its latent store):
    {"words": [every word of the training captions],
     "names": {phrase: name, or null}}
`names` are what an unknown word can be read as: each category phrase of the captions
("couch", "bar stool") with its category's name ("sofa", "stool"), each size word with
itself, and each colour phrase with null: a word nearest a colour is left as written,
because the text encoder's vectors do not tell colours apart (of kiln-mini's 32 training
colour phrases, 12 lie nearest a phrase of their own colour among all its names).

A run of unknown words is read two at a time where the pair reads more surely than either
word ("reading light"), else word by word. A word (or pair) is read as the name of its
nearest phrase, by cosine of the text encoder's pooled vectors of "a WORD", when that
cosine is at least `min_similarity`. 0.55 was chosen from the training phrases, before
the held-out test was run: read against the others (those sharing a word left out),
kiln-mini's 58 training category phrases read right 27 times and wrong 7 at >= 0.55 (22
and 3 at >= 0.6, 29 and 18 at >= 0.5). Prompts made of known words pass unchanged, so
the phrasings a model was trained on behave exactly as before.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import WEIGHTS_INVALID, KilnError

VOCABULARY_FILE = "vocabulary.json"
MIN_SIMILARITY = 0.55
WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*", re.IGNORECASE)


def words_of(text: str) -> list[str]:
    """Lower-case words of a text ("I'd like a tea-cup" -> i'd, like, a, tea, cup)."""
    return [w.lower() for w in WORD.findall(text)]


def write_vocabulary(folder: Path, captions: list[str], names: dict[str, str | None]) -> Path:
    """VOCABULARY_FILE for a model trained on `captions`: their words, and the `names`
    whose phrases occur in them."""
    words = sorted({w for c in captions for w in words_of(c)})
    known = set(words)
    used = {p: n for p, n in sorted(names.items()) if set(words_of(p)) <= known}
    path = Path(folder) / VOCABULARY_FILE
    path.write_text(json.dumps({"words": words, "names": used}, indent=1) + "\n",
                    encoding="utf-8")
    return path


@dataclass
class Reading:
    text: str                                   # what the model is given
    words: dict[str, str] = field(default_factory=dict)   # {unknown word or run: name}

    def meta(self) -> dict:
        """What a result's metadata records of it (nothing when nothing was read)."""
        return {"read_as": self.text, "read_words": dict(self.words)} if self.words else {}


class PromptReader:
    """Reads prompts against one model's vocabulary with its text encoder (see the module
    docstring). `encode(texts) -> (tokens, mask, pooled (N, D) unit)`."""

    def __init__(self, encode, words: list[str], names: dict[str, str | None],
                 min_similarity: float = MIN_SIMILARITY):
        self.encode = encode
        self.known = set(words)
        self.phrases = list(names)
        self.names = [names[p] for p in self.phrases]
        self.min_similarity = min_similarity
        self._phrase_vectors = None             # (P, D), on first use

    @classmethod
    def for_folder(cls, folder: Path | None, encode) -> "PromptReader | None":
        """The reader of a model folder's VOCABULARY_FILE; None where it has none.
        KilnError(WEIGHTS_INVALID) where SHA256SUMS does not list it (it would go
        unchecked) or it is not a vocabulary."""
        path = Path(folder) / VOCABULARY_FILE if folder else None
        if path is None or not path.is_file():
            return None
        from .io.weights import REFETCH, read_sha256sums
        if VOCABULARY_FILE not in read_sha256sums(folder):
            raise KilnError(WEIGHTS_INVALID, f"{path} is not listed in the folder's SHA256SUMS, "
                            "so it cannot be checked: delete it (prompts are then read as "
                            f"written) or {REFETCH[0].lower()}{REFETCH[1:]}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            words, names = data["words"], data["names"]
            if not (all(isinstance(w, str) for w in words) and all(
                    isinstance(p, str) and (n is None or isinstance(n, str))
                    for p, n in names.items())):
                raise ValueError("its words and names must be strings")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KilnError(WEIGHTS_INVALID, f"{path} is not a Kiln vocabulary ({exc}). "
                            f"{REFETCH}") from exc
        return cls(encode, words, names)

    def read(self, prompt: str) -> Reading:
        runs = self._unknown_runs(prompt)
        spans = self._spans(runs) if runs else []
        if not spans:
            return Reading(prompt)
        text = prompt
        for start, end, _, name in reversed(spans):
            text = text[:start] + name + text[end:]
        return Reading(_tidy(text), {phrase: name for _, _, phrase, name in spans})

    def _unknown_runs(self, prompt: str) -> list[list[re.Match]]:
        """Maximal runs of adjacent unknown words (separated by spaces only)."""
        runs, last = [], None
        for m in WORD.finditer(prompt):        # the prompt's own positions, any case
            if m.group(0).lower() in self.known:
                last = None
                continue
            if last is not None and prompt[last.end():m.start()].strip() == "":
                runs[-1].append(m)
            else:
                runs.append([m])
            last = m
        return runs

    def _spans(self, runs) -> list[tuple[int, int, str, str]]:
        """(start, end, words, name) of each span read, in prompt order: two adjacent
        unknown words together where the pair reads as a name more surely than either
        word alone and neither is a colour word ("reading light"), else words one by one."""
        words = [m for run in runs for m in run]                     # matches, in order
        run_of = [k for k, run in enumerate(runs) for _ in run]
        alone = self._nearest([m.group(0) for m in words])
        pairs = [(i, i + 1) for i in range(len(words) - 1) if run_of[i] == run_of[i + 1]]
        together = self._nearest([f"{words[i].group(0)} {words[j].group(0)}"
                                  for i, j in pairs]) if pairs else []
        spans, used = [], set()
        for (i, j), (name, sim, colour) in sorted(zip(pairs, together), key=lambda p: -p[1][1]):
            if used & {i, j} or not self._reads(sim, colour) or \
                    alone[i][2] or alone[j][2] or sim <= max(alone[i][1], alone[j][1]):
                continue
            spans.append((words[i].start(), words[j].end(),
                          f"{words[i].group(0)} {words[j].group(0)}", name))
            used |= {i, j}
        spans += [(m.start(), m.end(), m.group(0), name) for i, (m, (name, sim, colour))
                  in enumerate(zip(words, alone)) if i not in used and self._reads(sim, colour)]
        return sorted(spans)

    def _reads(self, sim: float, colour: bool) -> bool:
        return not colour and sim >= self.min_similarity

    def _nearest(self, phrases: list[str]) -> list[tuple[str | None, float, bool]]:
        """Per phrase: (the name of its nearest known phrase, their cosine, whether that
        phrase is a colour's)."""
        if self._phrase_vectors is None:
            self._phrase_vectors = self._vectors(self.phrases)             # (P, D)
        sims = self._vectors(phrases) @ self._phrase_vectors.T             # (N, P)
        best, index = sims.max(1)
        return [(self.names[i], s, self.names[i] is None)
                for s, i in zip(best.tolist(), index.tolist())]

    def _vectors(self, phrases: list[str]) -> torch.Tensor:
        pooled = self.encode([f"a {p}" for p in phrases])[2].float()
        return torch.nn.functional.normalize(pooled, dim=-1)


def _tidy(text: str) -> str:
    """'a' -> 'an' before a vowel and back, single spaces."""
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\b([Aa])n (?=[^aeiouAEIOU\W])", r"\1 ", text)
    return re.sub(r"\b([Aa]) (?=[aeiouAEIOU])", r"\1n ", text)
