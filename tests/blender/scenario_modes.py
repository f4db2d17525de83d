"""Blender scenario of issue 12's modes: the Pictures input (a direction per picture) and
Surprise me, each adding an object; sampler, extractor and refine reach the request.

    .venv/bin/python tests/blender/scenario_modes.py '{"zip": ..., "model": ..., "out": ...}'

Runs in its own process like tests/blender/scenarios.py (whose helpers it uses) and
prints one line `KILN_RESULT {json}`.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from scenarios import RESULT_TAG, call, describe, install, kiln_objects, module  # noqa: E402


def swatch(bpy, name: str, colour, size: int = 32):
    """A Blender image: a coloured block on white (the colour key removes the white)."""
    img = bpy.data.images.new(name, size, size, alpha=True)
    rgba = [1.0] * (size * size * 4)
    for y in range(6, 26):
        for x in range(10, 22):
            i = (y * size + x) * 4
            rgba[i:i + 3] = list(colour)
    img.pixels.foreach_set(rgba)
    return img


def settings_of(obj) -> dict:
    return json.loads(obj["kiln_settings"])["params"] if obj is not None else {}


def made(bpy, op, name: str, key: str = "") -> dict:
    """Run `op`; what it returned (under `key`, else `name`), how many Kiln objects it
    added, and the active object with its stored params (NAME_added, NAME_object,
    NAME_params)."""
    before = len(kiln_objects(bpy))
    res = {key or name: call(op)}
    res[f"{name}_added"] = len(kiln_objects(bpy)) - before
    obj = bpy.context.active_object
    res[f"{name}_object"] = describe(obj) if obj else None
    res[f"{name}_params"] = settings_of(obj)
    return res


def draw_pictures(bpy) -> dict:
    """The panels and the Pictures list drawn (layout_check.py's stand-in layout): errors
    raised, the properties and operators shown, each list row's labels."""
    import layout_check
    panels = module("panels")
    drawn = layout_check.draw_all(bpy, panels.CLASSES)
    rows = layout_check.Recorder(bpy)
    props = bpy.context.scene.kiln
    for item in props.pictures:
        panels.KILN_UL_pictures.draw_item(None, bpy.context, layout_check.Layout(rows, "list"),
                                          props, item, 0, props, "picture_index")
    shown = [c for c in drawn["calls"] if c["panel"] in ("KILN_PT_main", "KILN_PT_output")]
    return {"draw_errors": drawn["errors"],
            "drawn_props": [c.get("property") for c in shown if c["call"] == "prop"],
            "drawn_operators": [c.get("operator") for c in shown if c["call"] == "operator"],
            "list_labels": [c.get("text") for c in rows.calls if c["call"] == "label"]}


def pictures_mode(bpy, args: dict) -> dict:
    kiln, props = bpy.ops.kiln, bpy.context.scene.kiln
    props.mode = 'VIEWS'
    res = {"poll_without_pictures": kiln.generate.poll()}
    kiln.picture_add()
    kiln.picture_add()
    res["directions_after_add"] = [p.direction for p in props.pictures]
    res["poll_with_empty_picture"] = kiln.generate.poll()
    front = swatch(bpy, "front", (0.8, 0.1, 0.1))
    front.filepath_raw = os.path.join(args["out"], "front.png")
    front.file_format = 'PNG'
    front.save()
    first, second = props.pictures
    first.source, first.path = 'FILE', front.filepath_raw
    second.source, second.image = 'BLENDER', swatch(bpy, "side", (0.8, 0.1, 0.1))
    second.direction, second.azimuth, second.elevation = 'CUSTOM', 90.0, 10.0
    props.background, props.key_color, props.key_tolerance = 'KEY', (1.0, 1.0, 1.0), 0.1
    props.refine_steps, props.sampler, props.extractor = 2, 'HEUN', 'FLEXICUBES'
    res["poll_with_pictures"] = kiln.generate.poll()
    props.picture_index = 1
    res.update(draw_pictures(bpy))
    res.update(made(bpy, kiln.generate, "views", key="views_generate"))
    kiln.picture_add()
    kiln.picture_add()
    res["pictures_at_most"] = len(props.pictures)
    res["add_poll_when_full"] = kiln.picture_add.poll()
    props.picture_index = 0
    kiln.picture_remove()
    res["pictures_after_remove"] = [p.direction for p in props.pictures]
    return res


def surprise_me(bpy) -> dict:
    kiln, props = bpy.ops.kiln, bpy.context.scene.kiln
    props.mode, props.prompt = 'TEXT', ""
    res = {"generate_poll_without_prompt": kiln.generate.poll(),
           "surprise_poll_without_prompt": kiln.surprise.poll()}
    res.update(made(bpy, kiln.surprise, "surprise"))
    res["seed_now"] = props.seed
    return res


def main() -> int:
    args = json.loads(sys.argv[1])
    import bpy
    res = install(bpy, args)
    res.update(pictures_mode(bpy, args))
    res.update(surprise_me(bpy))
    res["blender"] = bpy.app.version_string
    print(RESULT_TAG + json.dumps(res, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
