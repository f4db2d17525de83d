"""Kiln's operators and the runtime session behind them."""

import bpy

from . import (engine_ops, generate, history, morph, prompt_list, restyle, session,
               setup_engine)

_CLASSES = (*generate.CLASSES, *prompt_list.CLASSES, *morph.CLASSES, *restyle.CLASSES,
            *engine_ops.CLASSES, *history.CLASSES, *setup_engine.CLASSES)


def register():
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    history.register()
    session.register()


def unregister():
    session.unregister()
    history.unregister()
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
