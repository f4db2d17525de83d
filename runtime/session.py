"""Kiln's runtime state inside Blender: the engine client, the running job, the timer.

One `SESSION` per Blender process. Operators hand it a `Job` (a list of generate
requests, each with where its result goes); the session sends them one at a time,
polls the engine without blocking and imports each result on the main thread.

- Interactive Blender: `bpy.app.timers` calls `timer_tick()` every POLL_INTERVAL s;
  a tick only drains the client's event queue (and imports a finished result).
- Background Blender (`bpy.app.background`): the operator calls `run_until_done()`,
  which runs the same ticks in a loop, so tests and batch scripts share the code path.

Tests switch the timer path on (and slow the engine down) through testing.TESTING only.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import traceback
from dataclasses import dataclass, field

import bpy

from ..engine import client as engine_client
from ..engine.errors import KilnError
from . import discovery, history, importer, paths
from .paths import UserError
from .testing import TESTING
from .ui import main_context, push_undo, tag_redraw

log = logging.getLogger("kiln")

POLL_INTERVAL = 0.1          # seconds between timer ticks while something runs

# Share of one job's progress bar per engine stage, in the engine's order (sample and
# refine move step by step; a mode skips what it does not run: views mode has no
# condition or sample, text mode no encode or refine).
STAGE_WEIGHTS = (("load", 0.0), ("condition", 0.05), ("sample", 0.45), ("encode", 0.05),
                 ("refine", 0.2), ("decode", 0.05), ("extract", 0.1), ("texture", 0.05),
                 ("export", 0.05))


# ---------------------------------------------------------------- jobs
@dataclass
class JobItem:
    params: dict                      # generate fields (mode, prompt, seed, ..., out)
    name: str                         # object name, e.g. "red_chair_s7"
    location: tuple                   # where the object lands (scene units)
    replace: str = ""                 # name of an object this result replaces
    kind: str = "generate"            # the request: "generate", "restyle" or "morph"
    apply: object = None              # restyle: apply(context, result event) -> the object


@dataclass
class Job:
    items: list                       # [JobItem]
    options: dict                     # import options: target_size, smooth, model
    title: str = "Generate"
    index: int = 0                    # item in flight
    request: str | None = None        # engine request id of that item
    stage: str = "waiting"
    step: int = 0
    total: int = 0
    cancelled: bool = False
    done: bool = False
    error: str = ""
    imported: list = field(default_factory=list)   # object names, in order
    started: float = field(default_factory=time.monotonic)
    weights: tuple = STAGE_WEIGHTS    # (stage, share of the bar) in the engine's order
    keep_going: bool = False          # a prompt list: an item's error skips it, not the rest
    skipped: list = field(default_factory=list)    # sentences naming the skipped items
    readings: list = field(default_factory=list)   # sentences: a prompt the model read anew
    done_text: str = "Made {count} object(s) in {seconds:.1f} s."

    def fraction(self) -> float:
        """0..1 over all items."""
        within = 0.0
        for stage, weight in self.weights:
            if stage == self.stage:
                part = self.step / self.total if self.total else 0.0
                within += weight * min(max(part, 0.0), 1.0)
                break
            within += weight
        else:
            within = 0.0
        return min((self.index + within) / max(len(self.items), 1), 1.0)

    def label(self) -> str:
        text = self.stage if not self.total else f"{self.stage} {self.step}/{self.total}"
        if len(self.items) > 1:
            text = f"{self.index + 1}/{len(self.items)} · {text}"
        return text


# ---------------------------------------------------------------- session
class Session:
    def __init__(self):
        self.client: engine_client.EngineClient | None = None
        self.key: tuple | None = None
        self.job: Job | None = None
        self.last_job: Job | None = None
        self.last_error = ""
        self.message = ""
        self.interactive = False
        self.starting = False         # Restart: start the engine once its Python is found

    # -- state for the UI
    @property
    def busy(self) -> bool:
        return self.job is not None

    @property
    def state(self) -> str:
        if self.client is None:
            return "starting" if self.starting else "stopped"
        return self.client.state

    def state_text(self) -> str:
        state, info = self.state, (self.client.info if self.client else None) or {}
        where = f" · {info.get('device', '?')} · {info.get('model', '?')}" if info else ""
        return {"stopped": "Stopped (starts on use)",
                "starting": "Starting…",
                "ready": "Ready" + where,
                "busy": "Working" + where,
                "crashed": "Crashed (restarts on use)"}.get(state, state)

    # -- engine
    def ensure_client(self, context) -> engine_client.EngineClient:
        """The client for the current preferences, started (non-blocking)."""
        prefs = paths.get_prefs(context)
        found = paths.engine_python(prefs)
        if found.state == discovery.SEARCHING:
            raise UserError("Kiln is still looking for a Python with torch to run the "
                            "engine: try again in a moment (the Engine panel shows it).")
        if not found.found:
            raise UserError(found.message)
        python = found.python
        model = paths.model_spec(prefs)
        online = prefs is not None and prefs.model_source == 'HUB' and paths.allow_online()
        extra = (["--allow-online"] if online else []) + TESTING.engine_args()
        device = prefs.device.lower() if prefs else "auto"
        key = (python, model, device, paths.output_dir(prefs), tuple(extra))
        if self.client is not None and key != self.key:
            self.stop_engine()
        if self.client is None:
            self.client = engine_client.EngineClient(
                python=python, engine_root=paths.ADDON_DIR, model=model, device=device,
                out_dir=key[3], log_path=paths.log_path(), extra_args=extra)
            self.key = key
        if self.client.state in ("stopped", "crashed"):
            log.info("starting the engine: %s", " ".join(self.client.command()))
            self.client.start()
        return self.client

    def restart_engine(self, context) -> None:
        """Stop the engine, look for its Python again, start it once that is found (at
        once in background Blender, from the timer otherwise: the UI never waits)."""
        self.abort()
        self.stop_engine()
        paths.forget_checks()
        self.starting = True
        try:
            self._start_when_found(context)
        finally:
            self._schedule()

    def _start_when_found(self, context=None) -> None:
        """Restart's second half: nothing while the search runs; then start the engine,
        or UserError saying why it cannot be."""
        if paths.engine_python(paths.get_prefs(context)).state == discovery.SEARCHING:
            return
        self.starting = False
        self.ensure_client(context or bpy.context)

    def stop_engine(self, timeout: float = 5.0) -> None:
        client, self.client, self.key = self.client, None, None
        if client is not None:
            client.shutdown(timeout=timeout)

    def _retire_engine(self) -> None:
        """Stop the engine without blocking the UI (keep-warm off)."""
        client, self.client, self.key = self.client, None, None
        if client is not None:
            threading.Thread(target=client.shutdown, kwargs={"timeout": 5},
                             daemon=True, name="kiln-engine-stop").start()

    # -- jobs
    def submit(self, context, job: Job) -> None:
        if self.busy:
            raise UserError("A Kiln job is already running: wait for it or press Cancel.")
        client = self.ensure_client(context)
        self.job, self.last_error, self.message = job, "", ""
        self.interactive = not synchronous()
        try:
            self._send(client)
        except KilnError as exc:
            self.job = None
            raise UserError(exc.message) from None
        if self.interactive:
            self._schedule()

    def _send(self, client) -> None:
        job = self.job
        item = job.items[job.index]
        job.stage, job.step, job.total = "waiting", 0, 0
        send = {"restyle": client.restyle, "morph": client.morph}.get(item.kind,
                                                                     client.generate)
        job.request = send(**item.params)

    def cancel(self) -> None:
        """Ask the engine to stop; the job ends when it answers `cancelled`."""
        job = self.job
        if job is None:
            return
        job.cancelled = True
        job.stage, job.step, job.total = "cancelling", 0, 0
        if self.client is not None and self.client.is_running():
            self.client.cancel(job.request)
        else:
            self._finish()

    def abort(self) -> None:
        """End the job now, without waiting for the engine (it is being stopped)."""
        if self.job is not None:
            self.job.cancelled = True
            self._finish()

    def run_until_done(self, timeout: float) -> Job:
        """Background mode: tick until the job ends (or cancel it after `timeout` s)."""
        job, deadline = self.job, time.monotonic() + timeout
        while self.job is job and job is not None:
            self.tick()
            late = time.monotonic() - deadline
            if self.job is job and late > 0 and not job.cancelled:
                self.cancel()
                job.error = f"The engine did not finish within {timeout:g} s."
            elif self.job is job and late > 30:       # not even answering a cancel
                self.abort()
                self.stop_engine(timeout=1)
            time.sleep(0.02)
        return job

    # -- polling
    def tick(self) -> float | None:
        """Handle every engine event since the last tick; never blocks."""
        if self.starting:
            try:
                self._start_when_found()
            except UserError as exc:
                self.starting, self.last_error = False, str(exc)
                tag_redraw()
            if self.starting:
                return POLL_INTERVAL
        client = self.client
        if client is None:
            if self.job is not None:
                self._finish(error="The engine is not running: press Generate again.")
            return None
        events = client.poll()
        for event in events:
            self._on_event(event)
        if events:
            tag_redraw()
        if self.busy or (self.client is not None and self.client.state == "starting"):
            return POLL_INTERVAL
        return None

    def _on_event(self, event: dict) -> None:
        kind, job = event.get("type"), self.job
        mine = job is not None and event.get("id") == job.request
        if kind == "progress" and mine:
            job.stage, job.step, job.total = event.get("stage", "?"), event.get("step", 0), \
                event.get("total", 0)
        elif kind == "result" and mine:
            self._on_result(event)
        elif kind == "cancelled" and mine:
            self._finish()
        elif kind == "error":
            message = event.get("message") or "The engine reported an error."
            if mine and job.keep_going and event.get("code") != "engine_crashed":
                self._skip(message)
            elif job is not None and (mine or event.get("id") is None
                                      or event.get("code") == "engine_crashed"):
                self._finish(error=message)
            else:
                self.last_error = message

    def _on_result(self, event: dict) -> None:
        job = self.job
        if job.cancelled:             # finished before the cancel landed: keep the scene
            self._finish()
            return
        item = job.items[job.index]
        try:
            obj = _apply(item, event) if item.apply else _import(item, event, job.options)
        except UserError as exc:      # e.g. the restyled object was deleted meanwhile
            self._finish(error=str(exc))
            return
        except Exception as exc:      # the importer's own errors: report, keep going
            log.error("import failed:\n%s", traceback.format_exc())
            what = event.get("glb") or event.get("texture") or event.get("ply")
            self._finish(error=f"Could not import {what}: {exc}")
            return
        job.imported.append(obj.name)
        _note_reading(job, item, event)
        if self.interactive:
            push_undo(f"Kiln: {obj.name}")
        self._next()

    def _skip(self, message: str) -> None:
        """A keep-going job's item failed: name it among the skipped, go on."""
        job = self.job
        job.skipped.append(f"{job.items[job.index].name} skipped: {message}")
        self._next()

    def _next(self) -> None:
        job = self.job
        job.index += 1
        if job.index < len(job.items):
            try:
                self._send(self.client)
            except KilnError as exc:
                self._finish(error=exc.message)
        else:
            self._finish()

    def _finish(self, error: str = "") -> None:
        job, self.job, self.last_job = self.job, None, self.job
        if job is None:
            return
        job.done = True
        job.error = job.error or error
        self.last_error = job.error or " ".join(job.skipped)
        seconds = time.monotonic() - job.started
        if job.error:
            self.message = ""
        elif job.cancelled:
            self.message = "Cancelled."
        else:
            self.message = " ".join([job.done_text.format(
                count=len(job.imported), seconds=seconds, names=", ".join(job.imported)),
                *job.readings[:2]])
        history.forget()
        prefs = paths.get_prefs()
        if prefs is not None and not prefs.keep_warm:
            self._retire_engine()
        tag_redraw()

    def _schedule(self) -> None:
        if not bpy.app.timers.is_registered(timer_tick):
            bpy.app.timers.register(timer_tick, first_interval=POLL_INTERVAL,
                                    persistent=True)

    def shutdown(self) -> None:
        """Unregister / Blender exit: cancel, stop the engine, stop the timer."""
        self.starting = False
        self.abort()
        self.stop_engine(timeout=3)
        if bpy.app.timers.is_registered(timer_tick):
            bpy.app.timers.unregister(timer_tick)


