"""Restart the engine, open the output folder, open the log."""

from __future__ import annotations

import os

import bpy

from ..runtime import paths
from ..runtime.paths import UserError
from ..runtime.session import SESSION


class KILN_OT_restart_engine(bpy.types.Operator):
    """Stop the engine (cancelling any job) and start it again with the current preferences"""
    bl_idname = "kiln.restart_engine"
    bl_label = "Restart Engine"

    def execute(self, context):
        try:
            SESSION.restart_engine(context)
        except UserError as exc:
            self.report({'ERROR'}, str(exc))
            return {'CANCELLED'}
        return {'FINISHED'}


class KILN_OT_stop_engine(bpy.types.Operator):
    """Stop the engine and free its memory (the next Generate starts it again)"""
    bl_idname = "kiln.stop_engine"
    bl_label = "Stop Engine"

    @classmethod
    def poll(cls, context):
        return SESSION.client is not None

    def execute(self, context):
        SESSION.abort()
        SESSION.stop_engine()
        return {'FINISHED'}


class KILN_OT_open_folder(bpy.types.Operator):
    """Open Kiln's output folder (or its log folder) in the file browser"""
    bl_idname = "kiln.open_folder"
    bl_label = "Open Output Folder"

    what: bpy.props.EnumProperty(items=(('OUTPUT', "Output", ""), ('LOG', "Log", "")))

    def execute(self, context):
        try:
            if self.what == 'LOG':
                path = os.path.dirname(paths.log_path())
            else:
                path = paths.output_dir(paths.get_prefs(context))
        except UserError as exc:
            self.report({'ERROR'}, str(exc))
            return {'CANCELLED'}
        if bpy.app.background:
            self.report({'INFO'}, path)
            return {'FINISHED'}
        bpy.ops.wm.path_open(filepath=path)
        return {'FINISHED'}


CLASSES = (KILN_OT_restart_engine, KILN_OT_stop_engine, KILN_OT_open_folder)
