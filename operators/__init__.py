"""Kiln's operators: bpy.types.Operator classes only. What they call (the session, the
jobs, the importer, the history scan) lives in runtime/."""

import bpy

from . import engine_ops, generate, history, morph, prompt_list, restyle, setup_engine

_CLASSES = (*generate.CLASSES, *prompt_list.CLASSES, *morph.CLASSES, *restyle.CLASSES,
            *engine_ops.CLASSES, *history.CLASSES, *setup_engine.CLASSES)


def register():
    for cls in _CLASSES:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
