"""A one-line progress bar on stderr (stdout stays clean), and the run of a command
under it."""

from __future__ import annotations

import json
import sys
import time


class StageBar:
    """progress(stage, step, total) callable that redraws one stderr line."""

    def __init__(self, stream=None, width: int = 24):
        self.stream = stream or sys.stderr
        self.width = width
        self.t0 = time.perf_counter()

    def __call__(self, stage: str, step: int, total: int) -> None:
        filled = int(self.width * step / max(total, 1))
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = time.perf_counter() - self.t0
        self.stream.write(f"\r{stage:<9} [{bar}] {step}/{total}  {elapsed:5.1f}s")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def run_with_bar(work) -> int:
    """`work(bar)` under a StageBar: the dict it returns goes to stdout as one JSON line
    (exit 0); a KilnError becomes `error (code): message` on stderr (exit 2)."""
    from .errors import KilnError
    bar = StageBar()
    try:
        answer = work(bar)
    except KilnError as exc:
        bar.close()
        print(f"error ({exc.code}): {exc.message}", file=sys.stderr)
        return 2
    bar.close()
    print(json.dumps(answer))
    return 0
