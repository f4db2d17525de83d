"""Re-import an earlier result from the History panel; read the output folder again."""

from __future__ import annotations

import os

import bpy
from bpy.props import StringProperty

from ..runtime import history, importer, jobs


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
        if not os.path.isfile(self.filepath):
            self.report({'ERROR'}, f"{self.filepath} no longer exists: press Refresh "
                        "History to list what is in the output folder now.")
            return {'CANCELLED'}
        meta = history.read_meta(self.filepath[:-4] + ".json")
        params = history.sidecar_params(meta)
        options = jobs.import_options(context)
        options["model"] = history.text_field(meta, "model") or options["model"]
        name = jobs.object_name(dict(params, seed=params.get("seed", 0)))
        try:
            obj = importer.import_result(
                context, self.filepath, name=name, location=tuple(context.scene.cursor.location),
                target_size=options["target_size"], smooth=options["smooth"], meta=params,
                settings=dict(params=params, **options))
        except (RuntimeError, ValueError, OSError) as exc:
            why = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            self.report({'ERROR'}, f"Blender could not import {self.filepath} ({why}): the "
                        "file is damaged or not a Kiln result; generate it again.")
            return {'CANCELLED'}
        self.report({'INFO'}, f"Imported {obj.name}.")
        return {'FINISHED'}


class KILN_OT_history_refresh(bpy.types.Operator):
    """Read the output folder again"""
    bl_idname = "kiln.history_refresh"
    bl_label = "Refresh History"

    def execute(self, context):
        history.forget()
        return {'FINISHED'}


CLASSES = (KILN_OT_history_import, KILN_OT_history_refresh)
