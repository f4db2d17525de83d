"""Generate List: one object per prompt of a text block or a file, laid out in a grid.

The list is read with engine/protocol.parse_prompt_list, as `python -m engine generate
--prompts` reads it: one prompt a line, optionally `PROMPT | SEED` (other lines take the
panel's seed); # starts a comment. A bad line is reported and skipped before any work;
a prompt the engine cannot make (no surface) is skipped when its turn comes, and the rest
still come out. The panel's other settings (steps, guidance, output) apply to every line.
"""

from __future__ import annotations

import math

import bpy

from .. import preferences as prefs_mod
from ..engine import protocol
from ..engine.errors import KilnError
from . import jobs
from .generate import _refuse, job_poll, run_job
from .session import Job, JobItem, UserError


def list_text(props) -> str:
    """The prompt list's text from the chosen text block or file; UserError naming the fix."""
    if props.list_source == 'TEXT':
        if props.list_text is None:
            raise UserError("Pick a text block as the prompt list (one prompt a line), or "
                            "choose File.")
        return props.list_text.as_string()
    path = bpy.path.abspath(props.list_path.strip()) if props.list_path.strip() else ""
    if not path:
        raise UserError("Pick a prompt list file (one prompt a line), or choose Text Block.")
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "surrogateescape")
    except OSError as exc:
        raise UserError(f"Kiln cannot read the prompt list {path} "
                        f"({exc.strerror or type(exc).__name__}): pick another file.") from None


def grid_location(cursor, index: int, count: int, step: float) -> tuple:
    """Row by row from the 3D cursor: +X along a row, rows towards -Y."""
    columns = max(1, math.ceil(math.sqrt(count)))
    row, column = divmod(index, columns)
    return (cursor.x + column * step, cursor.y - row * step, cursor.z)


def list_job(context, items: list[dict]) -> Job:
    props = context.scene.kiln
    out_dir = prefs_mod.output_dir(prefs_mod.get_prefs(context))
    shared = jobs.base_params(props, out_dir, mode="text")
    step = props.target_size * 1.25
    job_items = []
    for i, item in enumerate(items):
        params = jobs.request(dict(shared, prompt=item["prompt"]), item["seed"], out_dir)
        job_items.append(JobItem(params=params, name=jobs.object_name(params),
                                 location=grid_location(context.scene.cursor.location, i,
                                                        len(items), step)))
    return Job(items=job_items, options=jobs.import_options(context), title="Prompt list",
               keep_going=True)


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
            items, bad = protocol.parse_prompt_list(list_text(context.scene.kiln),
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
        return run_job(self, context, lambda: list_job(context, items))


CLASSES = (KILN_OT_generate_list,)
