"""Generate, variations, reroll, regenerate-selected, cancel, randomise seed."""

from __future__ import annotations

import logging

import bpy
from bpy.props import EnumProperty, StringProperty

from ..props import MAX_PICTURES
from ..runtime import importer, jobs, paths
from ..runtime.paths import UserError
from ..runtime.session import SESSION, synchronous

log = logging.getLogger("kiln")


# ---------------------------------------------------------------- shared
def _refuse(cls, message: str) -> bool:
    if hasattr(cls, "poll_message_set"):
        cls.poll_message_set(message)
    return False


def job_poll(cls, context, need_input: bool = True) -> bool:
    """No second job, an input to work from, an engine Python to run."""
    if SESSION.busy:
        return _refuse(cls, "A Kiln job is running: wait for it or press Cancel")
    scene = getattr(context, "scene", None)
    if scene is None or not hasattr(scene, "kiln"):
        return False
    if context.mode != 'OBJECT':
        return _refuse(cls, "Switch to Object Mode first")
    props = scene.kiln
    if need_input and props.mode == 'TEXT' and not props.prompt.strip():
        return _refuse(cls, "Type a prompt first")
    if need_input and props.mode == 'IMAGE' and not _has_picture(props):
        return _refuse(cls, "Pick a picture first")
    if need_input and props.mode == 'VIEWS':
        why = pictures_missing(props)
        if why:
            return _refuse(cls, why)
    found = paths.engine_python(paths.get_prefs(context))     # cached; searched off-thread
    if not found.found:
        return _refuse(cls, found.message)
    return True


def pictures_missing(props) -> str:
    """Why the Pictures list cannot be sent yet, or ""."""
    if not len(props.pictures):
        return "Add a picture of the object first"
    for i, picture in enumerate(props.pictures):
        if not picture.label():
            return f"Picture {i + 1} has no file or image"
    return ""


def _has_picture(props) -> bool:
    if props.image_source == 'FILE':
        return bool(props.image_path.strip())
    return props.image is not None


def run_job(op, context, make):
    """Build the job with `make()`, hand it to the session; in background mode wait.
    Every failure is reported as a sentence, never as a traceback."""
    try:
        job = make()
        SESSION.submit(context, job)
    except UserError as exc:
        op.report({'ERROR'}, str(exc))
        return {'CANCELLED'}
    except Exception as exc:          # a Kiln bug: a sentence here, the traceback in the log
        log.exception("Kiln could not start the job")
        op.report({'ERROR'}, f"Kiln could not start the job ({type(exc).__name__}: {exc}); "
                  "nothing was generated. The traceback is in Blender's console: please "
                  "report it.")
        return {'CANCELLED'}
    if not synchronous():
        return {'FINISHED'}
    prefs = paths.get_prefs(context)
    job = SESSION.run_until_done(prefs.timeout if prefs else 600.0)
    if job.error:
        op.report({'ERROR'}, job.error)
    elif job.cancelled:
        op.report({'WARNING'}, "Kiln: cancelled.")
    else:
        op.report({'INFO'}, SESSION.message)
    return {'FINISHED'} if job.imported else {'CANCELLED'}


# ---------------------------------------------------------------- operators
class KILN_OT_generate(bpy.types.Operator):
    """Make a textured mesh from the prompt (or picture) at the 3D cursor"""
    bl_idname = "kiln.generate"
    bl_label = "Generate"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        return job_poll(cls, context)

    def execute(self, context):
        seed = context.scene.kiln.seed
        return run_job(self, context, lambda: jobs.make_job(context, [seed], "Generate"))


class KILN_OT_variations(bpy.types.Operator):
    """Make one object per seed (seed, seed + 1, ...) in a row beside the 3D cursor"""
    bl_idname = "kiln.variations"
    bl_label = "Variations"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        return job_poll(cls, context)

    def execute(self, context):
        props = context.scene.kiln
        seeds = [min(props.seed + i, jobs.SEED_MAX) for i in range(props.variations)]
        seeds = list(dict.fromkeys(seeds))
        return run_job(self, context, lambda: jobs.make_job(context, seeds, "Variations"))


SEED_MODES = (('NEXT', "Next seed", "Seed + 1"),
              ('RANDOM', "Random seed", "A random seed"),
              ('KEEP', "Same seed", "Keep the seed (e.g. to try a new prompt)"))


def next_seed(seed: int, mode: str) -> int:
    if mode == 'RANDOM':
        return jobs.random_seed()
    if mode == 'NEXT':
        return seed + 1 if seed < jobs.SEED_MAX else 0
    return seed


class KILN_OT_reroll(bpy.types.Operator):
    """Change the seed and generate again"""
    bl_idname = "kiln.reroll"
    bl_label = "Reroll"
    bl_options = {'REGISTER', 'UNDO'}

    seed_mode: EnumProperty(name="Seed", items=SEED_MODES[:2], default='NEXT')

    @classmethod
    def poll(cls, context):
        return job_poll(cls, context)

    def execute(self, context):
        props = context.scene.kiln
        props.seed = next_seed(props.seed, self.seed_mode)
        seed = props.seed
        return run_job(self, context, lambda: jobs.make_job(context, [seed], "Reroll"))