SESSION = Session()


def synchronous() -> bool:
    return bool(bpy.app.background) and not TESTING.force_timer


def timer_tick():
    """bpy.app.timers callback: returns the next interval, or None to stop."""
    try:
        return SESSION.tick()
    except Exception:
        log.error("Kiln timer failed:\n%s", traceback.format_exc())
        SESSION.last_error = "Internal error while polling the engine; see the console."
        return None


# ---------------------------------------------------------------- Blender helpers
def _import(item: JobItem, event: dict, options: dict):
    meta = dict(event.get("meta") or {})
    with main_context():
        return importer.import_result(
            bpy.context, event.get("glb") or event["ply"], name=item.name,
            location=item.location,
            target_size=options["target_size"], smooth=options["smooth"],
            meta=meta, settings=dict(params=item.params, **options),
            replace=item.replace)


def _note_reading(job: Job, item: JobItem, event: dict) -> None:
    """The engine read words of the prompt as names its model knows (engine/reading.py):
    say so, so the artist knows what was made."""
    read_as = (event.get("meta") or {}).get("read_as")
    sentence = f"Read \"{item.params.get('prompt', '')}\" as \"{read_as}\"."
    if read_as and sentence not in job.readings:          # variations share their prompt
        job.readings.append(sentence)


def _apply(item: JobItem, event: dict):
    with main_context():
        return item.apply(bpy.context, event)


# ---------------------------------------------------------------- lifetime
@bpy.app.handlers.persistent
def _on_load_pre(*_args):
    """Opening another file: the running job's scene is going away."""
    if SESSION.job is not None:
        SESSION.cancel()


def _at_exit():
    SESSION.shutdown()


_ATEXIT = []


def register():
    if _on_load_pre not in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.append(_on_load_pre)
    if not _ATEXIT:
        atexit.register(_at_exit)
        _ATEXIT.append(True)


def unregister():
    SESSION.shutdown()
    if _on_load_pre in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_on_load_pre)
    if _ATEXIT:
        atexit.unregister(_at_exit)
        _ATEXIT.clear()
