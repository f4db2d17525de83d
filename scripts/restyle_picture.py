"""README picture of Restyle: objects before and restyled to three prompts, each through
the add-on's own Restyle button in real (headless) Blender, rendered with Cycles (CPU)
and laid out in docs/restyle.png, a row per object.

    .venv/bin/python scripts/restyle_picture.py --zip dist/kiln-0.1.0.zip [--out out/restyle]
        [--picture docs/restyle.png] [--objects kiln monkey]

kiln generates the object first ("a red chair", seed 1, the bundled kiln-mini); monkey
is Blender's Suzanne with its own UV map and a Subdivision modifier, an artist's mesh
(its styles name a vase: kiln-mini knows no monkeys). Every restyle
starts from the object as it was (its own materials are put back between them), so each
is one press of the button. Prints the seconds each took and writes restyle.json beside
the tiles.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TILE = 320
STYLES = {"kiln": ["a blue chair", "a green chair", "a yellow chair"],
          "monkey": ["a blue vase", "a green vase", "a yellow vase"]}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--zip", required=True, help="the extension zip (make extension)")
    p.add_argument("--out", type=Path, default=ROOT / "out" / "restyle")
    p.add_argument("--picture", type=Path, default=ROOT / "docs" / "restyle.png")
    p.add_argument("--objects", nargs="+", choices=tuple(STYLES), default=list(STYLES))
    p.add_argument("--prompt", default="a red chair", help="--object kiln: what to generate")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--strength", type=float, default=None, help="default: the add-on's")
    p.add_argument("--samples", type=int, default=16)
    return p.parse_args(argv)


def say(text: str) -> None:
    print(f"[restyle] {text}", flush=True)


def make_object(bpy, args, kind: str):
    if kind == "monkey":
        bpy.ops.mesh.primitive_monkey_add(size=2.0, location=(0.0, 0.0, 1.0),
                                          calc_uvs=True)
        obj = bpy.context.active_object
        obj.modifiers.new("Subdivision", 'SUBSURF').levels = 2
        material = bpy.data.materials.new("Suzanne paint")
        material.diffuse_color = (0.6, 0.6, 0.6, 1.0)
        obj.data.materials.append(material)
        return obj, "Suzanne (Blender's, its own UVs)"
    bpy.context.scene.kiln.prompt = args.prompt
    bpy.ops.kiln.generate()
    return bpy.context.active_object, f"{args.prompt} (Kiln, seed {args.seed})"


def main(argv=None) -> int:
    args = parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ["BLENDER_USER_RESOURCES"] = str(out / "blender-user")
    sys.path.insert(0, str(ROOT / "scripts"))
    import demo
    import bpy                                   # after BLENDER_USER_RESOURCES is set

    demo.install(bpy, os.path.abspath(args.zip))
    demo.configure(bpy, argparse.Namespace(prompt=args.prompt, seed=args.seed, model=""),
                   str(out))
    if args.strength is not None:
        bpy.context.scene.kiln.restyle_strength = args.strength
    rows = [restyle_row(bpy, demo, args, kind, out) for kind in args.objects]
    compose(rows, args.picture)
    (out / "restyle.json").write_text(json.dumps(rows, indent=2))
    say(f"wrote {args.picture}")
    return 0


def restyle_row(bpy, demo, args, kind: str, out: Path) -> list[dict]:
    """Tiles of one object: before, then each of its styles."""
    demo.clear_scene(bpy)
    obj, label = make_object(bpy, args, kind)
    demo.stage(bpy, obj)
    tiles = [{"png": str(out / f"{kind}_before.png"), "label": f"before: {label}"}]
    demo.render(bpy, tiles[0]["png"], args.samples, f"{TILE}x{TILE}")
    props = bpy.context.scene.kiln
    own = [(slot.link, slot.material) for slot in obj.material_slots]
    for i, style in enumerate(STYLES[kind]):
        for slot, (link, material) in zip(obj.material_slots, own):   # as before any restyle
            slot.link = link
            slot.material = material
        bpy.context.view_layer.objects.active = obj
        props.restyle_prompt = style
        t0 = time.perf_counter()
        bpy.ops.kiln.restyle()
        seconds = time.perf_counter() - t0
        done = json.loads(obj["kiln_restyle"])
        engine = json.loads(Path(done["texture"]).with_suffix(".json").read_text())
        tile = {"png": str(out / f"{kind}_style_{i}.png"), "seconds": round(seconds, 2),
                "engine_seconds": round(sum(engine["timings"].values()), 2),
                "timings": engine["timings"], "strength": done["strength"],
                "label": f"{style} · strength {done['strength']:g} · {seconds:.1f} s"}
        say(f"{style}: {seconds:.2f} s in Blender, {tile['engine_seconds']:.2f} s in the engine")
        demo.render(bpy, tile["png"], args.samples, f"{TILE}x{TILE}")
        tiles.append(tile)
    return tiles


def compose(rows: list[list[dict]], path: Path) -> None:
    from PIL import Image, ImageDraw
    cols = max(len(row) for row in rows)
    sheet = Image.new("RGB", (cols * TILE, len(rows) * (TILE + 28)), (24, 24, 28))
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(rows):
        for i, tile in enumerate(row):
            x, y = i * TILE, r * (TILE + 28)
            sheet.paste(Image.open(tile["png"]).convert("RGB"), (x, y))
            draw.text((x + 8, y + TILE + 6), tile["label"], fill=(235, 235, 235))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


if __name__ == "__main__":
    sys.exit(main())
