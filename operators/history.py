"""Recent results in the output folder (GLB + JSON sidecar + optional PNG thumbnail).

`entries()` is cheap enough for a panel's draw(): it rescans only when the folder's
modification time changes (or after `forget()`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import bpy
from bpy.props import StringProperty

from .. import preferences as prefs_mod

LIMIT = 8


@dataclass
class Entry:
    glb: str
    meta: dict
    thumb: str          # "" when the engine wrote no thumbnail
    mtime: float

    @property
    def title(self) -> str:
        what = self.meta.get("prompt") or os.path.basename(self.meta.get("image") or "") \
            or os.path.basename(self.glb)
        return f"{what} · seed {self.meta.get('seed', '?')}"


_CACHE = {"key": None, "entries": []}
_PREVIEWS = {"collection": None}


def forget() -> None:
    _CACHE["key"] = None


def entries(out_dir: str | None = None, limit: int = LIMIT) -> list[Entry]:
    out_dir = out_dir or prefs_mod.output_dir()
    try:
        key = (out_dir, os.stat(out_dir).st_mtime_ns, limit)
    except OSError:
        return []
    if _CACHE["key"] != key:
        _CACHE["entries"], _CACHE["key"] = scan(out_dir, limit), key
    return _CACHE["entries"]


def scan(out_dir: str, limit: int = LIMIT) -> list[Entry]:
    """The newest `limit` results that have both a GLB and its JSON sidecar."""
    found = []
    for name in os.listdir(out_dir):
        if not name.endswith(".glb"):
            continue
        glb = os.path.join(out_dir, name)
        stem = glb[:-4]
        if os.path.isfile(stem + ".json"):
            found.append((os.path.getmtime(glb), glb, stem))
    found.sort(reverse=True)
    result = []
    for mtime, glb, stem in found[:limit]:
        thumb = stem + ".png" if os.path.isfile(stem + ".png") else ""
        result.append(Entry(glb=glb, meta=read_meta(stem + ".json"), thumb=thumb,
                            mtime=mtime))
    return result


def read_meta(json_path: str) -> dict:
    try:
        with open(json_path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def icon_id(entry: Entry) -> int:
    """A preview icon for the thumbnail, or 0."""
    previews = _PREVIEWS["collection"]
    if not entry.thumb or previews is None:
        return 0
    if entry.thumb not in previews:
        previews.load(entry.thumb, entry.thumb, 'IMAGE')
    return previews[entry.thumb].icon_id


class KILN_OT_history_import(bpy.types.Operator):
    """Import this earlier result again at the 3D cursor"""
    bl_idname = "kiln.history_import"
    bl_label = "Re-import"
    bl_options = {'REGISTER', 'UNDO'}

    filepath: StringProperty(name="GLB", subtype='FILE_PATH', options={'SKIP_SAVE'})

    @classmethod
    def poll(cls, context):
        return context.scene is not None and context.mode == 'OBJECT'

    def execute(self, context):
        from . import importer, jobs
        if not os.path.isfile(self.filepath):
            self.report({'ERROR'}, f"{self.filepath} no longer exists.")
            return {'CANCELLED'}
        meta = read_meta(self.filepath[:-4] + ".json")
        options = jobs.import_options(context)
        params = {k: meta[k] for k in ("mode", "prompt", "image", "seed", "steps", "guidance",
                                       "resolution", "faces", "texture", "texture_mode")
                  if meta.get(k) is not None}
        name = jobs.object_name(dict(params, seed=meta.get("seed", 0)))
        options["model"] = meta.get("model", options["model"])
        obj = importer.import_result(
            context, self.filepath, name=name, location=tuple(context.scene.cursor.location),
            target_size=options["target_size"], smooth=options["smooth"], meta=meta,
            settings=dict(params=params, **options))
        self.report({'INFO'}, f"Imported {obj.name}.")
        return {'FINISHED'}


class KILN_OT_history_refresh(bpy.types.Operator):
    """Read the output folder again"""
    bl_idname = "kiln.history_refresh"
    bl_label = "Refresh History"

    def execute(self, context):
        forget()
        return {'FINISHED'}


CLASSES = (KILN_OT_history_import, KILN_OT_history_refresh)


def register():
    import bpy.utils.previews
    _PREVIEWS["collection"] = bpy.utils.previews.new()


def unregister():
    import bpy.utils.previews
    if _PREVIEWS["collection"] is not None:
        bpy.utils.previews.remove(_PREVIEWS["collection"])
    _PREVIEWS["collection"] = None
    forget()
