"""Blender scenario of issue 13, item 3: Output Format "Gaussian Splats" -> Generate imports
the engine's .ply as a point cloud carrying the splat attributes.

    .venv/bin/python tests/blender/scenario_splats.py '{"zip": ..., "model": ..., "out": ...}'

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


def attributes(obj) -> dict:
    """{name: [domain, type, min, max]} of the object's mesh attributes (read in bulk)."""
    import numpy as np
    mesh, found = obj.data, {}
    for attr in mesh.attributes:
        if attr.name.startswith(".") or attr.data_type not in ('FLOAT', 'FLOAT_COLOR'):
            continue
        width = 4 if attr.data_type == 'FLOAT_COLOR' else 1
        values = np.empty(len(attr.data) * width, dtype=np.float32)
        attr.data.foreach_get("color" if width == 4 else "value", values)
        found[attr.name] = [attr.domain, attr.data_type, float(values.min()),
                            float(values.max())]
    return found


def splats(bpy) -> dict:
    props = bpy.context.scene.kiln
    props.output_format = 'SPLAT'
    props.faces = 3000
    before = {o.name for o in kiln_objects(bpy)}
    res = {"generate": call(bpy.ops.kiln.generate)}
    new = [o for o in kiln_objects(bpy) if o.name not in before]
    res["objects"] = [describe(o) for o in new]
    if new:
        obj = new[0]
        res["attributes"] = attributes(obj)
        res["color_attributes"] = [c.name for c in obj.data.color_attributes]
        res["modifiers"] = [[m.name, m.type, m.node_group.name if m.node_group else None]
                            for m in obj.modifiers]
        res["edges"] = len(obj.data.edges)
        depsgraph = bpy.context.evaluated_depsgraph_get()
        evaluated = obj.evaluated_get(depsgraph)
        res["evaluated_points"] = sum(
            len(getattr(inst.object.data, "points", [])) for inst in depsgraph.object_instances
            if inst.object.original == obj and inst.object.type == 'POINTCLOUD') or None
        res["evaluated_type"] = evaluated.type
    res["files"] = sorted(os.listdir(bpy.context.preferences.addons[
        "bl_ext.user_default.kiln"].preferences.output_dir))
    props.output_format = 'GLB'
    res["glb_generate"] = call(bpy.ops.kiln.generate)
    res["glb_object"] = describe(kiln_objects(bpy)[-1]) if kiln_objects(bpy) else None
    return res


def main() -> int:
    args = json.loads(sys.argv[1])
    import bpy
    res = install(bpy, args)
    res.update(splats(bpy))
    res["panels"] = draw_panels(bpy)
    res["blender"] = bpy.app.version_string
    print(RESULT_TAG + json.dumps(res, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
