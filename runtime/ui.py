"""Small Blender helpers the runtime and the panels share: redraw Kiln's areas, a
context with a window (for code run from a timer), one undo step, wrapped text."""

from __future__ import annotations

import contextlib
import logging
import textwrap

import bpy

log = logging.getLogger("kiln")


def tag_redraw() -> None:
    """Redraw the 3D Views (Kiln's sidebar) and the Preferences (Kiln's add-on box)."""
    wm = bpy.context.window_manager
    if wm is None:
        return
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type in {'VIEW_3D', 'PREFERENCES'}:
                area.tag_redraw()


def main_context():
    """A context with a window, for code run from a timer (where there is none)."""
    context = bpy.context
    wm = context.window_manager
    if context.window is None and wm is not None and wm.windows:
        window = wm.windows[0]
        return context.temp_override(window=window, screen=window.screen)
    return contextlib.nullcontext()


def push_undo(message: str) -> None:
    try:
        with main_context():
            bpy.ops.ed.undo_push(message=message)
    except (RuntimeError, AttributeError) as exc:
        log.warning("no undo step for %s: %s", message, exc)


def wrap(text: str, width: int = 40) -> list[str]:
    return textwrap.wrap(text, width) or [""]
