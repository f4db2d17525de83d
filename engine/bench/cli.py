"""`python -m engine bench [--json]`: speed and memory on the current device.

- cold start: spawn `python -m engine serve` and time until its `ready` line;
- warm medians per stage (condition, sample, decode, extract, texture, export) for text
  and image mode, and the total;
- peak memory (process max RSS on the CPU; max allocated on CUDA);
- geometry alone: extraction at 64/128/256 on a torus SDF, texture stage on 20K faces.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES = ("condition", "sample", "decode", "extract", "texture", "export", "thumbnail")


def add_arguments(p) -> None:
    p.add_argument("--model", default="kiln-mini")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--prompt", default="a red chair",
                   help="text mode's prompt (one with words the model never trained on "
                        "times prompt reading in the condition stage)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--skip-geometry", action="store_true")
    p.add_argument("--skip-cold", action="store_true")


def cold_start(model: str, device: str) -> float:
    """Seconds from process spawn to the `ready` message."""
    root = Path(__file__).resolve().parents[2]            # the folder that holds engine/
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "engine", "serve", "--model", model,
                             "--device", device], cwd=root, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stdout:
            if '"ready"' in line:
                return time.perf_counter() - t0
            if '"error"' in line:
                raise RuntimeError(line.strip())
        raise RuntimeError("the engine exited before it was ready")
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def _reference_picture(folder: Path) -> Path:
    """A simple picture for image mode: a red disc on white."""
    import numpy as np
    from PIL import Image
    yy, xx = np.mgrid[:128, :128]
    img = np.full((128, 128, 3), 255, np.uint8)
    img[(yy - 64) ** 2 + (xx - 64) ** 2 < 40 ** 2] = (200, 30, 30)
    path = folder / "reference.png"
    Image.fromarray(img).save(path)
    return path


def warm_stages(pipe, mode: str, repeats: int, folder: Path,
                prompt: str = "a red chair") -> dict:
    runs = []
    picture = _reference_picture(folder)
    for i in range(repeats + 1):                   # the first run warms caches, not counted
        t0 = time.perf_counter()
        res = (pipe.text_to_3d(prompt, seed=i) if mode == "text"
               else pipe.image_to_3d(picture, seed=i))
        pipe.export(res, folder / f"{mode}{i}.glb")
        res.timings["total"] = time.perf_counter() - t0
        if i:
            runs.append(res.timings)
    return {k: round(statistics.median(r[k] for r in runs), 4) for k in STAGES + ("total",)}


def peak_memory_mb(device) -> dict:
    out = {"cpu_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if device.type == "cuda":
        import torch
        out["cuda_max_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def run(args) -> dict:
    import torch
    from ..pipeline import Pipeline
    report = {"device": None, "threads": torch.get_num_threads(), "machine": platform.machine(),
              "cpu_count": os.cpu_count(), "model": args.model, "repeats": args.repeats,
              "prompt": args.prompt}
    if not args.skip_cold:
        report["cold_start_s"] = round(cold_start(args.model, args.device), 3)
    pipe = Pipeline.from_pretrained(args.model, device=args.device)
    pipe.warm_up()
    report["device"] = str(pipe.device)
    if pipe.device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(pipe.device)
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("text", "image"):
            report[f"{mode}_median_s"] = warm_stages(pipe, mode, args.repeats, Path(tmp),
                                                     args.prompt)
    report["peak_memory"] = peak_memory_mb(pipe.device)
    if not args.skip_geometry:
        report["geometry"] = geometry_figures()
    return report


def geometry_figures() -> dict:
    from .geometry import bench_extract, bench_texture
    figures = {"extract_torus_s": bench_extract(), "texture_20k_1024_s": bench_texture()}
    try:
        from .flexicubes import bench_flexicubes
        figures["flexicubes"] = bench_flexicubes()
    except ImportError:                    # the PyMCubes baseline is not installed
        pass
    return figures


def main(args) -> int:
    report = run(args)
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:>18}: {value}")
    return 0
