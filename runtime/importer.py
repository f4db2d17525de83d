"""Bring an engine result (a GLB, or a Gaussian-splat .ply: splats.py) into the scene.

Blender's glTF importer reads the file; it is the one place where glTF's Y-up becomes
Blender's Z-up (the engine wrote Z-up object space through engine/io/glb.py, so the
round trip is exact). Then Kiln bakes the pose into the mesh, rests the object on its
base at the 3D cursor, scales it to the target size, sets the shading, moves it into
the "Kiln" collection and stores prompt, seed, model and settings on it.
"""

from __future__ import annotations

import json
import math
import os

import bpy
from mathutils import Matrix, Vector

from . import splats

COLLECTION = "Kiln"
PROP_PREFIX = "kiln_"


def import_result(context, glb_path: str, *, name: str, location, target_size: float,
                  smooth: bool, meta: dict, settings: dict, replace: str = ""):
    """Import `glb_path`; return the new mesh object (selected and active)."""
    if not os.path.isfile(glb_path):
        raise FileNotFoundError(f"the engine's result {glb_path} is missing")
    old = bpy.data.objects.get(replace) if replace else None
    if splats.is_splat_file(glb_path):        # a Gaussian-splat .ply: a point cloud
        obj = splats.read_splats(context, glb_path)
        splats.rescale(obj.data, _fit(obj.data, target_size))
    else:
        obj = _read_glb(context, glb_path, smooth)
        _bake_pose(obj)
        _fit(obj.data, target_size)
    _shade(obj.data, smooth)
    obj.name = obj.data.name = name
    _place(obj, location, old)
    _move_to_collection(context, obj)
    _tag(obj, glb_path, meta, settings)
    if old is not None:
        bpy.data.objects.remove(old, do_unlink=True)
        obj.name = name                       # free again now that the old one is gone
    _select_only(context, obj)
    return obj


def _read_glb(context, glb_path: str, smooth: bool):
    """Run the glTF importer; return its one mesh object (joined if it made several)."""
    if context.object is not None and context.object.mode != 'OBJECT':
        bpy.ops.object.mode_set(mode='OBJECT')
    before = set(bpy.data.objects)
    bpy.ops.import_scene.gltf(filepath=glb_path,
                              import_shading='SMOOTH' if smooth else 'FLAT')
    new = [o for o in bpy.data.objects if o not in before]
    meshes = [o for o in new if o.type == 'MESH']
    if not meshes:
        for o in new:
            bpy.data.objects.remove(o, do_unlink=True)
        raise ValueError("the file holds no mesh")
    for o in meshes:
        world = o.matrix_world.copy()
        o.parent = None
        o.matrix_world = world
    for o in new:
        if o.type != 'MESH':
            bpy.data.objects.remove(o, do_unlink=True)
    obj = meshes[0]
    if len(meshes) > 1:
        with context.temp_override(active_object=obj, selected_editable_objects=meshes,
                                   object=obj):
            bpy.ops.object.join()
    return obj


def _bake_pose(obj) -> None:
    """Move the importer's object transform into the vertices (object = identity)."""
    obj.data.transform(obj.matrix_basis)
    obj.matrix_basis = Matrix.Identity(4)


def _fit(mesh, target_size: float) -> float:
    """Scale so the largest side is `target_size`; origin at the base centre. Returns
    the scale."""
    lo, hi = _bounds(mesh)
    extent = max(hi - lo for lo, hi in zip(lo, hi))
    scale = target_size / extent if extent > 0 else 1.0
    base = Vector(((lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]))
    mesh.transform(Matrix.Scale(scale, 4) @ Matrix.Translation(-base))
    mesh.update()
    return scale


def _bounds(mesh):
    """(min xyz, max xyz) of the vertices, read in bulk."""
    import numpy as np
    coords_nx3 = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", coords_nx3)
    coords_nx3 = coords_nx3.reshape(-1, 3)
    if not len(coords_nx3):
        return (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)
    return tuple(coords_nx3.min(0).tolist()), tuple(coords_nx3.max(0).tolist())


