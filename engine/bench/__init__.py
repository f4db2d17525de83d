"""Benchmarks (`python -m engine bench`): development tools, not shipped in the extension.

cli.py: the command (per-stage speed and peak memory of the pipeline); geometry.py: the
mesh stages alone; flexicubes.py: FlexiCubes speed and quality against PyMCubes;
shapes.py: the analytic fields they run on. `median_seconds` is the one timer of them all.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of `repeats` calls of fn, after `warmup` calls that are not timed."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
