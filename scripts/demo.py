"""Headless Kiln demo: install the built extension into Blender as a user would, make an
asset from a prompt with the bundled model, and write out/demo.blend, out/demo.glb
(the engine's GLB, with out/demo.json beside it) and a small Cycles CPU render
out/demo.png.

    .venv/bin/python scripts/demo.py --zip dist/kiln-0.1.0.zip [--out out]
        [--prompt "a red chair"] [--seed 1] [--model FOLDER]

Blender runs as the bpy module from .venv; its user folder is out/blender-user, so
your own Blender configuration is never touched.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time

PKG = "bl_ext.user_default.kiln"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zip", required=True, help="the extension zip (make extension)")
    parser.add_argument("--out", default="out", help="output folder")
    parser.add_argument("--prompt", default="a red chair")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--model", default="",
                        help="a model folder instead of the bundled model")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--size", default="480x360", help="render size WxH")
    return parser.parse_args(argv)


def say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def install(bpy, zip_path: str) -> None:
    done = bpy.ops.extensions.package_install_files(
        filepath=zip_path, repo="user_default", enable_on_install=True)
    if PKG not in bpy.context.preferences.addons:
        raise SystemExit(f"demo: installing {zip_path} did not enable Kiln ({done})")


def configure(bpy, args, out_dir: str) -> None:
    prefs = bpy.context.preferences.addons[PKG].preferences
    prefs.output_dir = os.path.join(out_dir, "results")
    if args.model:
        prefs.model_source = 'FOLDER'
        prefs.model_folder = os.path.abspath(args.model)
    props = bpy.context.scene.kiln
    props.prompt, props.seed = args.prompt, args.seed
    props.target_size = 2.0


def clear_scene(bpy) -> None:
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj, do_unlink=True)
    bpy.context.scene.cursor.location = (0.0, 0.0, 0.0)


def stage(bpy, target) -> None:
    """Ground, key + fill light and a camera looking at the asset's centre."""
    from mathutils import Vector
    scene = bpy.context.scene
    height = target.dimensions.z
    centre = Vector((0.0, 0.0, height / 2))
    bpy.ops.mesh.primitive_plane_add(size=40.0, location=(0.0, 0.0, 0.0))
    ground = bpy.context.active_object
    ground.name = "Ground"
    mat = bpy.data.materials.new("Ground")
    mat.diffuse_color = (0.12, 0.13, 0.15, 1.0)
    ground.data.materials.append(mat)
    for name, kind, energy, loc in (("Key", 'SUN', 2.0, (4.0, -3.0, 6.0)),
                                    ("Fill", 'AREA', 150.0, (-4.0, -2.0, 3.0))):
        light = bpy.data.lights.new(name, kind)
        light.energy = energy
        if kind == 'AREA':
            light.size = 4.0
        obj = bpy.data.objects.new(name, light)
        obj.location = loc
        obj.rotation_euler = (centre - Vector(loc)).to_track_quat('-Z', 'Y').to_euler()
        scene.collection.objects.link(obj)
    cam_data = bpy.data.cameras.new("Camera")
    cam_data.lens = 50.0
    camera = bpy.data.objects.new("Camera", cam_data)
    direction = Vector((1.0, -1.3, 0.75)).normalized()
    distance = 2.4 * max(target.dimensions) / (2 * math.tan(cam_data.angle / 2))
    camera.location = centre + direction * distance
    camera.rotation_euler = (-direction).to_track_quat('-Z', 'Y').to_euler()
    scene.collection.objects.link(camera)
    scene.camera = camera
    world = scene.world or bpy.data.worlds.new("World")
    scene.world = world
    world.color = (0.05, 0.05, 0.06)


def render(bpy, path: str, samples: int, size: str) -> None:
    scene = bpy.context.scene
    width, height = (int(v) for v in size.lower().split("x"))
    scene.render.engine = 'CYCLES'
    scene.cycles.device = 'CPU'
    scene.cycles.samples = samples
    scene.cycles.use_denoising = True
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = 'PNG'
    scene.render.filepath = path
    bpy.ops.render.render(write_still=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    out_dir = os.path.abspath(args.out)
    os.makedirs(out_dir, exist_ok=True)
    os.environ["BLENDER_USER_RESOURCES"] = os.path.join(out_dir, "blender-user")
    zip_path = os.path.abspath(args.zip)
    import bpy                                   # after BLENDER_USER_RESOURCES is set

    t0 = time.perf_counter()
    install(bpy, zip_path)
    configure(bpy, args, out_dir)
    clear_scene(bpy)
    say(f"Kiln installed from {zip_path}; generating {args.prompt!r} (seed {args.seed})")
    try:
        bpy.ops.kiln.generate()
    except RuntimeError as exc:
        say(f"generate failed: {exc}")
        return 1
    obj = bpy.context.active_object
    say(f"made {obj.name}: {len(obj.data.polygons)} faces in {time.perf_counter() - t0:.1f} s")

    glb = obj["kiln_glb"]
    shutil.copyfile(glb, os.path.join(out_dir, "demo.glb"))
    if os.path.isfile(glb[:-4] + ".json"):
        shutil.copyfile(glb[:-4] + ".json", os.path.join(out_dir, "demo.json"))
    stage(bpy, obj)
    t1 = time.perf_counter()
    render(bpy, os.path.join(out_dir, "demo.png"), args.samples, args.size)
    say(f"rendered out/demo.png in {time.perf_counter() - t1:.1f} s")
    bpy.ops.file.pack_all()
    bpy.ops.wm.save_as_mainfile(filepath=os.path.join(out_dir, "demo.blend"))
    bpy.ops.preferences.addon_disable(module=PKG)        # stops the engine
    say(f"wrote {out_dir}/demo.blend, demo.glb, demo.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
