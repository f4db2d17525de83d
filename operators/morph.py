"""Morph: N in-betweens of the two selected Kiln objects, in a row between them.

Each object names its result (kiln_glb), whose sidecar NAME.json holds the prompt, seed
and settings that made it; the engine re-makes both latents from those (engine/morph.py)
and returns one GLB per fraction (runtime/jobs.morph_job builds the requests). The first
source is the selected object that is not active, the second the active one (select
one, then Shift-click the other). Each in-between lands at its fraction of the way from
the first to the second and is named with it, e.g. morph_0.25_red_chair_blue_mug.
"""

from __future__ import annotations

import bpy

from ..runtime import importer, jobs
from .generate import _refuse, job_poll, run_job


def pair(context):
    """(first, second) Kiln objects of the selection, or None unless exactly two."""
    chosen = [o for o in context.selected_objects if importer.is_kiln_object(o)]
    active = context.active_object
    if len(chosen) != 2 or len(context.selected_objects) != 2 or active not in chosen:
        return None
    return tuple(sorted(chosen, key=lambda o: o == active))


class KILN_OT_morph(bpy.types.Operator):
    """Make in-betweens of the two selected Kiln objects, in a row between them"""
    bl_idname = "kiln.morph"
    bl_label = "Morph"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        if getattr(context, "selected_objects", None) is None or pair(context) is None:
            return _refuse(cls, "Select two objects Kiln made (the second one active)")
        return job_poll(cls, context, need_input=False)

    def execute(self, context):
        first, second = pair(context)
        return run_job(self, context, lambda: jobs.morph_job(context, first, second))


CLASSES = (KILN_OT_morph,)
