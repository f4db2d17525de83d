"""View3D > Sidebar > Kiln: input, sampling, Generate / Cancel, progress, restyle, engine,
history.

Panels only draw; every action is an operator; what they show comes from runtime/
(cached: a draw never runs a subprocess). Newer layout calls (layout.progress,
Blender 4.0+) are guarded so the panel also draws in older Blender.
"""

import bpy

from ..runtime import discovery, history, importer, paths
from ..runtime.session import SESSION
from ..runtime.ui import wrap


class _KilnPanel:
    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = "Kiln"


def _wrapped(layout, context, text: str, icon: str) -> None:
    """`text` over several labels, as wide as the sidebar allows."""
    region = getattr(context, "region", None)
    scale = context.preferences.system.ui_scale or 1.0        # 0 in background Blender
    width = max(16, int(((region.width if region else 300) - 40 * scale) / (6.5 * scale)))
    col = layout.column(align=True)
    for i, line in enumerate(wrap(text, width)):
        col.label(text=line, icon=icon if i == 0 else 'BLANK1')


def draw_progress(layout, factor: float, text: str) -> None:
    if hasattr(layout, "progress"):            # Blender 4.0+
        layout.progress(factor=factor, type='BAR', text=text)
    else:
        layout.label(text=f"{text} ({factor * 100:.0f}%)", icon='TIME')


def _draw_source(layout, owner, source: str, path: str) -> None:
    """Where a picture comes from (`owner.<source>`): a file at `owner.<path>`, or one of
    Blender's images at `owner.image`."""
    layout.row().prop(owner, source, expand=True)
    if getattr(owner, source) == 'FILE':
        layout.prop(owner, path, text="")
    else:
        layout.template_ID(owner, "image", open="image.open")


def _draw_background(layout, props) -> None:
    """How the pictures' background is removed (the Image and Pictures inputs share it)."""
    layout.prop(props, "background")
    if props.background == 'KEY':
        row = layout.row(align=True)
        row.prop(props, "key_color", text="")
        row.prop(props, "key_tolerance")


