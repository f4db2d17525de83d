"""The "Set up engine" button: a virtual environment with torch and the engine's requirements.

The environment lives in the extension's user folder (engine-env). A worker thread
runs venv + pip one step at a time; the preferences panel shows the step and pip's
latest line, redrawn by a timer. Nothing is downloaded unless Blender's "Allow Online
Access" is on.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading

import bpy

from .. import preferences as prefs_mod

TORCH_PINS = ("torch==2.14.1", "torchvision==0.29.1")     # as the Makefile installs
CPU_INDEX = "https://download.pytorch.org/whl/cpu"

STATE = {"running": False, "step": 0, "steps": 0, "title": "", "line": "", "error": "",
         "done": False}


def offline_message() -> str:
    return ("Online access is off, so Kiln will not download torch. Turn on Preferences > "
            "System > Network > Allow Online Access, or set Engine Python to a Python "
            "that already has torch.")


def wants_cuda(choice: str) -> bool:
    if choice == 'AUTO':
        return shutil.which("nvidia-smi") is not None
    return choice == 'CUDA'


def plan(env_dir: str, cuda: bool) -> list[tuple[str, list[str]]]:
    """(title, command) for each step."""
    py = prefs_mod.venv_python(env_dir)
    pip = [py, "-m", "pip", "install", "--disable-pip-version-check"]
    torch = pip + list(TORCH_PINS) + ([] if cuda else ["--index-url", CPU_INDEX])
    steps = [("Creating the environment", [sys.executable, "-m", "venv", env_dir]),
             ("Updating pip", pip + ["--upgrade", "pip"]),
             ("Installing torch (" + ("CUDA" if cuda else "CPU") + " build)", torch)]
    requirements = os.path.join(prefs_mod.ADDON_DIR, "requirements.txt")
    if os.path.isfile(requirements):
        steps.append(("Installing the engine's requirements", pip + ["-r", requirements]))
    steps.append(("Checking torch", [py, "-c", "import torch; print('torch', "
                                     "torch.__version__, 'cuda', torch.cuda.is_available())"]))
    return steps


def _worker(steps) -> None:
    STATE.update(running=True, done=False, error="", steps=len(steps), step=0)
    try:
        for index, (title, cmd) in enumerate(steps):
            STATE.update(step=index, title=title, line="")
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, errors="replace")
            for line in proc.stdout:
                if line.strip():
                    STATE["line"] = line.strip()[-120:]
            if proc.wait() != 0:
                STATE["error"] = f"{title} failed: {STATE['line']}"
                return
        STATE.update(step=len(steps), title="Done", done=True)
    except OSError as exc:
        STATE["error"] = f"{STATE['title']} failed: {exc}"
    finally:
        STATE["running"] = False


def _redraw():
    prefs_mod.forget_checks()
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == 'PREFERENCES':
                area.tag_redraw()
    return 0.5 if STATE["running"] else None


def draw_status(layout) -> None:
    if not prefs_mod.allow_online():
        for i, line in enumerate(prefs_mod.wrap(offline_message(), 70)):
            layout.label(text=line, icon='INFO' if i == 0 else 'BLANK1')
    if not (STATE["running"] or STATE["done"] or STATE["error"]):
        return
    factor = STATE["step"] / max(STATE["steps"], 1)
    text = f"{STATE['title']} ({STATE['step']}/{STATE['steps']})"
    if hasattr(layout, "progress"):
        layout.progress(factor=factor, type='BAR', text=text)
    else:
        layout.label(text=text)
    if STATE["line"] and STATE["running"]:
        layout.label(text=STATE["line"])
    if STATE["error"]:
        layout.label(text=STATE["error"], icon='ERROR')


class KILN_OT_setup_engine(bpy.types.Operator):
    """Create Kiln's own Python environment and install torch and the engine's requirements (downloads about 1-3 GB)"""
    bl_idname = "kiln.setup_engine"
    bl_label = "Set up engine"

    @classmethod
    def poll(cls, context):
        return not STATE["running"]

    def execute(self, context):
        if not prefs_mod.allow_online():
            self.report({'ERROR'}, offline_message())
            return {'CANCELLED'}
        prefs = prefs_mod.get_prefs(context)
        steps = plan(prefs_mod.engine_env_dir(), wants_cuda(prefs.setup_build if prefs else 'AUTO'))
        threading.Thread(target=_worker, args=(steps,), daemon=True,
                         name="kiln-setup-engine").start()
        bpy.app.timers.register(_redraw, first_interval=0.5)
        self.report({'INFO'}, "Kiln: setting up the engine (see Preferences > Add-ons > Kiln).")
        return {'FINISHED'}


CLASSES = (KILN_OT_setup_engine,)
