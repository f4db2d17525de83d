"""Restyle Selected: new colours for the active mesh from a prompt, baked onto its own UV
map (runtime/restyle.py exports the mesh, builds the request and applies the texture)."""

from __future__ import annotations

import bpy

from ..runtime import restyle
from .generate import _refuse, job_poll, run_job


class KILN_OT_restyle(bpy.types.Operator):
    """Give the selected mesh new colours from the restyle prompt, baked onto its own UV map (its geometry, UVs and modifiers stay as they are; Ctrl+Z brings the old material back)"""
    bl_idname = "kiln.restyle"
    bl_label = "Restyle"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        if obj is None or obj.type != 'MESH':
            return _refuse(cls, "Select a mesh object to restyle (convert curves and text "
                           "to a mesh first)")
        props = getattr(context.scene, "kiln", None)
        if props is not None and not props.restyle_prompt.strip():
            return _refuse(cls, "Type what it should look like first, e.g. 'a blue chair'")
        return job_poll(cls, context, need_input=False)

    def execute(self, context):
        return run_job(self, context, lambda: restyle.make_job(context, context.active_object))


CLASSES = (KILN_OT_restyle,)
