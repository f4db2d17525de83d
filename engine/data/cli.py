"""`python -m engine dataset`: write an asset store from procedural assets or meshes.

  python -m engine dataset --procedural N --out DIR [--start S] [--views 4] [--res 64]
  python -m engine dataset --meshes DIR --out DIR [--views 4] [--res 64] [--up y|z|x|-y|-z|-x]
  python -m engine dataset --sheet FILE.png [--res 128] [--start S]   (one render per category)

The store is DIR/store-*.safetensors + DIR/store.json, the one format every trainer reads
(engine/data/dataset.py). Mesh files (.glb/.gltf/.obj/.ply/.stl/.off, sub-folders too) take
their captions from captions.csv (file,caption[,category]), NAME.txt beside them, or their
file name; a file that cannot be used is skipped with one line saying why. Progress goes
to stderr; stdout gets one JSON summary line.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..config import UP_ROTATIONS
from .meshes import MESH_SUFFIXES  # noqa: F401  (older imports)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--procedural", type=int, metavar="N", help="write N procedural assets")
    src.add_argument("--meshes", type=Path, metavar="DIR",
                     help="every .glb/.gltf/.obj/.ply/.stl/.off file under DIR")
    src.add_argument("--sheet", type=Path, metavar="PNG",
                     help="save a contact sheet: one shaded render per category")
    parser.add_argument("--out", type=Path, help="output folder of the store")
    parser.add_argument("--start", type=int, default=0, help="first procedural seed")
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--res", type=int, default=None, help="image size (64; sheet 128)")
    parser.add_argument("--points", type=int, default=None,
                        help="3D samples per asset (4096; meshes 16384: their pool of fresh samples)")
    parser.add_argument("--workers", type=int, default=2, help="processes")
    parser.add_argument("--up", choices=tuple(UP_ROTATIONS), default="y",
                        help="up axis of the mesh files (glTF and most OBJ are Y-up)")


def write_dataset(args) -> dict:
    from .dataset import build_store, library_sources, log, procedural_sources
    t0 = time.time()
    if args.procedural is not None:
        if args.procedural < 1:
            raise SystemExit(f"--procedural {args.procedural} writes no examples: give a count "
                             "of at least 1.")
        sources = procedural_sources(range(args.start, args.start + args.procedural))
    else:
        try:
            sources = library_sources(args.meshes, up=args.up)
        except ValueError as exc:
            raise SystemExit(str(exc)) from exc
    points = args.points or (4096 if args.procedural is not None else 16384)

    def progress(done, total):
        if done % 50 == 0 or done == total:
            log(f"dataset: {done}/{total} assets ({time.time() - t0:.0f}s)")
    try:
        store = build_store(sources, args.views, args.res, points, args.workers, progress)
    except ValueError as exc:
        raise SystemExit(f"No example came out of {args.meshes}: every mesh file in it was "
                         "skipped (the reasons are above). Repair or re-export them (e.g. as "
                         ".glb) and run again.") from exc
    store.save(args.out)
    return {"out": str(args.out), "examples": len(store), "skipped": len(store.info["skipped"]),
            "points": points, "seconds": round(time.time() - t0, 2)}


def contact_sheet(path: Path, res: int = 128, start: int = 0, columns: int = 6) -> dict:
    """One shaded render per category (the asset of seed start * 24 + k) in a grid PNG."""
    import numpy as np
    from PIL import Image
    from ..render import orbit_cameras, render
    from .shapes import CATEGORIES, make_asset
    from ..render.views import FOV_DEG
    cam = orbit_cameras(1, elevation_deg=25, azimuth_deg=-60)
    n = len(CATEGORIES)
    tiles = []
    for k, cat in enumerate(CATEGORIES):
        asset = make_asset(start * n + k)
        out = render(asset.sdf, asset.rgb, cam, FOV_DEG, res, shaded=True, supersample=2)
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
