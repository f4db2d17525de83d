"""Restyle a mesh: new colours from a prompt, baked onto its own UV map.

`make_job` writes the object's evaluated mesh (modifiers applied, world space) to a
.npz in the output folder's inputs/ -- triangles, positions, each corner's UV from the
active UV map and each corner's present colour -- and builds the protocol `restyle`
request naming it (engine/restyle.py has the format and the road). When the engine's
texture comes back, it is loaded as a new image, and each of the object's material slots
gets a copy of its material whose Base Color reads that image through the same UV map
(the slots link to the object, so the mesh data and the user's own materials stay as
they were). Geometry, UVs and modifiers are never touched. An object without a UV map
gets one, "KilnUV", by Smart UV Project: made on a temporary copy while the job runs and
written to the mesh only with the result. All of it is one undo step.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from dataclasses import dataclass

import bpy

from ..engine import protocol
from ..engine.errors import KilnError
from . import jobs, paths
from .paths import UserError
from .session import Job, JobItem

NEW_UV_NAME = "KilnUV"             # the UV map Smart UV Project makes for an object without
GREY = 0.8                         # the colour sent for faces whose colour Kiln cannot read
MAX_SAMPLED_PIXELS = 2048 * 2048   # bigger images are not read for the present colours
SMART_UV_ANGLE = 66.0              # degrees: Blender's default angle limit
PROP = "kiln_restyle"              # what the last restyle was (JSON on the object)
# Share of the progress bar per engine stage, in restyle's order (session.Job.weights).
RESTYLE_WEIGHTS = (("load", 0.0), ("condition", 0.05), ("render", 0.05), ("encode", 0.05),
                   ("sample", 0.5), ("decode", 0.05), ("texture", 0.25), ("export", 0.05))
_counter = itertools.count(1)


@dataclass
class Target:
    """What the result is applied to, and how to check it is still that object."""
    object_name: str
    loops: int                     # the mesh's loop count when it was exported
    uv_name: str                   # the UV map baked onto ("" until a new one is made)
    new_uvs: object = None         # (loops * 2,) float32 for NEW_UV_NAME, or None


# ---------------------------------------------------------------- export
def export_mesh(context, obj, path: str) -> Target:
    """Write `obj`'s evaluated mesh to `path` (.npz, written whole or not at all)."""
    if obj.data.uv_layers.active is not None:
        arrays = _evaluated_arrays(context, obj)
        target = Target(obj.name, len(obj.data.loops), arrays.pop("uv_name"))
    else:
        arrays, new_uvs = _arrays_with_new_uvs(context, obj)
        arrays.pop("uv_name")
        target = Target(obj.name, len(obj.data.loops), "", new_uvs)
    _save_npz(path, arrays)
    return target


def _evaluated_arrays(context, obj) -> dict:
    """The arrays of engine/restyle.py's file from `obj` with its modifiers applied."""
    import numpy as np
    evaluated = obj.evaluated_get(context.evaluated_depsgraph_get())
    mesh = evaluated.to_mesh()
    try:
        mesh.calc_loop_triangles()
        count = len(mesh.loop_triangles)
        if count == 0:
            raise UserError(_no_faces(obj))
        layer = mesh.uv_layers.active
        if layer is None:
            raise UserError(f"{obj.name} loses its UV map to a modifier: apply or reorder "
                            "its modifiers so the UVs survive, then restyle again.")
        corners = _foreach(mesh.loop_triangles, "vertices", count * 3, np.int32)
        loops = _foreach(mesh.loop_triangles, "loops", count * 3, np.int32)
        materials = _foreach(mesh.loop_triangles, "material_index", count, np.int32)
        co_nx3 = _foreach(mesh.vertices, "co", len(mesh.vertices) * 3, np.float32).reshape(-1, 3)
        uv_lx2 = _foreach(layer.data, "uv", len(mesh.loops) * 2, np.float32).reshape(-1, 2)
        world = np.array(evaluated.matrix_world, dtype=np.float64)          # (4, 4)
        uvs_tx3x2 = uv_lx2[loops].reshape(count, 3, 2)
        return {"positions_nx3": (co_nx3 @ world[:3, :3].T + world[:3, 3]).astype(np.float32),
                "triangles_tx3": corners.reshape(count, 3),
                "uvs_tx3x2": uvs_tx3x2,
                "colors_tx3x3": _corner_colours(obj, materials, uvs_tx3x2),
                "uv_name": layer.name}
    finally:
        evaluated.to_mesh_clear()


