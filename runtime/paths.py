"""Where Kiln's files are and what the preferences ask for: the user folder, the log,
the output folder, the model, and which Python runs the engine.

The preferences are read as values: `get_prefs()` finds the add-on's preferences by its
id through bpy (this module never imports preferences.py, which imports it). Standard
library + bpy only.
"""

from __future__ import annotations

import os
import sys

import bpy

from . import discovery, ui

ADDON_ID = __package__.rpartition(".")[0]      # "bl_ext.user_default.kiln" or "kiln"
ADDON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # engine/, weights/
DEFAULT_MODEL = "kiln-mini"


class UserError(Exception):
    """A problem the artist can fix; the message says how."""


# ---------------------------------------------------------------- folders
def is_extension() -> bool:
    return ADDON_ID.startswith("bl_ext.") and hasattr(bpy.utils, "extension_path_user")


def user_dir(sub: str) -> str:
    """A folder for Kiln's own files in the user's Blender folder (created)."""
    if is_extension():
        return bpy.utils.extension_path_user(ADDON_ID, path=sub, create=True)
    base = bpy.utils.user_resource('DATAFILES', path="kiln")
    path = os.path.join(base, sub)
    os.makedirs(path, exist_ok=True)
    return path


def engine_env_dir() -> str:
    """Where "Set up engine" puts its virtual environment."""
    return user_dir("engine-env")


def log_path() -> str:
    return os.path.join(user_dir("logs"), "engine.log")


def _user_root() -> str:
    return os.path.dirname(user_dir("logs"))


def get_prefs(context=None):
    """The add-on's preferences (Preferences > Add-ons > Kiln), or None when it is not
    enabled."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon else None


def output_dir(prefs=None) -> str:
    """The output folder, made if missing; UserError naming the fix if it cannot be."""
    prefs = prefs or get_prefs()
    if prefs is not None and prefs.output_dir.strip():
        return make_folder(bpy.path.abspath(prefs.output_dir.strip()))
    return user_dir("outputs")


def make_folder(path: str) -> str:
    """`path` as a folder Kiln may write in (made if missing), else UserError."""
    fix = "choose another Output folder in Preferences > Add-ons > Kiln"
    try:
        os.makedirs(path, exist_ok=True)
    except FileExistsError:
        raise UserError(f"The output folder {path} is a file, not a folder: {fix}.") from None
    except NotADirectoryError:
        raise UserError(f"Kiln cannot make the output folder {path}: part of that path is "
                        f"a file, not a folder; {fix}.") from None
    except (OSError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        raise UserError(f"Kiln cannot make the output folder {path} ({why}): {fix}.") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"Kiln may not write in the output folder {path} (it is read-only "
                        f"for this user): {fix}, or allow writing there.")
    return path


# ---------------------------------------------------------------- model
def bundled_models() -> list[str]:
    folder = os.path.join(ADDON_DIR, "weights")
    if not os.path.isdir(folder):
        return []
    return sorted(n for n in os.listdir(folder)
                  if os.path.isfile(os.path.join(folder, n, "config.json")))


def model_spec(prefs=None) -> str:
    """The model name, folder or hub id handed to the engine."""
    prefs = prefs or get_prefs()
    if prefs is None:
        return DEFAULT_MODEL
    if prefs.model_source == 'FOLDER' and prefs.model_folder.strip():
        return os.path.abspath(bpy.path.abspath(prefs.model_folder.strip()))
    if prefs.model_source == 'HUB' and prefs.hub_id.strip():
        return prefs.hub_id.strip()
    return prefs.bundled_model.strip() or DEFAULT_MODEL


def allow_online() -> bool:
    """Blender's "Allow Online Access" (Blender before 4.2 has no such switch)."""
    return bool(getattr(bpy.app, "online_access", True))


# ---------------------------------------------------------------- engine Python
def candidate_pythons(prefs=None) -> list[tuple[str, str]]:
    """(label, path) in the order they are tried."""
    prefs = prefs or get_prefs()
    found = []
    if _configured(prefs):
        found.append(("configured", os.path.abspath(bpy.path.abspath(prefs.python_path.strip()))))
    if os.environ.get("KILN_PYTHON"):
        found.append(("KILN_PYTHON", os.environ["KILN_PYTHON"]))
    found.append(("set up by Kiln", discovery.venv_python(os.path.join(_user_root(),
                                                                       "engine-env"))))
    found.append(("Blender's Python", sys.executable))
    found.append(("repository .venv", discovery.venv_python(os.path.join(ADDON_DIR, ".venv"))))
    return found


def _configured(prefs) -> bool:
    return prefs is not None and bool(prefs.python_path.strip())


def engine_python(prefs=None, wait: bool | None = None) -> discovery.Status:
    """Which Python runs the engine for these preferences (discovery.Status), from the
    cache: a change of candidates starts one background search, and the panels redraw
    when it ends. Never runs a subprocess on this thread. `wait` (by default
    `bpy.app.background`): wait for the search to end -- what operators do in background
    Blender, which has no UI to keep responsive and runs them synchronously; a draw()
    passes wait=False and shows the state instead."""
    prefs = prefs or get_prefs()
    wait = bool(bpy.app.background) if wait is None else wait
    status = discovery.DISCOVERY.status(candidate_pythons(prefs), _configured(prefs),
                                        ADDON_DIR, wait=wait)
    if status.state == discovery.SEARCHING:
        _redraw_when_found()
    return status


def forget_checks() -> None:
    """Look for the engine's Python again on next use (after a setup or a preference
    change)."""
    discovery.DISCOVERY.forget()


def _redraw_when_found() -> None:
    if not bpy.app.timers.is_registered(_watch_search):
        bpy.app.timers.register(_watch_search, first_interval=0.2, persistent=True)


def _watch_search():
    """bpy.app.timers: redraw the panels once the search has an answer."""
    if discovery.DISCOVERY.current().state == discovery.SEARCHING:
        return 0.2
    ui.tag_redraw()
    return None


def start_discovery() -> None:
    """Begin the search at register, so the panels have an answer when first drawn
    (from a timer: the preferences are readable there, and interactive Blender never
    waits for it)."""
    if bpy.app.background:
        return                 # the first need waits for it (engine_python)
    if not bpy.app.timers.is_registered(_start_from_timer):
        bpy.app.timers.register(_start_from_timer, first_interval=0.0)


def _start_from_timer():
    if get_prefs() is not None:
        engine_python(wait=False)
    return None


def stop_discovery() -> None:
    """Unregister: no timer of ours left behind."""
    for timer in (_start_from_timer, _watch_search):
        if bpy.app.timers.is_registered(timer):
            bpy.app.timers.unregister(timer)
