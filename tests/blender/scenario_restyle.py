"""Blender scenario of issue 12, item 4: Restyle the selected object.

A cube with a UV map the scenario made (and a Subdivision modifier), a cube without any
UV map, and a Kiln result are restyled: what their vertices, UVs, modifiers and
materials were before, after, and after Ctrl+Z (bpy.ops.ed.undo). An object without
faces and a non-mesh are refused.

    .venv/bin/python tests/blender/scenario_restyle.py '{"zip": ..., "model": ..., "out": ...}'

Runs in its own process like tests/blender/scenarios.py (whose helpers it uses) and
prints one line `KILN_RESULT {json}`.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from scenarios import (RESULT_TAG, call, engine_processes, image_feeds, install,  # noqa: E402
                       kiln_objects, module, tick_until)

CUBE_VERTICES = [(x, y, z) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]
CUBE_FACES = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4),
              (1, 5, 7, 3)]


def cube(bpy, name: str, with_uvs: bool):
    """A cube object with a Subdivision modifier; when `with_uvs`, a UV map "TestUV" laid
    out by hand (each face its own square in a 3 x 2 grid) and a painted material, else
    neither UVs nor materials."""
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(CUBE_VERTICES, [], CUBE_FACES)
    if with_uvs:
        layer = mesh.uv_layers.new(name="TestUV")
        uvs = []
        for k in range(6):
            u0, v0 = (k % 3) / 3, (k // 3) / 2
            uvs += [u0 + .02, v0 + .02, u0 + .31, v0 + .02, u0 + .31, v0 + .48, u0 + .02, v0 + .48]
        layer.data.foreach_set("uv", uvs)
        material = bpy.data.materials.new(f"{name} paint")
        if not material.use_nodes:              # Blender 4.2 (5.0 always uses nodes)
            material.use_nodes = True
        bsdf = material.node_tree.nodes["Principled BSDF"]
        bsdf.inputs["Base Color"].default_value = (0.1, 0.3, 0.8, 1.0)
        mesh.materials.append(material)
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    modifier = obj.modifiers.new("Subdivision", 'SUBSURF')
    modifier.levels = 1
    obj.location = (4.0, 0.0, 0.0) if with_uvs else (-4.0, 0.0, 0.0)
    obj.rotation_euler = (0.2, 0.0, 0.5)
    return obj


def select(bpy, obj) -> None:
    for other in bpy.context.view_layer.objects:
        other.select_set(False)
    if obj is not None:
        obj.select_set(True)
    bpy.context.view_layer.objects.active = obj


def state(obj) -> dict:
    """What restyle may and may not change on `obj`."""
    mesh = obj.data
    co = [0.0] * (len(mesh.vertices) * 3)
    mesh.vertices.foreach_get("co", co)
    uv_maps = {}
    for layer in mesh.uv_layers:
        uv = [0.0] * (len(mesh.loops) * 2)
        layer.data.foreach_get("uv", uv)
        uv_maps[layer.name] = uv
    slots = []
    for slot in obj.material_slots:
        material = slot.material
        bsdf = None
        if material is not None and material.node_tree is not None:
            bsdf = next((n for n in material.node_tree.nodes if n.type == 'BSDF_PRINCIPLED'),
                        None)
        image_node = None
        if bsdf is not None and bsdf.inputs["Base Color"].is_linked:
            node = bsdf.inputs["Base Color"].links[0].from_node
            if node.type == 'TEX_IMAGE':
                image_node = node
        uv_node = None
        if image_node is not None and image_node.inputs["Vector"].is_linked:
            uv_node = image_node.inputs["Vector"].links[0].from_node
        slots.append({"material": material.name if material else None, "link": slot.link,
                      "from_image": bool(bsdf and image_feeds(bsdf.inputs["Base Color"])),
                      "image": image_node.image.name if image_node else None,
                      "image_packed": bool(image_node and image_node.image.packed_file),
                      "image_size": list(image_node.image.size) if image_node else None,
                      "uv_map": getattr(uv_node, "uv_map", None)})
    return {"co": co, "uv_maps": uv_maps, "active_uv": mesh.uv_layers.active.name
            if mesh.uv_layers.active else None, "faces": len(mesh.polygons),
            "modifiers": [(m.name, m.type, getattr(m, "levels", None)) for m in obj.modifiers],
            "data_materials": [m.name if m else None for m in mesh.materials],
            "slots": slots, "restyle": obj.get("kiln_restyle")}


def restyle(bpy, obj, prompt: str, strength: float) -> dict:
    """Restyle `obj` as a user would (select it, type, press); undo it; the states."""
    props = bpy.context.scene.kiln
    name = obj.name
    select(bpy, obj)
    props.restyle_prompt, props.restyle_strength = prompt, strength
    before = state(obj)
    bpy.ops.ed.undo_push(message=f"before restyling {name}")
    result = call(bpy.ops.kiln.restyle, 'EXEC_DEFAULT', True)    # True: push undo
    after = state(bpy.data.objects[name])
    message = module("runtime.session").SESSION.message
    bpy.ops.ed.undo()
    undone = state(bpy.data.objects[name])
    materials = sorted(m.name for m in bpy.data.materials)
    return {"result": result, "message": message, "before": before, "after": after,
            "undone": undone, "materials_after_undo": materials}


def timer_path(bpy, obj) -> dict:
    """Restyle as in a window: the operator returns at once, the timer applies the
    result (with its own undo step); the bar never runs backwards; one undo restores."""
    session = module("runtime.session")
    testing = module("runtime.testing").TESTING
    testing.force_timer = True
    try:
        name = obj.name
        select(bpy, obj)
        bpy.context.scene.kiln.restyle_prompt = "a white box"
        before = state(obj)
        bpy.ops.ed.undo_push(message="before the timer restyle")
        res = {"timer_operator": call(bpy.ops.kiln.restyle, 'EXEC_DEFAULT', True),
               "timer_busy_after_operator": session.SESSION.busy}
        ticks: list = []
        res["timer_finished"] = tick_until(session, lambda: not session.SESSION.busy, 240,
                                           ticks)
        res["timer_fractions"] = [t["fraction"] for t in ticks if t["fraction"] is not None]
        res["timer_stages"] = list(dict.fromkeys(t["stage"] for t in ticks if t["stage"]))
        res["timer_error"] = session.SESSION.last_error
        res["timer_after"] = state(bpy.data.objects[name])
        bpy.ops.ed.undo()
        res["timer_undone"] = state(bpy.data.objects[name])
        res["timer_before"] = before
        return res
    finally:
        testing.reset()


def refusals(bpy, args: dict) -> dict:
    """An object without faces and a non-mesh: a sentence, no job, nothing changed."""
    kiln = bpy.ops.kiln
    res = {}
    mesh = bpy.data.meshes.new("Dots")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [(0, 1)], [])
    dots = bpy.data.objects.new("Dots", mesh)
    bpy.context.scene.collection.objects.link(dots)
    select(bpy, dots)
    bpy.context.scene.kiln.restyle_prompt = "a blue box"
    files_before = sorted(os.listdir(args["out"]))
    res["no_faces"] = call(kiln.restyle)
    res["no_faces_uv_maps"] = len(mesh.uv_layers)
    res["no_faces_materials"] = len(dots.material_slots)
    res["files_after_no_faces"] = sorted(os.listdir(args["out"])) == files_before
    empty = bpy.data.objects.new("Nothing", None)
    bpy.context.scene.collection.objects.link(empty)
    select(bpy, empty)
    res["poll_non_mesh"] = kiln.restyle.poll()
    select(bpy, dots)
    bpy.context.scene.kiln.restyle_prompt = "  "
    res["poll_without_prompt"] = kiln.restyle.poll()
    bpy.context.scene.kiln.restyle_prompt = "a blue box"
    bpy.context.scene.kiln.restyle_strength = 1.0
    res["poll_with_prompt"] = kiln.restyle.poll()
    return res


def draw_restyle_panel(bpy, obj) -> dict:
    import layout_check
    select(bpy, obj)
    drawn = layout_check.draw_all(bpy, module("panels").CLASSES)
    shown = [c for c in drawn["calls"] if c["panel"] == "KILN_PT_restyle"]
    return {"draw_errors": drawn["errors"],
            "restyle_props": [c.get("property") for c in shown if c["call"] == "prop"],
            "restyle_operators": [c.get("operator") for c in shown if c["call"] == "operator"],
            "restyle_labels": [c.get("text") for c in shown if c["call"] == "label"]}


def main() -> int:
    args = json.loads(sys.argv[1])
    import bpy
    res = install(bpy, args)
    painted = cube(bpy, "Painted", with_uvs=True)
    cube(bpy, "Bare", with_uvs=False)
    res["panel"] = draw_restyle_panel(bpy, painted)
    res["cube"] = restyle(bpy, painted, "a blue box", 0.6)
    res["bare"] = restyle(bpy, bpy.data.objects["Bare"], "a red box", 0.9)
    res["generate"] = call(bpy.ops.kiln.generate)
    made = kiln_objects(bpy)
    if made:
        res["kiln"] = restyle(bpy, made[0], "a green chair", 0.85)
    res.update(timer_path(bpy, bpy.data.objects["Painted"]))
    res.update(refusals(bpy, args))
    res["outputs"] = sorted(os.listdir(args["out"]))
    res["inputs"] = sorted(os.listdir(os.path.join(args["out"], "inputs")))
    module("runtime.session").SESSION.shutdown()
    res["engines_left"] = engine_processes(args["out"])
    res["blender"] = bpy.app.version_string
    print(RESULT_TAG + json.dumps(res, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
