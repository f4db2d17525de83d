"""Morph: N in-betweens of the two selected Kiln objects, in a row between them.

Each object names its result (kiln_glb), whose sidecar NAME.json holds the prompt, seed
and settings that made it; the engine re-makes both latents from those (engine/morph.py)
and returns one GLB per fraction. The first source is the selected object that is not
active, the second the active one (select one, then Shift-click the other). Each
in-between lands at its fraction of the way from the first to the second and is named
with it, e.g. morph_0.25_red_chair_blue_mug.
"""

from __future__ import annotations

import os
import time

import bpy

from .. import preferences as prefs_mod
from ..engine import protocol
from ..engine.errors import KilnError
from . import importer, jobs
from .generate import _refuse, job_poll, run_job
from .session import Job, JobItem, UserError


def pair(context):
    """(first, second) Kiln objects of the selection, or None unless exactly two."""
    chosen = [o for o in context.selected_objects if importer.is_kiln_object(o)]
    active = context.active_object
    if len(chosen) != 2 or len(context.selected_objects) != 2 or active not in chosen:
        return None
    return tuple(sorted(chosen, key=lambda o: o == active))


def sidecar_of(obj) -> str:
    """The sidecar of the result `obj` came from; UserError when it is gone."""
    glb = str(obj.get(importer.PROP_PREFIX + "glb", ""))
    sidecar = glb[:-4] + ".json" if glb.endswith(".glb") else ""
    if not sidecar or not os.path.isfile(sidecar):
        raise UserError(f"Kiln cannot morph {obj.name}: the result files it came from "
                        f"({glb or 'none recorded'}) are gone. Generate it again first.")
    return sidecar


def morph_job(context, first, second) -> Job:
    props = context.scene.kiln
    out_dir = prefs_mod.output_dir(prefs_mod.get_prefs(context))
    a, b = sidecar_of(first), sidecar_of(second)
    names = f"{jobs.slug(first.get('kiln_prompt', ''), 'a')}_" \
            f"{jobs.slug(second.get('kiln_prompt', ''), 'b')}"
    start, end = first.location.copy(), second.location.copy()
    items = []
    for f in protocol.morph_fractions(props.morph_steps):
        name = f"morph_{f:.2f}_{names}"[:60]
        stamp = time.strftime("%Y%m%d-%H%M%S")
        params = {"a": a, "b": b, "fraction": f, "path": props.morph_path.lower(),
                  "out": os.path.join(out_dir, f"{stamp}_{name}.glb")}
        try:
            protocol.validate_morph(dict(params, type=protocol.MORPH))
        except KilnError as exc:
            raise UserError(exc.message) from None
        items.append(JobItem(params=params, name=name, kind="morph",
                             location=tuple(start.lerp(end, f))))
    return Job(items=items, options=jobs.import_options(context), title="Morph")


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
        return run_job(self, context, lambda: morph_job(context, first, second))


CLASSES = (KILN_OT_morph,)