def _shade(mesh, smooth: bool) -> None:
    if hasattr(mesh, "shade_smooth"):          # Blender 4.1+
        mesh.shade_smooth() if smooth else mesh.shade_flat()
    else:
        mesh.polygons.foreach_set("use_smooth", [smooth] * len(mesh.polygons))


def _place(obj, location, old) -> None:
    if old is not None:
        obj.matrix_world = old.matrix_world.copy()
    else:
        obj.location = Vector(location)


def kiln_collection(context):
    coll = bpy.data.collections.get(COLLECTION)
    if coll is None:
        coll = bpy.data.collections.new(COLLECTION)
    scene_coll = context.scene.collection
    if coll.name not in scene_coll.children and not _nested(scene_coll, coll):
        scene_coll.children.link(coll)
    return coll


def _nested(parent, coll) -> bool:
    return any(child == coll or _nested(child, coll) for child in parent.children)


def _move_to_collection(context, obj) -> None:
    coll = kiln_collection(context)
    for other in list(obj.users_collection):
        if other != coll:
            other.objects.unlink(obj)
    if obj.name not in coll.objects:
        coll.objects.link(obj)


def _tag(obj, glb_path: str, meta: dict, settings: dict) -> None:
    params = settings.get("params", {})
    obj[PROP_PREFIX + "prompt"] = str(meta.get("prompt", params.get("prompt", "")) or "")
    seed = int(meta.get("seed", params.get("seed", 0)))
    obj[PROP_PREFIX + "seed"] = seed if seed < 2**31 else str(seed)   # IDProperty is int32
    obj[PROP_PREFIX + "model"] = str(meta.get("model", settings.get("model", "")) or "")
    obj[PROP_PREFIX + "settings"] = json.dumps(settings, sort_keys=True, default=str)
    obj[PROP_PREFIX + "glb"] = glb_path
    if meta.get("read_as"):                     # the prompt as the model read it
        obj[PROP_PREFIX + "read_as"] = str(meta["read_as"])


def _select_only(context, obj) -> None:
    for other in context.view_layer.objects:
        if other.select_get():
            other.select_set(False)
    obj.select_set(True)
    context.view_layer.objects.active = obj


def is_kiln_object(obj) -> bool:
    return obj is not None and (PROP_PREFIX + "settings") in obj.keys()


def stored_settings(obj) -> dict:
    """The settings Kiln stored on `obj`, or {} when missing or not a JSON object."""
    try:
        settings = json.loads(obj[PROP_PREFIX + "settings"])
    except (KeyError, ValueError, TypeError):
        return {}
    return settings if isinstance(settings, dict) else {}


class DamagedSettings(ValueError):
    """What is wrong with an object's stored settings (operators add the fix)."""


def regenerate_source(obj) -> tuple[dict, int, dict]:
    """(params without seed and out, seed, import options) stored on `obj`, each checked;
    DamagedSettings saying what is wrong (the user may have edited the property)."""
    stored = stored_settings(obj)
    if not stored:
        raise DamagedSettings(f"its {PROP_PREFIX}settings property is not a JSON object")
    params = stored.get("params")
    if not isinstance(params, dict) or not params:
        raise DamagedSettings("its stored params are not a dictionary of settings")
    if "fraction" in params:
        raise DamagedSettings("it is a morph in-between, which has no seed or prompt of its "
                              "own; select its two sources and Morph again")
    seed = params.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise DamagedSettings(f"its stored seed {seed!r} is not a whole number of 0 or more")
    options = {}
    if "target_size" in stored:
        options["target_size"] = _positive(stored["target_size"], "target size")
    if "smooth" in stored:
        if not isinstance(stored["smooth"], bool):
            raise DamagedSettings(f"its stored smooth {stored['smooth']!r} is not true or "
                                  "false")
        options["smooth"] = stored["smooth"]
    rest = {k: v for k, v in params.items() if k not in ("out", "seed")}
    return rest, seed, options


def _positive(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value <= 0:
        raise DamagedSettings(f"its stored {what} {value!r} is not a positive number")
    return float(value)
