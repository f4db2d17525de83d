"""`python -m engine dataset`: write training shards from procedural assets or meshes.

  python -m engine dataset --procedural N --out DIR [--start S] [--views 4] [--res 64]
  python -m engine dataset --meshes DIR --out DIR [--views 4] [--res 64] [--up y|z]
  python -m engine dataset --sheet FILE.png [--res 128] [--start S]   (one render per category)

Shards are DIR/shard-00000.safetensors + .json, listed in DIR/index.json (see
engine/data/dataset.py). Progress goes to stderr; stdout gets one JSON summary line.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

MESH_SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl", ".off")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--procedural", type=int, metavar="N", help="write N procedural examples")
    src.add_argument("--meshes", type=Path, metavar="DIR",
                     help="render every .glb/.gltf/.obj/.ply/.stl/.off file in DIR")
    src.add_argument("--sheet", type=Path, metavar="PNG",
                     help="save a contact sheet: one shaded render per category")
    parser.add_argument("--out", type=Path, help="output folder for shards")
    parser.add_argument("--start", type=int, default=0, help="first procedural seed")
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--res", type=int, default=None, help="image size (64; sheet 128)")
    parser.add_argument("--points", type=int, default=4096, help="3D samples per example")
    parser.add_argument("--captions", type=int, default=4, help="captions per example")
    parser.add_argument("--shard-size", type=int, default=256, help="examples per shard")
    parser.add_argument("--workers", type=int, default=1, help="processes (procedural)")
    parser.add_argument("--up", choices=("y", "z"), default="y",
                        help="up axis of the mesh files (glTF and most OBJ are Y-up)")


def _proc_job(job):
    import torch
    torch.set_num_threads(1)
    from .dataset import make_example
    seed, views, res, points, n_captions = job
    return make_example(seed, views, res, points, n_captions=n_captions)


def _examples(args):
    """Yield examples in order (procedural in a process pool when --workers > 1)."""
    from .dataset import log, make_mesh_example
    if args.procedural is not None:
        jobs = [(args.start + i, args.views, args.res, args.points, args.captions)
                for i in range(args.procedural)]
        if args.workers > 1:
            import multiprocessing as mp
            with mp.get_context("spawn").Pool(args.workers) as pool:
                yield from pool.imap(_proc_job, jobs, chunksize=4)
        else:
            yield from map(_proc_job, jobs)
        return
    files = sorted(p for p in args.meshes.iterdir() if p.suffix.lower() in MESH_SUFFIXES)
    if not files:
        raise SystemExit(f"no mesh files ({', '.join(MESH_SUFFIXES)}) in {args.meshes}")
    for i, path in enumerate(files):
        try:
            yield make_mesh_example(path, i, args.views, args.res, args.points, args.up)
        except Exception as exc:  # a broken file (parsers raise all kinds): skip it, say why
            log(f"skipping {path.name}: {type(exc).__name__}: {exc}")


def write_dataset(args) -> dict:
    from .dataset import log, write_index, write_shard
    args.out.mkdir(parents=True, exist_ok=True)
    shards, batch, count, with_sdf = [], [], 0, 0
    t0 = time.time()
    for ex in _examples(args):
        batch.append(ex)
        count += 1
        with_sdf += int(ex["has_sdf"])
        if len(batch) == args.shard_size:
            shards.append(write_shard(args.out / f"shard-{len(shards):05d}", batch))
            batch = []
        if count % 50 == 0:
            log(f"dataset: {count} examples ({time.time() - t0:.0f}s)")
    if batch:
        shards.append(write_shard(args.out / f"shard-{len(shards):05d}", batch))
    if count == 0:
        raise SystemExit(_nothing_written(args))
    source = "procedural" if args.procedural is not None else str(args.meshes)
    write_index(args.out, shards, {"count": count, "source": source, "views": args.views,
                                   "res": args.res, "points": args.points,
                                   "start": args.start if args.procedural is not None else None})
    return {"out": str(args.out), "examples": count, "with_sdf": with_sdf,
            "shards": len(shards), "seconds": round(time.time() - t0, 2)}


def _nothing_written(args) -> str:
    if args.procedural is not None:
        return f"--procedural {args.procedural} writes no examples: give a count of at least 1."
    return (f"No example came out of {args.meshes}: every mesh file in it was skipped (the "
            "reasons are above). Repair or re-export them (e.g. as .glb) and run again.")


def contact_sheet(path: Path, res: int = 128, start: int = 0, columns: int = 6) -> dict:
    """One shaded render per category (the asset of seed start * 24 + k) in a grid PNG."""
    import numpy as np
    from PIL import Image
    from ..render import orbit_cameras, render
    from .shapes import CATEGORIES, make_asset
    cam = orbit_cameras(1, elevation_deg=25, azimuth_deg=-60)
    n = len(CATEGORIES)
    tiles = []
    for k, cat in enumerate(CATEGORIES):
        asset = make_asset(start * n + k)
        out = render(asset.sdf, asset.rgb, cam, 40.0, res, shaded=True, supersample=2)
        tiles.append((out["rgb"][0].clamp(0, 1).numpy() * 255).astype(np.uint8))
    rows = (n + columns - 1) // columns
    tiles += [np.full_like(tiles[0], 255)] * (rows * columns - n)
    grid = np.concatenate([np.concatenate(tiles[r * columns:(r + 1) * columns], 1)
                           for r in range(rows)], 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)
    return {"sheet": str(path), "categories": n, "res": res}


def main(args) -> int:
    if args.sheet is not None:
        summary = contact_sheet(args.sheet, args.res or 128, args.start)
    else:
        if args.out is None:
            raise SystemExit("--out DIR is required with --procedural or --meshes")
        args.res = args.res or 64
        summary = write_dataset(args)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":  # python -m engine.data.cli ...
    p = argparse.ArgumentParser(prog="python -m engine dataset")
    add_arguments(p)
    raise SystemExit(main(p.parse_args()))
