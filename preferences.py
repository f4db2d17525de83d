"""Add-on preferences: the engine's Python, device, model, output folder, warm engine.

What they mean (paths, the model, which Python runs the engine) is runtime/paths.py,
which reads these settings as values; this module only declares and draws them.
"""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, StringProperty

from .runtime import discovery, engine_setup, paths
from .runtime.paths import ADDON_ID, DEFAULT_MODEL
from .runtime.ui import wrap


# ---------------------------------------------------------------- preferences
def _changed(self, context):
    paths.forget_checks()


class KilnPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    python_path: StringProperty(
        name="Engine Python", subtype='FILE_PATH', update=_changed,
        description="A Python with torch that runs the engine; empty finds one "
                    "(Kiln's own environment, Blender's Python, the repository .venv)")
    device: EnumProperty(
        name="Device", default='AUTO',
        items=(('AUTO', "Auto", "CUDA when available, else the CPU"),
               ('CPU', "CPU", "Always the CPU"),
               ('CUDA', "CUDA", "An NVIDIA GPU")))
    model_source: EnumProperty(
        name="Model", default='BUNDLED',
        items=(('BUNDLED', "Bundled", "A model shipped inside the extension"),
               ('FOLDER', "Folder", "A model folder on disk (config.json + safetensors)"),
               ('HUB', "Hub", "A Hugging Face repository id (downloads need online access)")))
    bundled_model: StringProperty(name="Bundled model", default=DEFAULT_MODEL)
    model_folder: StringProperty(name="Model folder", subtype='DIR_PATH')
    hub_id: StringProperty(name="Hub id", description="e.g. org/kiln-model")
    output_dir: StringProperty(
        name="Output folder", subtype='DIR_PATH',
        description="Where results (GLB, JSON, thumbnail) are kept; empty uses the "
                    "extension's user folder")
    keep_warm: BoolProperty(
        name="Keep engine warm", default=True,
        description="Keep the engine (and its model) loaded between generations")
    timeout: FloatProperty(
        name="Batch timeout", default=600.0, min=10.0, subtype='TIME_ABSOLUTE',
        description="Longest wait for one job when Blender runs in background mode")
    setup_build: EnumProperty(
        name="Build", default='AUTO',
        items=(('AUTO', "Auto", "CUDA build when an NVIDIA driver is present, else CPU"),
               ('CPU', "CPU", "The CPU build of torch (smaller download)"),
               ('CUDA', "CUDA", "The CUDA build of torch")))

    def draw(self, context):
        layout = self.layout
        self._draw_engine(layout.box())
        col = layout.column()
        col.prop(self, "device")
        col.prop(self, "model_source")
        if self.model_source == 'BUNDLED':
            col.prop(self, "bundled_model")
            names = paths.bundled_models()
            col.label(text="Bundled: " + (", ".join(names) if names else "none found"))
        elif self.model_source == 'FOLDER':
            col.prop(self, "model_folder")
        else:
            col.prop(self, "hub_id")
        col.prop(self, "output_dir")
        col.prop(self, "keep_warm")
        col.prop(self, "timeout")
        col.label(text=f"Log: {paths.log_path()}")

    def _draw_engine(self, box):
        box.label(text="Engine Python", icon='SCRIPTPLUGINS')
        box.prop(self, "python_path")
        found = paths.engine_python(self, wait=False)      # cached; never blocks a draw
        if found.found:
            box.label(text=f"Using {found.python} ({found.message})", icon='CHECKMARK')
        elif found.state == discovery.SEARCHING:
            box.label(text=found.message, icon='TIME')
        else:
            for i, line in enumerate(wrap(found.message, 70)):
                box.label(text=line, icon='ERROR' if i == 0 else 'BLANK1')
        row = box.row()
        row.prop(self, "setup_build")
        row.operator("kiln.setup_engine", icon='IMPORT')
        draw_setup_status(box)


def draw_setup_status(layout) -> None:
    """Offline notice, then the running setup's step, pip's latest line or its error."""
    state = engine_setup.STATE
    if not paths.allow_online():
        for i, line in enumerate(wrap(engine_setup.offline_message(), 70)):
            layout.label(text=line, icon='INFO' if i == 0 else 'BLANK1')
    if not (state["running"] or state["done"] or state["error"]):
        return
    factor = state["step"] / max(state["steps"], 1)
    text = f"{state['title']} ({state['step']}/{state['steps']})"
    if hasattr(layout, "progress"):
        layout.progress(factor=factor, type='BAR', text=text)
    else:
        layout.label(text=text)
    if state["line"] and state["running"]:
        layout.label(text=state["line"])
    if state["error"]:
        layout.label(text=state["error"], icon='ERROR')


def register():
    bpy.utils.register_class(KilnPreferences)


def unregister():
    bpy.utils.unregister_class(KilnPreferences)
