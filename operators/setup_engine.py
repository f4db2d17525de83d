"""The "Set up engine" button (the work is runtime/engine_setup.py)."""

from __future__ import annotations

import bpy

from ..runtime import engine_setup, paths


class KILN_OT_setup_engine(bpy.types.Operator):
    """Create Kiln's own Python environment and install torch and the engine's requirements (downloads about 1-3 GB)"""
    bl_idname = "kiln.setup_engine"
    bl_label = "Set up engine"

    @classmethod
    def poll(cls, context):
        return not engine_setup.STATE["running"]

    def execute(self, context):
        if not paths.allow_online():
            self.report({'ERROR'}, engine_setup.offline_message())
            return {'CANCELLED'}
        prefs = paths.get_prefs(context)
        engine_setup.start(prefs.setup_build if prefs else 'AUTO')
        self.report({'INFO'}, "Kiln: setting up the engine (see Preferences > Add-ons > Kiln).")
        return {'FINISHED'}


CLASSES = (KILN_OT_setup_engine,)