class KILN_OT_regenerate(bpy.types.Operator):
    """Make the selected Kiln object again with a new seed or prompt (its settings are stored on it)"""
    bl_idname = "kiln.regenerate"
    bl_label = "Regenerate Selected"
    bl_options = {'REGISTER', 'UNDO'}

    seed_mode: EnumProperty(name="Seed", items=SEED_MODES, default='NEXT')
    prompt: StringProperty(name="Prompt", description="A new prompt (empty keeps the object's)")

    @classmethod
    def poll(cls, context):
        if not importer.is_kiln_object(context.active_object):
            return _refuse(cls, "Select an object Kiln made")
        return job_poll(cls, context, need_input=False)

    def invoke(self, context, event):
        self.prompt = str(context.active_object.get(importer.PROP_PREFIX + "prompt", ""))
        return context.window_manager.invoke_props_dialog(self)

    def execute(self, context):
        return run_job(self, context, lambda: self._job(context))

    def _job(self, context):
        obj = context.active_object
        out_dir = paths.output_dir(paths.get_prefs(context))
        try:
            params, seed, stored_options = importer.regenerate_source(obj)
            if self.prompt.strip() and params.get("mode", "text") == "text":
                params["prompt"] = self.prompt.strip()
            full = jobs.request(params, next_seed(seed, self.seed_mode), out_dir)
        except (importer.DamagedSettings, UserError) as exc:    # checked before any work
            raise UserError(damaged(obj, str(exc).rstrip("."))) from None
        item = jobs.JobItem(params=full, name=jobs.object_name(full),
                            location=tuple(obj.location), replace=obj.name)
        options = dict(jobs.import_options(context), **stored_options)
        return jobs.Job(items=[item], options=options, title="Regenerate")


def damaged(obj, what: str) -> str:
    return (f"Kiln cannot regenerate {obj.name}: {what}. Generate it afresh from the Kiln "
            "panel instead (or re-import it from History).")


class KILN_OT_surprise(bpy.types.Operator):
    """Make something without a prompt or picture (the model's own choice) at a random seed"""
    bl_idname = "kiln.surprise"
    bl_label = "Surprise Me"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        return job_poll(cls, context, need_input=False)

    def execute(self, context):
        props = context.scene.kiln
        props.seed = jobs.random_seed()
        seed = props.seed
        return run_job(self, context, lambda: jobs.make_job(context, [seed], "Surprise me",
                                                             mode="unconditional"))


class KILN_OT_picture_add(bpy.types.Operator):
    """Add a picture of the object (up to 4), taken from the next direction around it"""
    bl_idname = "kiln.picture_add"
    bl_label = "Add Picture"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        props = getattr(context.scene, "kiln", None)
        if props is not None and len(props.pictures) >= MAX_PICTURES:
            return _refuse(cls, f"Kiln reads at most {MAX_PICTURES} pictures of an object")
        return props is not None

    def execute(self, context):
        props = context.scene.kiln
        used = {p.direction for p in props.pictures}
        picture = props.pictures.add()
        picture.direction = next((d for d in ('FRONT', 'RIGHT', 'BACK', 'LEFT') if d not in used),
                                 'CUSTOM')
        props.picture_index = len(props.pictures) - 1
        return {'FINISHED'}


class KILN_OT_picture_remove(bpy.types.Operator):
    """Remove the selected picture from the list"""
    bl_idname = "kiln.picture_remove"
    bl_label = "Remove Picture"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        props = getattr(context.scene, "kiln", None)
        return props is not None and 0 <= props.picture_index < len(props.pictures)

    def execute(self, context):
        props = context.scene.kiln
        props.pictures.remove(props.picture_index)
        props.picture_index = min(props.picture_index, len(props.pictures) - 1)
        return {'FINISHED'}


class KILN_OT_cancel(bpy.types.Operator):
    """Stop the running Kiln job (the scene stays as it was)"""
    bl_idname = "kiln.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return SESSION.busy

    def execute(self, context):
        SESSION.cancel()
        return {'FINISHED'}


class KILN_OT_randomise_seed(bpy.types.Operator):
    """Pick a random seed"""
    bl_idname = "kiln.randomise_seed"
    bl_label = "Random Seed"
    bl_options = {'REGISTER', 'UNDO'}

    def execute(self, context):
        context.scene.kiln.seed = jobs.random_seed()
        return {'FINISHED'}


CLASSES = (KILN_OT_generate, KILN_OT_variations, KILN_OT_reroll, KILN_OT_regenerate,
           KILN_OT_surprise, KILN_OT_picture_add, KILN_OT_picture_remove, KILN_OT_cancel,
           KILN_OT_randomise_seed)
