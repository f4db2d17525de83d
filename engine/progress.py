"""A one-line progress bar on stderr (stdout stays clean)."""

from __future__ import annotations

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
