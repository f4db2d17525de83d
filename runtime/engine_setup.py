"""What "Set up engine" does: a virtual environment with torch and the engine's requirements.

The environment lives in the extension's user folder (engine-env). A worker thread
runs venv + pip one step at a time and keeps its step and pip's latest line in STATE,
which the preferences draw (redrawn by a timer); when it ends, the engine's Python is
looked for again. Nothing is downloaded unless Blender's "Allow Online Access" is on
(the operator checks).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading

import bpy

from . import discovery, paths, ui

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
    py = discovery.venv_python(env_dir)
    pip = [py, "-m", "pip", "install", "--disable-pip-version-check"]
    torch = pip + list(TORCH_PINS) + ([] if cuda else ["--index-url", CPU_INDEX])
    steps = [("Creating the environment", [sys.executable, "-m", "venv", env_dir]),
             ("Updating pip", pip + ["--upgrade", "pip"]),
             ("Installing torch (" + ("CUDA" if cuda else "CPU") + " build)", torch)]
    requirements = os.path.join(paths.ADDON_DIR, "requirements.txt")
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


def start(build: str) -> None:
    """Run the setup for the torch `build` ('AUTO', 'CPU', 'CUDA') on a worker thread;
    a timer redraws the preferences while it runs."""
    steps = plan(paths.engine_env_dir(), wants_cuda(build))
    STATE.update(running=True, done=False, error="")
    threading.Thread(target=_worker, args=(steps,), daemon=True,
                     name="kiln-setup-engine").start()
    if not bpy.app.timers.is_registered(_redraw):
        bpy.app.timers.register(_redraw, first_interval=0.5)


def _redraw():
    """bpy.app.timers: redraw while the setup runs; when it ends, look for the engine's
    Python again (the new environment is a candidate)."""
    if STATE["running"]:
        ui.tag_redraw()
        return 0.5
    paths.forget_checks()
    ui.tag_redraw()
    return None


def stop_redraw() -> None:
    if bpy.app.timers.is_registered(_redraw):
        bpy.app.timers.unregister(_redraw)
