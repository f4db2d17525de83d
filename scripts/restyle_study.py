"""What Restyle gives with a model: held-out procedural assets, meshed and UV-unwrapped
in their own colours (a stand-in for an artist's textured mesh), restyled to colours
they do not have, at several strengths. Per strength: how often the restyled surface's
dominant colour is the one asked for (engine.evaluation.metrics.dominant_color, the
eval's own colour vote), how often it is still the asset's own, and the seconds a
restyle takes. The geometry and UVs are the asset's throughout, by construction.

    .venv/bin/python scripts/restyle_study.py [--model kiln-mini] [--assets 12]
        [--colors blue green yellow red] [--strengths 0.5 0.85 1.0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="kiln-mini")
    p.add_argument("--assets", type=int, default=12)
    p.add_argument("--colors", nargs="+", default=["blue", "green", "yellow", "red"])
    p.add_argument("--strengths", nargs="+", type=float, default=[0.5, 0.85, 1.0])
    p.add_argument("--resolution", type=int, default=64, help="meshing grid of the assets")
    p.add_argument("--texture", type=int, default=256)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, default=None)
    return p.parse_args(argv)


def heldout_mesh(index: int, texture: int, resolution: int):
    """(category, own colour, Mesh with UVs and a texture of its true colours)."""
    from engine.data.shapes import make_asset
    from engine.geometry.extract import extract_surface
    from engine.geometry.mesh_ops import clean
    from engine.geometry.texture import bake_texture
    from engine.train.cli import HELDOUT_SEED_BASE
    asset = make_asset(HELDOUT_SEED_BASE + 900_000 + index)
    with torch.no_grad():
        mesh = clean(extract_surface(asset.sdf, resolution=resolution), target_faces=8000)
        mesh = bake_texture(mesh, asset.rgb, size=texture, sdf_fn=asset.sdf)
    return asset.category, asset.main_color, mesh


def restyle_mesh(mesh):
    from engine.geometry.texture import sample_texture
    from engine.restyle import RestyleMesh
    faces = mesh.faces_fx3.astype(np.int64)
    colours = sample_texture(mesh.texture_hxwx3, mesh.uvs_nx2)[faces] / 255.0
    return RestyleMesh(mesh.vertices_nx3, faces, mesh.uvs_nx2[faces], colours.astype(np.float32))


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    from engine.evaluation.metrics import dominant_color
    from engine.pipeline import Pipeline
    pipe = Pipeline.from_pretrained(args.model, device="cpu")
    pipe.warm_up()
    rows = []
    for i in range(args.assets):
        category, own, mesh = heldout_mesh(i, args.texture, args.resolution)
        source = restyle_mesh(mesh)
        for colour in [c for c in args.colors if c != own][:3]:
            for strength in args.strengths:
                t0 = time.perf_counter()
                res = pipe.restyle(source, f"a {colour} {category}", strength=strength,
                                   seed=args.seed, texture=args.texture)
                seconds = time.perf_counter() - t0
                got = dominant_color(mesh.replace(texture_hxwx3=res.texture))
                rows.append({"asset": i, "category": category, "own": own, "asked": colour,
                             "strength": strength, "got": got, "seconds": seconds,
                             "triangles": int(mesh.num_faces)})
        print(f"asset {i} ({own} {category}, {mesh.num_faces} triangles): "
              + ", ".join(f"{r['asked']}@{r['strength']:g}->{r['got']}" for r in rows
                          if r["asset"] == i), flush=True)
    summary = {}
    for strength in args.strengths:
        mine = [r for r in rows if r["strength"] == strength]
        summary[str(strength)] = {
            "restyles": len(mine),
            "asked_colour": round(float(np.mean([r["got"] == r["asked"] for r in mine])), 3),
            "own_colour_kept": round(float(np.mean([r["got"] == r["own"] for r in mine])), 3),
            "median_seconds": round(float(np.median([r["seconds"] for r in mine])), 3)}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
