"""Which Python runs the engine: the first candidate that can import torch.

Standard library only, no bpy: the Blender side hands in the candidates (paths.py
builds them from the preferences), so this module also loads on its own in tests.
A check runs the candidate itself in a subprocess (importing torch is slow, and a
broken environment cannot take Blender down with it), so it never runs on Blender's UI
thread: `Discovery.status()` answers from its cache at once and starts one background
search when the candidates change or the cache was forgotten. Panels draw the state it
returns; operators' poll() reads it.

    unknown    nothing asked yet
    searching  a search runs in the background; `message` says so
    found      `python` can import torch; `message` says how it was found
    missing    no candidate can; `message` says what to do
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass

UNKNOWN, SEARCHING, FOUND, MISSING = "unknown", "searching", "found", "missing"
SEARCHING_MESSAGE = "Looking for a Python with torch to run the engine…"
CHECK_TIMEOUT = 30.0          # s for one candidate to answer (torch's first import is slow)


@dataclass(frozen=True)
class Status:
    state: str
    python: str | None = None
    message: str = ""

    @property
    def found(self) -> bool:
        return self.state == FOUND


def venv_python(env_dir: str) -> str:
    if sys.platform == "win32":
        return os.path.join(env_dir, "Scripts", "python.exe")
    return os.path.join(env_dir, "bin", "python")


def check_torch(python: str, root: str, timeout: float = CHECK_TIMEOUT) -> bool:
    """Whether `python` can import torch, asked of `python` itself in the environment the
    engine gets (engine/client.py: no PYTHONHOME, PYTHONPATH the add-on's folder `root`).
    Comparing interpreter files cannot tell: two virtual environments made from one Python
    resolve to the same binary, and Blender's own process may see modules (its scripts
    folders) that its Python run alone does not."""
    if not python or not os.path.isfile(python):
        return False
    code = "import importlib.util,sys; sys.exit(importlib.util.find_spec('torch') is None)"
    env = dict(os.environ, PYTHONPATH=root)
    env.pop("PYTHONHOME", None)
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, timeout=timeout,
                              env=env, stdin=subprocess.DEVNULL, cwd=root,
                              creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def search(candidates, configured: bool, root: str, checked: dict | None = None) -> Status:
    """The first of `candidates` ((label, path), in order) with torch. `configured`: the
    first candidate is the artist's own setting, which has no fallback. `checked` caches
    {path: has torch} between searches. Runs a subprocess per unchecked candidate."""
    checked = {} if checked is None else checked

    def has_torch(path: str) -> bool:
        path = os.path.abspath(path)
        if path not in checked:
            checked[path] = check_torch(path, root)
        return checked[path]

    candidates = list(candidates)
    if configured and candidates:
        label, path = candidates[0]
        if has_torch(path):
            return Status(FOUND, path, label)
        return Status(MISSING, None, f"The configured engine Python {path} cannot import "
                      "torch: fix the path in Kiln's preferences or press Set up engine.")
    for label, path in candidates:
        if has_torch(path):
            return Status(FOUND, path, label)
    return Status(MISSING, None, "No Python with torch found for the engine: open "
                  "Preferences > Add-ons > Kiln and press Set up engine (or set the engine "
                  "Python).")


class Discovery:
    """One cached search at a time, run on a background thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self._key = None                      # what the cached status answers
        self._status = Status(UNKNOWN)
        self._thread: threading.Thread | None = None
        self._checked: dict = {}              # {python: has torch}, kept across searches
        self._generation = 0                  # bumped by forget(): late answers are dropped

    def status(self, candidates, configured: bool, root: str, wait: bool = False) -> Status:
        """The state for these candidates; starts a search when they are new (or were
        forgotten). `wait`: block until that search ends (background Blender has no UI
        to keep responsive, and its operators run synchronously)."""
        key = (tuple(tuple(c) for c in candidates), bool(configured), root)
        with self._lock:
            if key != self._key:
                self._key = key
                self._status = Status(SEARCHING, None, SEARCHING_MESSAGE)
                self._thread = threading.Thread(
                    target=self._run, args=(key, self._generation, dict(self._checked)),
                    daemon=True, name="kiln-find-engine-python")
                self._thread.start()
            thread = self._thread
        if wait and thread is not None:
            thread.join()
        with self._lock:
            return self._status

    def current(self) -> Status:
        """The last answer, starting nothing."""
        with self._lock:
            return self._status

    def forget(self) -> None:
        """Check every candidate again on the next status() (after a setup, a preference
        change or Restart)."""
        with self._lock:
            self._key, self._status = None, Status(UNKNOWN)
            self._checked.clear()
            self._generation += 1

    def wait(self, timeout: float | None = None) -> Status:
        """Block until the running search (if any) ends; its answer."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.current()

    def _run(self, key, generation: int, checked: dict) -> None:
        candidates, configured, root = key
        try:
            found = search(candidates, configured, root, checked)
        except Exception as exc:              # never leave the panel "searching" forever
            found = Status(MISSING, None, f"Kiln could not look for the engine's Python "
                           f"({type(exc).__name__}: {exc}).")
        with self._lock:
            if generation != self._generation or key != self._key:
                return                        # forgotten or superseded meanwhile
            self._checked.update(checked)
            self._status = found


DISCOVERY = Discovery()