def _no_faces(obj) -> str:
    return (f"{obj.name} has no faces: Restyle paints faces, so pick an object with some "
            "(points and edges have no surface).")


def _foreach(collection, name: str, size: int, dtype):
    import numpy as np
    out = np.empty(size, dtype=dtype)
    collection.foreach_get(name, out)
    return out


def _arrays_with_new_uvs(context, obj):
    """(arrays, per-loop UVs (loops * 2,)) of `obj` as if it had a Smart UV Project map:
    the map is made on a temporary copy (same modifiers), which is then removed."""
    import numpy as np
    if not obj.data.polygons:
        raise UserError(_no_faces(obj))
    layer = context.view_layer
    active, selected = layer.objects.active, [o for o in layer.objects if o.select_get()]
    mesh = obj.data.copy()
    temp = obj.copy()                  # linked below; a copy is selected like its original
    temp.data = mesh
    context.scene.collection.objects.link(temp)
    try:
        for other in selected:
            other.select_set(False)
        temp.select_set(True)
        layer.objects.active = temp
        _smart_uv_project(mesh, obj.name)
        uvs = _foreach(mesh.uv_layers.active.data, "uv", len(mesh.loops) * 2, np.float32)
        return _evaluated_arrays(context, temp), uvs
    finally:
        bpy.data.objects.remove(temp, do_unlink=True)
        bpy.data.meshes.remove(mesh)
        for other in selected:
            other.select_set(True)
        layer.objects.active = active


def _smart_uv_project(mesh, name: str) -> None:
    """Smart UV Project over every face of the active object (whose data is `mesh`, a
    copy of object `name`'s)."""
    mesh.uv_layers.new(name=NEW_UV_NAME)
    bpy.ops.object.mode_set(mode='EDIT')
    try:
        bpy.ops.mesh.select_all(action='SELECT')
        bpy.ops.uv.smart_project(angle_limit=math.radians(SMART_UV_ANGLE), island_margin=0.003)
    except RuntimeError as exc:
        why = (str(exc).strip().splitlines() or ["no reason given"])[0][:160]
        raise UserError(f"Blender's Smart UV Project could not unwrap {name} ({why}): "
                        "unwrap it yourself (UV > Smart UV Project) and restyle again.") from None
    finally:
        bpy.ops.object.mode_set(mode='OBJECT')


