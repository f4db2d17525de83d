"""What the views mode and refine buy, and what refine costs, on held-out assets.

Held-out procedural assets (seeds from 10**8 up, engine/evaluation's "vae" block, one
category after another) are rendered as a user's pictures would be: 128 px, lit, on a
transparent background, from the training distribution of directions (azimuth a
uniform, a second picture at a + 90, elevations uniform in 5-40 degrees). Then:

  views 1 / views 2    pipe.views_to_3d from the first picture / from both
  image                pipe.image_to_3d from the first picture (DiT, image condition)
  ... + refine N       the same with refine_steps N

Each result's mesh is scored against the true surface (Chamfer-L1, 2,048 points, as
`engine eval`) and by PSNR of its vertex colours (ray-cast, albedo) against the true
albedo at the input picture's camera and at two novel cameras (a + 45 at 30 degrees,
a + 225 at 12 degrees; object space, so a result in the wrong pose scores low). Refine's
cost is the refine stage's wall time. Prints one JSON object (means over assets).

    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python scripts/modes_study.py \
        --assets 24 --refine-steps 20             # about 10 minutes on a free 2-core CPU
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.render.views import ELEVATIONS_DEG, FOV_DEG  # noqa: E402
from engine.evaluation import metrics as M  # noqa: E402
from engine.evaluation.run import (SurfaceCache, default_cache_dir, heldout_asset,  # noqa: E402
                                   one_thread, render_views)
from engine.posed import picture_cameras  # noqa: E402
from engine.render.tracer import render, render_mesh  # noqa: E402

NOVEL = ((45.0, 30.0), (225.0, 12.0))      # (azimuth from the first picture, elevation)
PICTURE_RES = 128
SCORE_RES = 64


def directions(seed: int) -> list[tuple[float, float]]:
    """Two picture directions (azimuth, elevation) of asset `seed`, 90 degrees apart."""
    rng = np.random.default_rng([seed, 7])
    a = float(rng.uniform(0, 360))
    return [(a, float(rng.uniform(*ELEVATIONS_DEG))),
            ((a + 90.0) % 360, float(rng.uniform(*ELEVATIONS_DEG)))]


def pictures(asset, dirs) -> list[np.ndarray]:
    """Lit RGBA pictures (H, W, 4) of the asset from `dirs`, background transparent."""
    cams = picture_cameras([a for a, _ in dirs], [e for _, e in dirs])
    with one_thread():
        views, _ = render_views(asset.sdf, asset.rgb, cams, PICTURE_RES)
    return [v[:4].permute(1, 2, 0).numpy() for v in views]


def score_cameras(dirs) -> torch.Tensor:
    a, e = dirs[0]
    az = [a] + [a + da for da, _ in NOVEL]
    return picture_cameras(az, [e] + [el for _, el in NOVEL])                 # (3, 4, 4)


def true_albedo(asset, cams) -> torch.Tensor:
    with one_thread():
        return render(asset.sdf, asset.rgb, cams, FOV_DEG, SCORE_RES)["rgb"]  # (3, r, r, 3)


def mesh_albedo(mesh, cams) -> torch.Tensor:
    """Vertex colours of a result ray-cast from `cams` (on white) -> (V, r, r, 3)."""
    faces = torch.as_tensor(mesh.faces_fx3.astype(np.int64))
    rgb = torch.as_tensor(mesh.vertex_colors_nx3, dtype=torch.float32) / 255.0

    def colour(face_k, bary_kx3):
        return (rgb[faces[face_k]] * bary_kx3[..., None]).sum(1)
    with one_thread():
        return render_mesh(torch.as_tensor(mesh.vertices_nx3), faces, cams, FOV_DEG, SCORE_RES,
                           color_fn=colour)["rgb"]


def score(result, truth, true_rgb, cams) -> dict:
    try:
        got = M.sample_surface(result.mesh, len(truth.points_nx3), 0).points_nx3
    except ValueError:                          # no surface at all
        got = np.zeros_like(truth.points_nx3)
    pred = mesh_albedo(result.mesh, cams)
    return {"chamfer_l1": M.chamfer_l1(got, truth.points_nx3),
            "psnr_input": M.psnr(pred[0], true_rgb[0]),
            "psnr_novel": float(np.mean([M.psnr(pred[k], true_rgb[k]) for k in (1, 2)])),
            "refine_s": result.timings.get("refine", 0.0),
            "total_s": sum(v for k, v in result.timings.items() if k != "export")}


def attempt(make):
    """make() -> its result, or a result without a surface when the model made none."""
    from engine.errors import KilnError
    from engine.geometry.mesh import Mesh
    from engine.pipeline import Result
    try:
        return make()
    except KilnError as exc:
        if "No surface came out" not in exc.message:
            raise
        return Result(mesh=Mesh(np.zeros((0, 3)), np.zeros((0, 3)),
                                vertex_colors_nx3=np.zeros((0, 3))), meta={"empty": True})


def runs(pipe, pics, dirs, refine: int, common: dict) -> dict:
    views = [{"image": p, "azimuth": a, "elevation": e} for p, (a, e) in zip(pics, dirs)]
    out = {"views 1": lambda: pipe.views_to_3d(views[:1], **common),
           "views 2": lambda: pipe.views_to_3d(views, **common),
           "image": lambda: pipe.image_to_3d(pics[0], **common)}
    if refine:
        out.update({
            f"views 1 + refine {refine}": lambda: pipe.views_to_3d(views[:1], refine_steps=refine,
                                                                   **common),
            f"views 2 + refine {refine}": lambda: pipe.views_to_3d(views, refine_steps=refine,
                                                                   **common),
            f"image + refine {refine}": lambda: pipe.image_to_3d(pics[0], refine_steps=refine,
                                                                 **common)})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="kiln-mini")
    ap.add_argument("--assets", type=int, default=24)
    ap.add_argument("--refine-steps", type=int, default=20)
    ap.add_argument("--resolution", type=int, default=64, help="extraction grid")
    ap.add_argument("--only", default="", help="comma-separated run names (default: all)")
    ap.add_argument("--verbose", action="store_true", help="one line per asset on stderr")
    ap.add_argument("--refine", nargs="*", default=[], metavar="NAME=VALUE",
                    help="override engine.refine.RefineSettings fields, e.g. lr=0.05")
    args = ap.parse_args(argv)
    from engine import refine
    for item in args.refine:
        name, value = item.split("=", 1)
        setattr(refine.DEFAULT, name, type(getattr(refine.DEFAULT, name))(value))
    from engine.data import CATEGORIES
    from engine.pipeline import Pipeline
    pipe = Pipeline.from_pretrained(args.model, device="cpu")
    cache = SurfaceCache(default_cache_dir())
    common = dict(seed=0, resolution=args.resolution, texture_mode="vertex")
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    rows: dict[str, list[dict]] = {}
    t0 = time.perf_counter()
    for i in range(args.assets):
        asset = heldout_asset("vae", i, CATEGORIES[i % len(CATEGORIES)])
        dirs = directions(asset.seed)
        pics, cams = pictures(asset, dirs), score_cameras(dirs)
        truth, true_rgb = cache.get(asset, 2048, 64), true_albedo(asset, cams)
        for name, make in runs(pipe, pics, dirs, args.refine_steps, common).items():
            if only and name not in only:
                continue
            result = attempt(make)
            row = dict(score(result, truth, true_rgb, cams),
                       empty=float(bool(result.meta.get("empty"))))
            rows.setdefault(name, []).append(row)
            if args.verbose:
                print(f"{i} {asset.category:<9} {name:<20} " + " ".join(
                    f"{k} {v:.4f}" for k, v in row.items()), file=sys.stderr, flush=True)
    summary = {name: {k: statistics.fmean(r[k] for r in got) for k in got[0]}
               for name, got in rows.items()}
    print(json.dumps({"model": pipe.name, "assets": args.assets,
                      "refine_steps": args.refine_steps, "resolution": args.resolution,
                      "refine_settings": vars(refine.DEFAULT),
                      "torch_threads": torch.get_num_threads(),
                      "wall_s": round(time.perf_counter() - t0, 1), "runs": summary}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