class KILN_UL_pictures(bpy.types.UIList):
    """One row per picture of the Pictures input: its name and direction."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_property,
                  index=0, flt_flag=0):
        name = item.label() or "(no picture yet)"
        where = (f"{item.azimuth:g}°, {item.elevation:g}°" if item.direction == 'CUSTOM'
                 else item.direction.title())
        row = layout.row(align=True)
        row.label(text=name, icon='IMAGE_DATA')
        row.label(text=where)


class KILN_PT_main(_KilnPanel, bpy.types.Panel):
    bl_label = "Kiln"
    bl_idname = "KILN_PT_main"

    def draw(self, context):
        layout = self.layout
        props = context.scene.kiln
        layout.row().prop(props, "mode", expand=True)
        if props.mode == 'TEXT':
            layout.prop(props, "prompt", text="")
        elif props.mode == 'IMAGE':
            self._draw_picture(layout, props)
        else:
            self._draw_pictures(layout, props)
        row = layout.row(align=True)
        row.prop(props, "seed")
        row.operator("kiln.randomise_seed", text="", icon='FILE_REFRESH')
        col = layout.column(align=True)
        if props.mode != 'VIEWS':          # views are encoded, not sampled
            col.prop(props, "steps")
            col.prop(props, "guidance")
            col.prop(props, "sampler")
        if props.mode != 'TEXT':
            col.prop(props, "refine_steps")
        col.prop(props, "variations")
        self._draw_actions(layout, context, props)
        self._draw_status(layout, context)

    @staticmethod
    def _draw_picture(layout, props):
        _draw_source(layout, props, "image_source", "image_path")
        _draw_background(layout, props)

    @staticmethod
    def _draw_pictures(layout, props):
        """The Pictures list (1-4, a direction each), the selected one's settings, and the
        background removal shared with the Image input."""
        row = layout.row()
        row.template_list("KILN_UL_pictures", "", props, "pictures", props, "picture_index",
                          rows=2, maxrows=4)
        col = row.column(align=True)
        col.operator("kiln.picture_add", text="", icon='ADD')
        col.operator("kiln.picture_remove", text="", icon='REMOVE')
        if 0 <= props.picture_index < len(props.pictures):
            picture = props.pictures[props.picture_index]
            box = layout.box()
            _draw_source(box, picture, "source", "path")
            box.prop(picture, "direction")
            if picture.direction == 'CUSTOM':
                row = box.row(align=True)
                row.prop(picture, "azimuth")
                row.prop(picture, "elevation")
        _draw_background(layout, props)

    @staticmethod
    def _draw_actions(layout, context, props):
        col = layout.column(align=True)
        row = col.row(align=True)
        row.scale_y = 1.4
        if SESSION.busy:
            row.operator("kiln.cancel", icon='CANCEL')
        else:
            row.operator("kiln.generate", icon='SHADERFX')
        row = col.row(align=True)
        row.operator("kiln.reroll", icon='FILE_REFRESH')
        row.operator("kiln.variations", icon='MOD_ARRAY')
        col.operator("kiln.surprise", icon='QUESTION')
        if importer.is_kiln_object(context.active_object):
            col.operator("kiln.regenerate", icon='MOD_REMESH')

    @staticmethod
    def _draw_status(layout, context):
        job = SESSION.job
        if job is not None:
            draw_progress(layout, job.fraction(), job.label())
        elif SESSION.message:          # may say how a prompt was read: wrap it
            _wrapped(layout, context, SESSION.message, 'CHECKMARK')
        if SESSION.last_error:
            box = layout.box()
            box.alert = True
            _wrapped(box, context, SESSION.last_error, 'ERROR')


class KILN_PT_prompt_list(_KilnPanel, bpy.types.Panel):
    """One object per line of a text block or a file (operators/prompt_list.py)."""
    bl_label = "Prompt List"
    bl_parent_id = "KILN_PT_main"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        layout = self.layout
        props = context.scene.kiln
        layout.row().prop(props, "list_source", expand=True)
        if props.list_source == 'TEXT':
            layout.template_ID(props, "list_text", new="text.new", open="text.open")
        else:
            layout.prop(props, "list_path", text="")
        layout.label(text="One prompt a line; 'PROMPT | SEED' for its own seed", icon='INFO')
        row = layout.row()
        row.scale_y = 1.2
        row.operator("kiln.generate_list", icon='TEXT')


class KILN_PT_morph(_KilnPanel, bpy.types.Panel):
    """In-betweens of the two selected Kiln objects, in a row (operators/morph.py)."""
    bl_label = "Morph"
    bl_parent_id = "KILN_PT_main"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        layout = self.layout
        props = context.scene.kiln
        layout.label(text="Select two Kiln objects, the second active", icon='INFO')
        row = layout.row(align=True)
        row.prop(props, "morph_steps")
        row.prop(props, "morph_path", text="")
        row = layout.row()
        row.scale_y = 1.2
        row.operator("kiln.morph", icon='IPO_EASE_IN_OUT')


class KILN_PT_restyle(_KilnPanel, bpy.types.Panel):
    """New colours for the selected mesh on its own UV map (operators/restyle.py)."""
    bl_label = "Restyle Selected"
    bl_parent_id = "KILN_PT_main"

    def draw(self, context):
        layout = self.layout
        props = context.scene.kiln
        obj = context.active_object
        if obj is None or obj.type != 'MESH':
            layout.label(text="Select a mesh to restyle", icon='INFO')
        else:
            uv = obj.data.uv_layers.active
            layout.label(text=f"{obj.name} · UV map {uv.name}" if uv is not None else
                         f"{obj.name} · no UV map (one will be made)", icon='MESH_DATA')
        layout.prop(props, "restyle_prompt", text="")
        layout.prop(props, "restyle_strength", slider=True)
        row = layout.row()
        row.scale_y = 1.2
        row.operator("kiln.restyle", icon='BRUSH_DATA')


class KILN_PT_output(_KilnPanel, bpy.types.Panel):
    bl_label = "Output"
    bl_parent_id = "KILN_PT_main"

    def draw(self, context):
        props = context.scene.kiln
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        col = layout.column()
        col.prop(props, "output_format")
        col.prop(props, "resolution")
        col.prop(props, "faces", text="Faces")
        col.prop(props, "texture")
        col.prop(props, "texture_mode")
        col.prop(props, "extractor")
        col.prop(props, "smooth", text="Smooth")
        col.prop(props, "target_size")


class KILN_PT_engine(_KilnPanel, bpy.types.Panel):
    bl_label = "Engine"
    bl_parent_id = "KILN_PT_main"

    def draw(self, context):
        layout = self.layout
        found = paths.engine_python(paths.get_prefs(context), wait=False)   # never blocks
        if found.state == discovery.SEARCHING:
            layout.label(text=found.message, icon='TIME')
        elif not found.found:
            _wrapped(layout, context, found.message, 'ERROR')
        icon = {'ready': 'CHECKMARK', 'busy': 'SORTTIME', 'starting': 'TIME',
                'crashed': 'ERROR'}.get(SESSION.state, 'RADIOBUT_OFF')
        layout.label(text=SESSION.state_text(), icon=icon)
        layout.label(text=f"Model: {paths.model_spec()}")
        row = layout.row(align=True)
        row.operator("kiln.restart_engine", text="Restart", icon='FILE_REFRESH')
        row.operator("kiln.stop_engine", text="Stop", icon='PAUSE')
        row = layout.row(align=True)
        row.operator("kiln.open_folder", text="Outputs", icon='FILE_FOLDER').what = 'OUTPUT'
        row.operator("kiln.open_folder", text="Log", icon='TEXT').what = 'LOG'


class KILN_PT_history(_KilnPanel, bpy.types.Panel):
    bl_label = "History"
    bl_parent_id = "KILN_PT_main"

    def draw_header_preset(self, context):
        self.layout.operator("kiln.history_refresh", text="", icon='FILE_REFRESH', emboss=False)

    def draw(self, context):
        layout = self.layout
        found, problem = history.listing()
        if problem:
            _wrapped(layout, context, problem, 'ERROR')
        elif not found:
            layout.label(text="No results yet")
        for entry in found:
            icon_id = history.icon_id(entry)
            if icon_id:                     # the engine's thumbnail, title and button beside
                split = layout.split(factor=0.3)   # a row would squeeze the icon to text size
                split.template_icon(icon_value=icon_id, scale=2.5)
                col = split.column(align=True)
                col.label(text=entry.title)
                col.operator("kiln.history_import", icon='IMPORT').filepath = entry.glb
                continue
            row = layout.row(align=True)
            row.label(text=entry.title, icon='MESH_ICOSPHERE')
            row.operator("kiln.history_import", text="", icon='IMPORT').filepath = entry.glb


CLASSES = (KILN_UL_pictures, KILN_PT_main, KILN_PT_prompt_list, KILN_PT_morph,
           KILN_PT_restyle, KILN_PT_output, KILN_PT_engine, KILN_PT_history)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