def _save_npz(path: str, arrays: dict) -> None:
    import numpy as np
    os.makedirs(os.path.dirname(path), exist_ok=True)
    part = path + ".part"
    try:
        with open(part, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(part, path)
    except OSError as exc:
        if os.path.exists(part):
            os.remove(part)
        raise UserError(f"Kiln cannot write {path} ({exc.strerror or exc}): choose another "
                        "output folder in the Kiln preferences.") from None


# ---------------------------------------------------------------- present colours
def _corner_colours(obj, materials_t, uvs_tx3x2):
    """Each triangle corner's present colour (T, 3, 3), sRGB in [0, 1]: the Base Color
    of its material, read from an Image Texture at the corner's UV when one feeds it."""
    import numpy as np
    colours = np.full(uvs_tx3x2.shape[:2] + (3,), GREY, np.float32)
    slots = obj.material_slots
    for index in np.unique(materials_t):
        material = slots[int(index)].material if 0 <= index < len(slots) else None
        source = base_colour_source(material)
        pick = materials_t == index
        if isinstance(source, tuple):
            colours[pick] = source
        elif source is not None:
            colours[pick] = _sample(source, uvs_tx3x2[pick])
    return colours


def base_colour_source(material):
    """The Base Color of `material`'s Principled BSDF: an image (when an Image Texture
    feeds it straight), an sRGB (r, g, b), or None when Kiln cannot tell."""
    if material is None:
        return None
    bsdf = _principled(material)
    if bsdf is None:
        return _srgb(material.diffuse_color[:3])
    socket = bsdf.inputs["Base Color"]
    if not socket.is_linked:
        return _srgb(socket.default_value[:3])
    node = socket.links[0].from_node
    image = getattr(node, "image", None) if node.type == 'TEX_IMAGE' else None
    if image is None or (not image.has_data and not _loads(image)):
        return None
    width, height = image.size
    return image if 0 < width * height <= MAX_SAMPLED_PIXELS else None


def _loads(image) -> bool:
    try:
        image.pixels[0]                 # reads the file (or the packed data) on first use
    except (RuntimeError, IndexError):
        return False
    return image.has_data


def _sample(image, uvs_kx3x2):
    """The image's colour (K, 3, 3) at each UV (nearest pixel, repeating), sRGB."""
    import numpy as np
    width, height = image.size
    channels = image.channels
    pixels = np.empty(width * height * channels, np.float32)
    image.pixels.foreach_get(pixels)
    pixels = pixels.reshape(height, width, channels)                   # row 0 at the bottom
    uv = np.mod(uvs_kx3x2, 1.0)
    x = np.minimum((uv[..., 0] * width).astype(np.int64), width - 1)
    y = np.minimum((uv[..., 1] * height).astype(np.int64), height - 1)
    rgb = pixels[y, x, :3] if channels >= 3 else np.repeat(pixels[y, x, :1], 3, axis=-1)
    return _srgb_array(rgb) if image.is_float else np.clip(rgb, 0.0, 1.0)


def _srgb(linear) -> tuple:
    return tuple(float(c) for c in _srgb_array(tuple(linear)))


def _srgb_array(linear):
    """Scene-linear -> sRGB-encoded values in [0, 1] (what the engine's pictures hold)."""
    import numpy as np
    c = np.clip(np.asarray(linear, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055).astype(np.float32)


def _principled(material):
    """The Principled BSDF that feeds the material's output, or any, or None."""
    tree = material.node_tree if getattr(material, "use_nodes", True) else None
    if tree is None:
        return None
    found = [n for n in tree.nodes if n.type == 'BSDF_PRINCIPLED']
    for node in found:
        if any(link.to_node.type == 'OUTPUT_MATERIAL' for out in node.outputs
               for link in out.links):
            return node
    return found[0] if found else None


# ---------------------------------------------------------------- apply the result
def apply_result(context, target: Target, event: dict, settings: dict):
    """The engine's texture onto the target object (see the module docstring); raises
    UserError, leaving the object as it was, when it cannot be applied."""
    png = str(event.get("texture") or "")
    obj = bpy.data.objects.get(target.object_name)
    if obj is None or obj.type != 'MESH':
        raise UserError(f"{target.object_name} is gone (deleted or renamed while Kiln "
                        f"restyled it): its new texture is {png}.")
    if len(obj.data.loops) != target.loops:
        raise UserError(f"{obj.name}'s mesh changed while Kiln restyled it, so the texture "
                        f"no longer fits its UV map: press Restyle again (the texture is "
                        f"{png}).")
    if not os.path.isfile(png):
        raise UserError(f"The engine's texture {png or '(none)'} is missing: press Restyle "
                        "again.")
    uv_name = target.uv_name or _free_uv_name(obj.data)
    image = bpy.data.images.load(png, check_existing=False)      # nothing changed before
    try:
        image.name = f"{obj.name} restyled"
        image.pack()
        copies = _material_copies(obj, image, uv_name)
    except Exception:
        bpy.data.images.remove(image)
        raise
    if not target.uv_name:
        _add_uv_map(obj.data, uv_name, target.new_uvs)
    _assign(obj, copies)
    obj[PROP] = json.dumps(dict(settings, texture=png, uv_map=uv_name,
                                made_uv_map=target.new_uvs is not None), sort_keys=True)
    return obj


def _free_uv_name(mesh) -> str:
    """NEW_UV_NAME, or NEW_UV_NAME.001 ... when the mesh has a map of that name by now."""
    names = {layer.name for layer in mesh.uv_layers}
    candidates = itertools.chain([NEW_UV_NAME], (f"{NEW_UV_NAME}.{i:03d}" for i in
                                                 itertools.count(1)))
    return next(name for name in candidates if name not in names)


def _add_uv_map(mesh, name: str, uvs) -> None:
    layer = mesh.uv_layers.new(name=name)
    layer.data.foreach_set("uv", uvs)
    mesh.uv_layers.active = layer


def _material_copies(obj, image, uv_name: str) -> dict:
    """{name of a slot's material ("" for none): its restyled copy}; copies made so far
    are removed if one fails."""
    copies = {}
    try:
        for slot in obj.material_slots or [None]:
            old = slot.material if slot is not None else None
            key = old.name if old is not None else ""
            if key not in copies:
                copies[key] = restyled_material(old, image, uv_name, obj.name)
    except Exception:
        for material in copies.values():
            bpy.data.materials.remove(material)
        raise
    return copies


def _assign(obj, copies: dict) -> None:
    """Every slot shows (at object level) the copy of its material."""
    if not obj.material_slots:
        obj.data.materials.append(None)
    for slot in obj.material_slots:
        key = slot.material.name if slot.material is not None else ""   # before relinking
        slot.link = 'OBJECT'
        slot.material = copies[key]


def restyled_material(old, image, uv_name: str, object_name: str):
    """A copy of `old` (or a new material) whose Principled Base Color is `image` read
    through the UV map `uv_name`; everything else in it stays as it was."""
    material = old.copy() if old is not None else bpy.data.materials.new(object_name)
    material.name = f"{old.name if old is not None else object_name} restyled"
    if not getattr(material, "use_nodes", True):      # Blender 4.x; 5.0 always uses nodes
        material.use_nodes = True
    tree = material.node_tree
    bsdf = _principled(material) or _new_principled(tree)
    tex = tree.nodes.new("ShaderNodeTexImage")
    tex.image, tex.label = image, "Kiln restyle"
    tex.location = (bsdf.location.x - 320, bsdf.location.y)
    uv = tree.nodes.new("ShaderNodeUVMap")
    uv.uv_map = uv_name
    uv.location = (tex.location.x - 220, tex.location.y)
    tree.links.new(uv.outputs["UV"], tex.inputs["Vector"])
    tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    return material


def _new_principled(tree):
    bsdf = tree.nodes.new("ShaderNodeBsdfPrincipled")
    output = next((n for n in tree.nodes if n.type == 'OUTPUT_MATERIAL'), None) \
        or tree.nodes.new("ShaderNodeOutputMaterial")
    bsdf.location = (output.location.x - 300, output.location.y)
    tree.links.new(bsdf.outputs["BSDF"], output.inputs["Surface"])
    return bsdf


# ---------------------------------------------------------------- the job
def make_job(context, obj) -> Job:
    """Export `obj`, then one restyle request (validated here as the engine will)."""
    props = context.scene.kiln
    out_dir = paths.output_dir(paths.get_prefs(context))
    prompt = props.restyle_prompt.strip()
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{next(_counter):03d}_{jobs.slug(obj.name, 'object')}"
    params = {"mesh": os.path.join(out_dir, "inputs", f"{stem}_restyle.npz"), "prompt": prompt,
              "strength": round(props.restyle_strength, 4), "seed": props.seed,
              "steps": props.steps, "guidance": round(props.guidance, 4),
              "out": os.path.join(out_dir, f"{stem}_{jobs.slug(prompt)}_s{props.seed}.png")}
    if int(props.texture):
        params["texture"] = int(props.texture)
    if props.sampler != 'AUTO':
        params["sampler"] = props.sampler.lower()
    try:
        protocol.check_prompt(prompt)
        target = export_mesh(context, obj, params["mesh"])
        protocol.validate_restyle(dict(params, type=protocol.RESTYLE))
    except KilnError as exc:
        raise UserError(exc.message) from None
    settings = {k: params[k] for k in ("prompt", "strength", "seed")}
    item = JobItem(params=params, name=obj.name, location=tuple(obj.location), kind="restyle",
                   apply=lambda ctx, event: apply_result(ctx, target, event, settings))
    return Job(items=[item], options=jobs.import_options(context), title="Restyle",
               weights=RESTYLE_WEIGHTS, done_text="Restyled {names} in {seconds:.1f} s.")
