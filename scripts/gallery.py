"""README pictures: text-to-3D for several prompts and one image-to-3D example, each GLB
rendered in Blender (Cycles, CPU) and laid out with its prompt in docs/gallery.png.

    .venv/bin/python scripts/gallery.py [--model kiln-mini] [--out out/gallery]
        [--picture docs/gallery.png] [--seed 1] [--prompts "a red chair" ...]

The image-to-3D example renders a held-out procedural asset (a seed training never saw),
reconstructs it from that one picture, and shows the picture beside the result.
Engine and Blender run in separate processes (the engine never imports bpy).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["a red chair", "a brown table", "a yellow lamp", "a blue car", "a green tree",
           "a white mug", "a grey airplane", "a purple sofa"]
TILE = 320


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="kiln-mini")
    p.add_argument("--out", type=Path, default=ROOT / "out" / "gallery")
    p.add_argument("--picture", type=Path, default=ROOT / "docs" / "gallery.png")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--heldout", type=int, default=0, help="index of the held-out asset")
    p.add_argument("--prompts", nargs="+", default=PROMPTS)
    p.add_argument("--render-only", nargs=2, metavar=("GLB", "PNG"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- engine side

def make_assets(args) -> list[dict]:
    """GLBs for every prompt and the image-to-3D example -> [{glb, label, picture?}]."""
    from engine.pipeline import Pipeline
    pipe = Pipeline.from_pretrained(args.model, device="cpu")
    args.out.mkdir(parents=True, exist_ok=True)
    items = []
    for i, prompt in enumerate(args.prompts):
        glb = args.out / f"text_{i}.glb"
        pipe.export(pipe.text_to_3d(prompt, seed=args.seed), glb)
        items.append({"glb": str(glb), "label": prompt})
    picture = args.out / "heldout.png"
    asset = heldout_picture(args.heldout, picture)
    glb = args.out / "image.glb"
    pipe.export(pipe.image_to_3d(picture, seed=args.seed), glb)
    items.append({"glb": str(glb), "label": f"image-to-3D ({asset})", "picture": str(picture)})
    return items


def heldout_picture(index: int, path: Path) -> str:
    """Render held-out asset `index` (seed >= HELDOUT_SEED_BASE) on white -> its category."""
    import numpy as np
    from PIL import Image
    from engine.data.shapes import make_asset
    from engine.render.views import FOV_DEG
    from engine.render.cameras import orbit_cameras
    from engine.render.tracer import render
    from engine.train.cli import HELDOUT_SEED_BASE
    asset = make_asset(HELDOUT_SEED_BASE + 900_000 + index)
    out = render(asset.sdf, asset.rgb, orbit_cameras(1, elevation_deg=20, azimuth_deg=35),
                 FOV_DEG, 256, shaded=True)
    rgb = out["rgb"][0].numpy()
    alpha = out["alpha"][0].numpy()[..., None]
    pixels = np.concatenate([rgb, alpha], -1)
    Image.fromarray((pixels * 255).clip(0, 255).astype(np.uint8), "RGBA").save(path)
    return asset.category


# ----------------------------------------------------------------------------- Blender side

def render_glb(glb: str, png: str) -> None:
    """Run inside bpy: a clean scene, the GLB, the demo's lights and camera, Cycles."""
    import bpy
    sys.path.insert(0, str(ROOT / "scripts"))
    import demo
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=glb)
    meshes = [o for o in bpy.context.scene.objects if o.type == 'MESH']
    target = meshes[0]
    lowest = min((target.matrix_world @ v.co).z for v in target.data.vertices)
    target.location.z -= lowest
    bpy.context.view_layer.update()
    demo.stage(bpy, target)
    demo.render(bpy, png, 16, f"{TILE}x{TILE}")


# ----------------------------------------------------------------------------- layout

def compose(items: list[dict], path: Path) -> None:
    from PIL import Image, ImageDraw
    tiles = []
    for item in items:
        tile = Image.open(item["png"]).convert("RGB")
        if "picture" in item:
            ref = Image.open(item["picture"]).convert("RGBA").resize((TILE, TILE))
            board = Image.new("RGB", (TILE, TILE), (255, 255, 255))
            board.paste(ref, mask=ref.split()[3])
            tiles.append((board, "input picture (held out)"))
        tiles.append((tile, item["label"]))
    cols = 5
    rows = (len(tiles) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * TILE, rows * (TILE + 28)), (24, 24, 28))
    draw = ImageDraw.Draw(sheet)
    for i, (tile, label) in enumerate(tiles):
        x, y = (i % cols) * TILE, (i // cols) * (TILE + 28)
        sheet.paste(tile, (x, y))
        draw.text((x + 8, y + TILE + 6), label, fill=(235, 235, 235))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.render_only:
        render_glb(*args.render_only)
        return 0
    items = make_assets(args)
    for item in items:
        item["png"] = item["glb"][:-4] + ".png"
        subprocess.run([sys.executable, __file__, "--render-only", item["glb"], item["png"]],
                       check=True, stdout=subprocess.DEVNULL, env=dict(os.environ))
    compose(items, args.picture)
    (args.out / "gallery.json").write_text(json.dumps(items, indent=2))
    print(f"wrote {args.picture}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
