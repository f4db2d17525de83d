"""README picture of the Gaussian-splat output (docs/splat.png) and its figures.

kiln-mini's "a red chair" (seed 1, default settings) is generated once and written both
ways, chair.glb and chair-splats.ply (`--format splat`), in --out. The picture: the
splats drawn by Kiln's own splat renderer (engine/render/splats.py), the GLB's mesh
ray-cast by the tracer from the same camera with the same lighting, and the same chair
with only 2,048 splats drawn at a third of their size, so each Gaussian disc and its
orientation shows. Printed (and written to splat.json): the seconds the splat
derivation took, the .ply's size, and the PSNR of the splat render against the mesh
render, unlit, at 128 px (both 2 x 2 supersampled, over white) from the four cameras
tests/engine/test_splats.py uses: over the object's box (the rows and columns either
render covers), over the whole frame, and inside the object (colour alone).

    .venv/bin/python scripts/splat_picture.py [--out out/splat] [--picture docs/splat.png]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TILE = 384
FEW = 2048                # splats in the third tile
SHRINK = 0.35             # ... drawn at this fraction of their tangent size, to show them


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prompt", default="a red chair")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--model", default="kiln-mini")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "out" / "splat")
    p.add_argument("--picture", type=Path, default=ROOT / "docs" / "splat.png")
    return p.parse_args(argv)


def psnrs(splats, mesh) -> list[dict]:
    """The comparison of tests/engine/test_splats.py from its four cameras."""
    import torch
    from engine.evaluation.metrics import psnr
    from engine.render.cameras import orbit_cameras
    from engine.render.splats import render_splats
    from engine.render.thumbnail import albedo_fn
    from engine.render.tracer import render_mesh
    seen = []
    for c2w in orbit_cameras(4, elevation_deg=20.0, azimuth_deg=35.0):
        s = render_splats(**splats.tensors(), c2w=c2w, res=128, supersample=2)
        m = render_mesh(torch.from_numpy(mesh.vertices_nx3), torch.from_numpy(mesh.faces_fx3),
                        c2w, res=128, color_fn=albedo_fn(mesh), supersample=2)
        a, b = s["rgb"].numpy(), m["rgb"].numpy()
        rows, cols = np.nonzero((s["alpha"].numpy() > 0.01) | (m["alpha"].numpy() > 0.01))
        box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
        inside = (s["alpha"].numpy() > 0.99) & (m["alpha"].numpy() > 0.99)
        seen.append({"object": round(psnr(a[box], b[box]), 2), "frame": round(psnr(a, b), 2),
                     "inside": round(psnr(a[inside], b[inside]), 2)})
    return seen


def tiles(splats, few, mesh) -> list:
    """Three (TILE, TILE, 3) pictures, lit, from the thumbnail's three-quarter view."""
    import torch
    from engine.render.cameras import orbit_cameras
    from engine.render.splats import lit_colors, render_splats
    from engine.render.thumbnail import VIEW, albedo_fn
    from engine.render.tracer import render_mesh
    c2w = orbit_cameras(1, **VIEW)[0]

    def draw(s):
        t = s.tensors()
        t["colors_nx3"] = lit_colors(t["colors_nx3"], torch.from_numpy(s.normals_nx3),
                                     t["means_nx3"], c2w)
        return render_splats(**t, c2w=c2w, res=TILE, supersample=2)["rgb"].numpy()
    mesh_rgb = render_mesh(torch.from_numpy(mesh.vertices_nx3), torch.from_numpy(mesh.faces_fx3),
                           c2w, res=TILE, color_fn=albedo_fn(mesh), supersample=2,
                           shaded=True)["rgb"].numpy()
    return [draw(splats), mesh_rgb, draw(few)]


def compose(pictures: list, labels: list[str], path: Path) -> None:
    from PIL import Image, ImageDraw
    sheet = Image.new("RGB", (len(pictures) * TILE, TILE + 28), (24, 24, 28))
    draw = ImageDraw.Draw(sheet)
    for i, (rgb, label) in enumerate(zip(pictures, labels)):
        sheet.paste(Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)),
                    (i * TILE, 0))
        draw.text((i * TILE + 8, TILE + 6), label, fill=(235, 235, 235))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    from engine.geometry.splats import splats_from_mesh
    from engine.pipeline import Pipeline
    pipe = Pipeline.from_pretrained(args.model, device="cpu")
    result = pipe.text_to_3d(args.prompt, seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    pipe.export(result, args.out / "chair.glb")
    ply, _ = pipe.export_splat(result, args.out / "chair-splats.ply")  # its own sidecar
    sdf_fn, rgb_fn = pipe.field_fns(result.planes)
    t0 = time.perf_counter()
    with torch.inference_mode():
        splats = splats_from_mesh(result.mesh, rgb_fn=rgb_fn, sdf_fn=sdf_fn, seed=args.seed)
    derive_s = time.perf_counter() - t0
    with torch.inference_mode():
        few = splats_from_mesh(result.mesh, count=FEW, rgb_fn=rgb_fn, sdf_fn=sdf_fn,
                               seed=args.seed)
    few.scales_nx3 = few.scales_nx3 * np.float32([SHRINK, SHRINK, 1.0])
    figures = {"prompt": args.prompt, "seed": args.seed, "model": pipe.name,
               "splats": splats.num_splats, "derive_s": round(derive_s, 3),
               "export_timings": {k: round(v, 3) for k, v in result.timings.items()},
               "ply_mb": round(ply.stat().st_size / 2**20, 2),
               "mesh_faces": result.mesh.num_faces, "psnr": psnrs(splats, result.mesh)}
    worst = min(p["object"] for p in figures["psnr"])
    labels = [f"{splats.num_splats:,} splats (Kiln's splat renderer)",
              f"the mesh, {result.mesh.num_faces:,} faces (ray-cast)",
              f"{FEW:,} splats at {SHRINK:.2f} of their size"]
    compose(tiles(splats, few, result.mesh), labels, args.picture)
    (args.out / "splat.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    print(f"lowest object-box PSNR {worst:.2f} dB; picture: {args.picture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
