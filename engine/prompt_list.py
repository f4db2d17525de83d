"""`python -m engine generate --prompts FILE.txt --out DIR`: one GLB + JSON (+ thumbnail)
per prompt of a list, and DIR/contact-sheet.png of them all.

    a red chair
    a blue mug | 7          <- its own seed (the others take --seed)
    # a comment; blank lines are skipped too

protocol.parse_prompt_list reads the list (the add-on reads a text block with it too).
A bad line -- an empty prompt, a seed that is not a whole number, a prompt that gives no
surface -- is reported on stderr with its line number and skipped; the rest still come
out. Every output path is checked before the model loads. Files are named
NN-PROMPT-sSEED.glb in list order. stdout carries one JSON line: the results, the
skipped lines and the sheet. Exit status 0 when every line came out, 1 when some were
skipped, 2 when nothing could be made (the list unreadable or without a good line).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import protocol
from .errors import BAD_REQUEST, KilnError
from .io import outputs

SHEET_NAME = "contact-sheet.png"


class ListBar:
    """progress(stage, step, total) over a list of jobs: one stderr line with the list's
    bar, the job in hand and its stage; note() prints a line above it."""

    def __init__(self, count: int, stream=None, width: int = 24):
        self.stream = stream or sys.stderr
        self.count, self.width = count, width
        self.index, self.label = 0, ""
        self.t0 = time.perf_counter()

    def start(self, index: int, label: str) -> None:
        self.index, self.label = index, label[:28]
        self("start", 0, 1)

    def __call__(self, stage: str, step: int, total: int) -> None:
        filled = int(self.width * self.index / max(self.count, 1))
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = time.perf_counter() - self.t0
        self.stream.write(f"\r[{bar}] {self.index + 1}/{self.count} {self.label:<28} "
                          f"{stage:<8} {step}/{total} {elapsed:6.1f}s")
        self.stream.flush()

    def note(self, text: str) -> None:
        self.stream.write("\r" + text + "\n")
        self.stream.flush()

    def close(self) -> None:
        filled = "#" * self.width
        self.stream.write(f"\r[{filled}] {self.count}/{self.count} done in "
                          f"{time.perf_counter() - self.t0:.1f}s\n")
        self.stream.flush()


def read_list(path: str, default_seed: int) -> tuple[list[dict], list[dict]]:
    """The prompt list file -> protocol.parse_prompt_list's (items, bad lines); bytes
    that are not UTF-8 become a broken character, reported on their own line."""
    try:
        text = Path(path).expanduser().read_bytes().decode("utf-8", "surrogateescape")
    except OSError as exc:
        raise KilnError(BAD_REQUEST, f"The prompt list {path} cannot be read "
                        f"({exc.strerror or type(exc).__name__}): give a text file with "
                        "one prompt a line.") from None
    return protocol.parse_prompt_list(text, default_seed)


def out_name(index: int, count: int, item: dict) -> str:
    """NN-PROMPT-sSEED.glb: list order first, so a folder listing keeps it."""
    stem = protocol.slug(item["prompt"], "prompt")
    return f"{index + 1:0{len(str(count))}d}-{stem}-s{item['seed']}.glb"


def plan(args, items: list[dict], request) -> list[tuple[dict, dict]]:
    """(item, checked generate request) per item; every output checked before any work.
    request(flags) -> a generate request: generate.request, which passes itself in (so
    this module does not import the one that dispatches to it)."""
    folder = outputs.check_out_folder(args.out, SHEET_NAME,
                                      "--prompts writes one GLB per prompt", "chairs/")
    planned = []
    for i, item in enumerate(items):
        out = folder / out_name(i, len(items), item)
        flags = argparse.Namespace(**dict(vars(args), prompt=item["prompt"], prompts=None,
                                          seed=item["seed"], out=str(out)))
        params = request(flags)
        outputs.check_writable(out)
        planned.append((item, params))
    return planned


def run(pipe, planned, bar) -> tuple[list[dict], list[dict], list]:
    """Generate and export each planned request; (made, skipped, thumbnails)."""
    from .render.thumbnail import thumbnail_rgba
    made, skipped, tiles = [], [], []
    for i, (item, params) in enumerate(planned):
        bar.start(i, item["prompt"])
        try:
            result = pipe.generate(params, progress=bar)
            glb, sidecar = pipe.export(result, params["out"])
        except Exception as exc:                 # one item's failure skips it alone
            skipped.append({"line": item["line"], "message": _failure(item, exc)})
            bar.note(f"skipped {skipped[-1]['message']}")
            continue
        made.append(dict(item, glb=str(glb), json=str(sidecar)))
        tiles.append((thumbnail_rgba(result.mesh), f"{item['line']} {item['prompt']}"))
    return made, skipped, tiles


def _failure(item: dict, exc: Exception) -> str:
    """The sentence for a list item that failed: the refusal's own, or the error's."""
    if isinstance(exc, KilnError):
        text = f"{exc.message[:1].lower()}{exc.message[1:]}"
    else:
        text = (f"the engine failed on this prompt ({type(exc).__name__}: {exc}); try "
                "another seed or a larger texture size")
    return f"Line {item['line']}: {text}"


def write_sheet(folder: Path, tiles) -> str | None:
    """DIR/contact-sheet.png of the thumbnails (None when nothing came out)."""
    if not tiles:
        return None
    from .render.contact_sheet import contact_sheet_png
    data = contact_sheet_png([t for t, _ in tiles], [c for _, c in tiles])
    return str(outputs.write_atomic(folder / SHEET_NAME, data))


def main(args, request) -> int:
    """`generate --prompts FILE`: request is generate.request (see plan)."""
    try:
        items, bad = read_list(args.prompts, args.seed)
        for line in bad:
            print(f"skipped {line['message']}", file=sys.stderr)
        if not items:
            raise KilnError(BAD_REQUEST, f"The prompt list {args.prompts} has no prompt to "
                            f"make: write one a line, {protocol.LIST_EXAMPLE}.")
        planned = plan(args, items, request)
        from .pipeline import Pipeline
        pipe = Pipeline.from_pretrained(args.model, device=args.device, allow_online=args.online)
    except KilnError as exc:
        print(f"error ({exc.code}): {exc.message}", file=sys.stderr)
        return 2
    bar = ListBar(len(planned))
    made, skipped, tiles = run(pipe, planned, bar)
    bar.close()
    folder = Path(args.out).expanduser().resolve()
    sheet = write_sheet(folder, tiles)
    skipped = sorted(bad + skipped, key=lambda s: s["line"])
    print(json.dumps({"results": made, "skipped": skipped, "sheet": sheet}))
    print(f"made {len(made)} of {len(made) + len(skipped)} prompts"
          + ("; the skipped lines are named above" if skipped else ""), file=sys.stderr)
    return 0 if not skipped else 1 if made else 2
