"""Generate List: one object per prompt of a text block or a file, laid out in a grid.

The list is read with engine/protocol.parse_prompt_list, as `python -m engine generate
--prompts` reads it: one prompt a line, optionally `PROMPT | SEED` (other lines take the
panel's seed); # starts a comment. A bad line is reported and skipped before any work;
a prompt the engine cannot make (no surface) is skipped when its turn comes, and the rest
still come out (runtime/jobs.list_job). The panel's other settings (steps, guidance,
output) apply to every line.
"""

from __future__ import annotations

import bpy

from ..engine import protocol
from ..engine.errors import KilnError
from ..runtime import jobs
from ..runtime.paths import UserError
from .generate import _refuse, job_poll, run_job


class KILN_OT_generate_list(bpy.types.Operator):
    """Make one object per line of the prompt list (a text block or a file), in a grid at the 3D cursor"""
    bl_idname = "kiln.generate_list"
    bl_label = "Generate List"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        props = getattr(context.scene, "kiln", None)
        if props is not None and props.list_source == 'TEXT' and props.list_text is None:
            return _refuse(cls, "Pick a text block as the prompt list")
        if props is not None and props.list_source == 'FILE' and not props.list_path.strip():
            return _refuse(cls, "Pick a prompt list file")
        return job_poll(cls, context, need_input=False)

    def execute(self, context):
        try:
            items, bad = protocol.parse_prompt_list(jobs.list_text(context.scene.kiln),
                                                    context.scene.kiln.seed)
        except (UserError, KilnError) as exc:
            self.report({'ERROR'}, getattr(exc, "message", str(exc)))
            return {'CANCELLED'}
        for line in bad:
            self.report({'WARNING'}, f"Kiln skipped {line['message'][:1].lower()}"
                        f"{line['message'][1:]}")
        if not items:
            self.report({'ERROR'}, "The prompt list has no prompt to make: write one a line, "
                        f"{protocol.LIST_EXAMPLE}.")
            return {'CANCELLED'}
        return run_job(self, context, lambda: jobs.list_job(context, items))


CLASSES = (KILN_OT_generate_list,)
