"""Blender scenario of issue 13: a prompt list (a text block) adds its objects in a grid;
Morph of two of them adds the in-betweens in a row between the two.

    .venv/bin/python tests/blender/scenario_lists.py '{"zip": ..., "model": ..., "out": ...}'

Runs in its own process like tests/blender/scenarios.py (whose helpers it uses) and
prints one line `KILN_RESULT {json}`.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from scenarios import (RESULT_TAG, call, describe, draw_panels, install,  # noqa: E402
                       kiln_objects)

PROMPT_LIST = "a red chair\na blue mug | 3\n# a comment\n | 9\na green lamp\na tiny yellow sedan | 5\n"


def prompt_list(bpy) -> dict:
    """Four good lines and one bad one in a text block -> Generate List."""
    props = bpy.context.scene.kiln
    props.list_source = 'TEXT'
    res = {"poll_without_text": bpy.ops.kiln.generate_list.poll()}
    text = bpy.data.texts.new("prompts.txt")
    text.from_string(PROMPT_LIST)
    props.list_text = text
    res["poll_with_text"] = bpy.ops.kiln.generate_list.poll()
    bpy.context.scene.cursor.location = (0.0, 0.0, 0.0)
    before = {o.name for o in kiln_objects(bpy)}
    res["generate_list"] = call(bpy.ops.kiln.generate_list)
    new = [o for o in kiln_objects(bpy) if o.name not in before]
    new.sort(key=lambda o: (-round(o.location.y, 3), round(o.location.x, 3)))   # row by row
    res["list_objects"] = [describe(o) for o in new]
    session = sys.modules["bl_ext.user_default.kiln.runtime.session"].SESSION
    res["list_message"] = session.message
    res["list_labels"] = draw_panels(bpy)["labels"]            # the panel right after
    return res


def morph(bpy, first, second, steps: int = 2) -> dict:
    """Select `first`, then `second` (active) -> Morph with `steps` in-betweens."""
    props = bpy.context.scene.kiln
    props.morph_steps = steps
    res = {"morph_poll_one": None}
    bpy.ops.object.select_all(action='DESELECT')
    second.select_set(True)
    bpy.context.view_layer.objects.active = second
    res["morph_poll_one"] = bpy.ops.kiln.morph.poll()
    first.select_set(True)
    res["morph_poll_two"] = bpy.ops.kiln.morph.poll()
    res["morph_ends"] = [list(first.location), list(second.location)]
    before = {o.name for o in kiln_objects(bpy)}
    res["morph"] = call(bpy.ops.kiln.morph)
    new = [o for o in kiln_objects(bpy) if o.name not in before]
    res["morph_objects"] = sorted((describe(o) for o in new), key=lambda d: d["name"])
    return res


def main() -> int:
    args = json.loads(sys.argv[1])
    import bpy
    res = install(bpy, args)
    res.update(prompt_list(bpy))
    made = sorted((o for o in kiln_objects(bpy)), key=lambda o: o.name)
    chair = next(o for o in made if o.get("kiln_prompt") == "a red chair")
    mug = next(o for o in made if o.get("kiln_prompt") == "a blue mug")
    res.update(morph(bpy, chair, mug))
    res["panels"] = draw_panels(bpy)
    res["blender"] = bpy.app.version_string
    print(RESULT_TAG + json.dumps(res, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
