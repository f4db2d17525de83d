"""Add-on preferences: the engine's Python, device, model, output folder, warm engine.

Also the small path helpers every other module uses (user folder, log file, output
folder, which Python runs the engine). Standard library + bpy only.
"""

from __future__ import annotations

import os
import subprocess
import sys

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, StringProperty

ADDON_ID = __package__                      # "bl_ext.user_default.kiln" or "kiln"
ADDON_DIR = os.path.dirname(os.path.abspath(__file__))   # holds engine/ and weights/
DEFAULT_MODEL = "kiln-mini"


# ---------------------------------------------------------------- paths
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


class UserError(Exception):
    """A problem the artist can fix; the message says how."""


def get_prefs(context=None):
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
def venv_python(env_dir: str) -> str:
    if sys.platform == "win32":
        return os.path.join(env_dir, "Scripts", "python.exe")
    return os.path.join(env_dir, "bin", "python")


_TORCH_CACHE: dict[str, bool] = {}


def has_torch(python: str) -> bool:
    """Whether `python` can import torch (checked without importing it; cached)."""
    python = os.path.abspath(python)
    if python not in _TORCH_CACHE:
        _TORCH_CACHE[python] = _check_torch(python)
    return _TORCH_CACHE[python]


def _check_torch(python: str) -> bool:
    """Ask `python` itself, in the environment the engine gets (client.py: no PYTHONHOME,
    PYTHONPATH the engine's folder). Comparing interpreter files cannot tell: two
    virtual environments made from one Python resolve to the same binary, and Blender's
    own process may see modules (its scripts folders) that its Python run alone does not."""
    if not os.path.isfile(python):
        return False
    code = "import importlib.util,sys; sys.exit(importlib.util.find_spec('torch') is None)"
    env = dict(os.environ, PYTHONPATH=ADDON_DIR)
    env.pop("PYTHONHOME", None)
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, timeout=30, env=env,
                              stdin=subprocess.DEVNULL, cwd=ADDON_DIR,
                              creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def forget_checks() -> None:
    """Re-check every candidate next time (after a setup or a preference change)."""
    _TORCH_CACHE.clear()


def candidate_pythons(prefs=None) -> list[tuple[str, str]]:
    """(label, path) in the order they are tried."""
    prefs = prefs or get_prefs()
    found = []
    if prefs is not None and prefs.python_path.strip():
        found.append(("configured", os.path.abspath(bpy.path.abspath(prefs.python_path.strip()))))
    if os.environ.get("KILN_PYTHON"):
        found.append(("KILN_PYTHON", os.environ["KILN_PYTHON"]))
    found.append(("set up by Kiln", venv_python(os.path.join(_user_root(), "engine-env"))))
    found.append(("Blender's Python", sys.executable))
    found.append(("repository .venv", venv_python(os.path.join(ADDON_DIR, ".venv"))))
    return found


def _user_root() -> str:
    return os.path.dirname(user_dir("logs"))


def find_engine_python(prefs=None) -> tuple[str | None, str]:
    """(python, how it was found) for the first candidate with torch, else (None, why)."""
    prefs = prefs or get_prefs()
    candidates = candidate_pythons(prefs)
    if prefs is not None and prefs.python_path.strip():
        label, path = candidates[0]
        if has_torch(path):
            return path, label
        return None, (f"The configured engine Python {path} cannot import torch: fix the "
                      "path in Kiln's preferences or press Set up engine.")
    for label, path in candidates:
        if has_torch(path):
            return path, label
    return None, ("No Python with torch found for the engine: open Preferences > "
                  "Add-ons > Kiln and press Set up engine (or set the engine Python).")


# ---------------------------------------------------------------- preferences
def _changed(self, context):
    forget_checks()


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
            names = bundled_models()
            col.label(text="Bundled: " + (", ".join(names) if names else "none found"))
        elif self.model_source == 'FOLDER':
            col.prop(self, "model_folder")
        else:
            col.prop(self, "hub_id")
        col.prop(self, "output_dir")
        col.prop(self, "keep_warm")
        col.prop(self, "timeout")
        col.label(text=f"Log: {log_path()}")

    def _draw_engine(self, box):
        from .operators import setup_engine
        box.label(text="Engine Python", icon='SCRIPTPLUGINS')
        box.prop(self, "python_path")
        python, how = find_engine_python(self)
        if python:
            box.label(text=f"Using {python} ({how})", icon='CHECKMARK')
        else:
            for i, line in enumerate(wrap(how, 70)):
                box.label(text=line, icon='ERROR' if i == 0 else 'BLANK1')
        row = box.row()
        row.prop(self, "setup_build")
        row.operator("kiln.setup_engine", icon='IMPORT')
        setup_engine.draw_status(box)


def wrap(text: str, width: int = 40) -> list[str]:
    import textwrap
    return textwrap.wrap(text, width) or [""]


def register():
    bpy.utils.register_class(KilnPreferences)


def unregister():
    bpy.utils.unregister_class(KilnPreferences)
