"""The add-on's handle on the engine process. Standard library only.

    c = EngineClient(python, engine_root, model="kiln-mini", log_path=".../engine.log")
    c.start()                       # returns at once; c.state == "starting"
    job = c.generate(prompt="a red chair", seed=7)
    # or mode="image", image=...; mode="views", views=[{"image": p, "direction": "front"}];
    # mode="unconditional" (any protocol.validate_generate fields, e.g. refine_steps=20)
    job = c.restyle(mesh="/abs/chair.npz", prompt="a blue chair", strength=0.85)
    #                                 (protocol.validate_restyle's fields; result: "texture")
    for event in c.poll(): ...      # never blocks: call it from a timer
    c.cancel(job); c.shutdown()

States: "stopped" -> start() -> "starting" -> ready event -> "ready" -> generate() ->
"busy" -> result / error / cancelled -> "ready". If the process dies unexpectedly,
poll() yields {"type":"error","code":"engine_crashed",...} naming the log file and the
state becomes "crashed"; generate() (or restart()) starts a fresh process. A startup
failure (missing model, broken weights) arrives as the engine's own error event and
also leaves the state "crashed".

A daemon thread reads the engine's stdout into a queue; stderr goes straight to the
log file. shutdown() asks politely, then terminates, then kills, so no orphan stays;
an atexit hook does the same for clients still running when Python exits, and the
engine itself exits when its stdin closes (the parent died), after finishing the job
it is running.
"""

from __future__ import annotations

import atexit
import itertools
import os
import queue
import re
import signal
import subprocess
import threading
import time
import uuid
import weakref
from pathlib import Path

from . import protocol
from .errors import (BAD_REQUEST, BUSY, ENGINE_CRASHED, ENGINE_MISSING, TIMEOUT,
                     KilnError)

STOPPED, STARTING, READY, BUSY_STATE, CRASHED = "stopped", "starting", "ready", "busy", \
    "crashed"
_ERROR_WORDS = re.compile(r"Error|Exception|Fatal|Segmentation|Killed|out of memory")
_EOF = object()  # the reader thread's last item: stdout closed
_LIVE: "weakref.WeakSet[EngineClient]" = weakref.WeakSet()
_ids = itertools.count(1)


class EngineClient:
    """Start, talk to, and stop one engine process (see the module docstring)."""

    def __init__(self, python: str, engine_root, model: str = "kiln-mini",
                 device: str = "auto", out_dir=None, log_path=None, extra_args=(),
                 env: dict | None = None):
        self.python = str(python)
        self.engine_root = str(Path(engine_root).resolve())
        self.model, self.device = model, device
        self.out_dir = str(out_dir) if out_dir else None
        self.log_path = str(log_path) if log_path else None
        self.extra_args = [str(a) for a in extra_args]
        self.env = dict(env or {})
        self.state = STOPPED
        self.info: dict | None = None        # the ready message
        self.job: str | None = None          # id of the request in flight
        self.last_error: dict | None = None  # the latest error event
        self.noise: list[str] = []           # stdout lines that were not protocol
        self.returncode: int | None = None
        self._proc: subprocess.Popen | None = None
        self._events: queue.Queue = queue.Queue()
        self._reader: threading.Thread | None = None
        self._log = None
        self._write_lock = threading.Lock()
        self._stopping = False
        self._startup_error = False
        _LIVE.add(self)

    # ------------------------------------------------------------ process
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        cmd = [self.python, "-u", "-m", "engine", "serve", "--model", str(self.model),
               "--device", self.device]
        if self.out_dir:
            cmd += ["--out-dir", self.out_dir]
        if self.log_path:
            cmd += ["--log-file", self.log_path]
        return cmd + self.extra_args

    def start(self) -> None:
        """Spawn the engine without waiting for it; no-op if one is running."""
        if self.is_running():
            return
        self._close_process()
        self._events = queue.Queue()
        self.state, self.info, self.job, self.returncode = STARTING, None, None, None
        self._stopping = self._startup_error = False
        self._log = self._open_log()
        try:
            self._proc = subprocess.Popen(
                self.command(), cwd=self.engine_root, env=self._child_env(),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=self._log if self._log else subprocess.DEVNULL,
                creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
        except OSError as exc:
            self._cannot_start(exc)
            return
        self._reader = threading.Thread(target=_read_stdout,
                                        args=(self._proc.stdout, self._events),
                                        name=f"kiln-engine-{self._proc.pid}", daemon=True)
        self._reader.start()

    def _cannot_start(self, exc: OSError) -> None:
        """The Python or the engine folder is missing: an error event, no exception."""
        self._proc, self.state = None, CRASHED
        _close_quietly(self._log)
        self._log = None
        self.last_error = protocol.error(None, ENGINE_MISSING, f"The engine cannot start: "
                                         f"{self.python!r} could not be run from "
                                         f"{self.engine_root!r} ({exc.strerror or exc}). "
                                         "Set the engine's Python in the Kiln preferences "
                                         "or press Set up engine.")
        self._events.put(self.last_error)

    def _open_log(self):
        if not self.log_path:
            return None
        Path(self.log_path).parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.log_path, "ab")
        fh.write(f"\n--- kiln engine start {time.strftime('%Y-%m-%d %H:%M:%S')}: "
                 f"{' '.join(self.command())}\n".encode("utf-8"))
        fh.flush()
        return fh

    def _child_env(self) -> dict:
        env = dict(os.environ)
        env.pop("PYTHONHOME", None)  # Blender's own Python settings must not leak in
        env["PYTHONPATH"] = self.engine_root
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONIOENCODING"] = "utf-8"
        env.update(self.env)
        return env

    def restart(self) -> None:
        self.shutdown()
        self.start()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Ask the engine to exit; terminate, then kill, if it does not in time."""
        proc, self._stopping = self._proc, True
        if proc is not None and proc.poll() is None:
            self._write({"type": protocol.SHUTDOWN})
            _close_quietly(proc.stdin)
            _wait_or_kill(proc, timeout)
        self._close_process()
        self.state, self.job = STOPPED, None

    def _close_process(self) -> None:
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                _wait_or_kill(proc, 0)
            self.returncode = proc.returncode
            _close_quietly(proc.stdin)
            if self._reader is not None:
                self._reader.join(timeout=2)
            _close_quietly(proc.stdout)
        if self._log is not None:
            _close_quietly(self._log)
            self._log = None

    # ------------------------------------------------------------ requests
    def generate(self, **params) -> str:
        """Send a generate request; return its id. Starts the engine if needed.

        Raises KilnError(BUSY) while another job runs. Bad parameters come back as an
        `error` event from the engine (use protocol.validate_generate to check early).
        """
        return self._submit(protocol.generate, params)

    def restyle(self, **params) -> str:
        """Send a restyle request (as `generate`; protocol.validate_restyle checks early).
        Its result event names the texture PNG ("texture") instead of a GLB."""
        return self._submit(protocol.restyle, params)

    def morph(self, **params) -> str:
        """Send a morph request: one in-between of two results at "fraction" (as
        `generate`; protocol.validate_morph checks early). Its result names a GLB."""
        return self._submit(protocol.morph, params)

    def _submit(self, build, params: dict) -> str:
        """Send the job request build(job_id, **params); return its id."""
        if self.state in (BUSY_STATE,) or (self.state == STARTING and self.job):
            raise KilnError(BUSY, f"The engine is busy with job {self.job!r}: wait for it "
                            "or cancel it first.")
        job_id = str(params.pop("id", None) or f"job-{next(_ids)}-{uuid.uuid4().hex[:6]}")
        line = _request_line(build(job_id, **params))  # before any state change
        if self.state in (STOPPED, CRASHED) or not self.is_running():
            self.start()
        self.job = job_id
        if self.state == READY:
            self.state = BUSY_STATE
        self._write_bytes(line)
        return job_id

    def cancel(self, request_id: str | None = None) -> None:
        """Ask the engine to stop a job (the current one by default)."""
        job_id = request_id or self.job
        if job_id is not None and self.is_running():
            self._write({"type": protocol.CANCEL, "id": job_id})

    def ping(self) -> None:
        self._write({"type": protocol.PING})

    def send(self, msg: dict) -> bool:
        """Send any message (no state change); False if the engine is gone."""
        return self._write(msg)

    def send_line(self, line: str) -> bool:
        """Send one raw line (tests use it for malformed input)."""
        return self._write_bytes((line.rstrip("\n") + "\n").encode("utf-8"))

    def _write(self, msg: dict) -> bool:
        return self._write_bytes((protocol.encode(msg) + "\n").encode("utf-8"))

    def _write_bytes(self, data: bytes) -> bool:
        proc = self._proc
        if proc is None or proc.stdin is None:
            return False
        with self._write_lock:
            try:
                proc.stdin.write(data)
                proc.stdin.flush()
                return True
            except (OSError, ValueError):  # died: the reader reports the crash
                return False

    # ------------------------------------------------------------ events
    def poll(self, timeout: float | None = None) -> list[dict]:
        """Every event since the last call, without blocking.

        With a timeout, wait up to that many seconds for the first event (for scripts
        and tests; the add-on's timer calls it without one).
        """
        return self._drain(block=timeout if timeout else None)

    def wait(self, request_id: str | None = None, timeout: float | None = None,
             on_event=None) -> dict:
        """Block until the job ends; return its result / error / cancelled event.

        Every other event (progress, pong, ...) goes to `on_event(event)` if given and
        is not returned by a later poll(). On timeout the job keeps running and an
        error event with code "timeout" is returned.
        """
        request_id = request_id or self.job
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.state in (STOPPED, CRASHED) and self._events.empty():
                return self._not_running(request_id)
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return protocol.error(request_id, TIMEOUT, f"The engine did not finish "
                                      f"job {request_id!r} within {timeout:g} s; it may "
                                      "still be working: wait longer or cancel it.")
            for event in self._drain(block=0.1 if left is None else min(left, 0.1)):
                if _ends(event, request_id):
                    return event
                if on_event is not None:
                    on_event(event)

    def wait_ready(self, timeout: float | None = 60.0) -> dict:
        """Start if needed and block until ready; return the ready or error event.

        Events drained while waiting are not returned by a later poll().
        """
        if self.state in (STOPPED, CRASHED):
            self.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.state in (READY, BUSY_STATE) and self.info:
                return self.info
            if self.state in (STOPPED, CRASHED) and self._events.empty():
                return self._not_running(None)
            self._drain(block=0.1)
            if deadline is not None and time.monotonic() > deadline:
                return protocol.error(None, TIMEOUT, f"The engine was not ready within "
                                      f"{timeout:g} s: see the log {self.log_path}.")

    def _not_running(self, request_id) -> dict:
        """Why a wait ended without an answer: the engine's own error if it gave one."""
        if self.last_error is not None and self.state == CRASHED:
            return dict(self.last_error, id=request_id)
        return protocol.error(request_id, ENGINE_CRASHED, "The engine is not running: "
                              "start it (or press Generate again) and retry.")

    def _drain(self, block: float | None) -> list[dict]:
        events = []
        while True:
            try:
                if block is not None and not events:
                    item = self._events.get(timeout=block)
                else:
                    item = self._events.get_nowait()
            except queue.Empty:
                break
            event = self._handle(item)
            if event is not None:
                events.append(event)
        return events

    def _handle(self, item):
        if item is _EOF:
            return self._on_exit()
        if isinstance(item, str):
            self.noise.append(item)
            return None
        kind = item["type"]
        if kind == protocol.READY:
            self.info = item
            self.state = BUSY_STATE if self.job else READY
        elif kind in protocol.FINAL_TYPES:
            if kind == protocol.ERROR:
                self.last_error = item
                if self.state == STARTING and item.get("id") is None:
                    self._startup_error = True
            if item.get("id") is not None and item.get("id") == self.job:
                self.job = None
                if self.state == BUSY_STATE:
                    self.state = READY
        return item

    def _on_exit(self):
        """stdout closed: a requested stop, a startup failure, or a crash."""
        proc = self._proc
        rc = None
        if proc is not None:
            try:
                rc = proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                rc = None
        self.returncode = rc
        if self._stopping:
            self.state = STOPPED
            return None
        job, self.job = self.job, None
        self.state = CRASHED
        if self._startup_error:  # the engine already said why, in its own words
            return None
        event = protocol.error(job, ENGINE_CRASHED, self._crash_sentence(rc))
        self.last_error = event
        return event

    def _crash_sentence(self, rc) -> str:
        where = f"the log {self.log_path}" if self.log_path else "the engine's stderr"
        tail = _last_error_line(self.log_path)
        said = f" Last error in the log: {tail}." if tail else ""
        return (f"The engine stopped unexpectedly ({_exit_reason(rc)}).{said} See {where}; "
                "the next Generate restarts it.")

    def __del__(self):
        try:
            if self.is_running():
                self.shutdown(timeout=1)
        except Exception:
            pass


# ---------------------------------------------------------------- helpers
def _read_stdout(stdout, events: queue.Queue) -> None:
    """Reader thread: one decoded event (or a noise str) per stdout line, then _EOF."""
    try:
        for raw in iter(stdout.readline, b""):
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            try:
                events.put(protocol.decode(line, allowed=protocol.ENGINE_TYPES))
            except KilnError:
                events.put(line)
    except (OSError, ValueError):
        pass
    finally:
        events.put(_EOF)


def _request_line(msg: dict) -> bytes:
    """`msg` as one protocol line; KilnError(BAD_REQUEST) when a value cannot be sent."""
    try:
        return (protocol.encode(msg) + "\n").encode("utf-8")
    except (TypeError, ValueError) as exc:  # e.g. an int of over 4,300 digits
        reason = str(exc).split(";")[0] or type(exc).__name__
        raise KilnError(BAD_REQUEST, f"The request cannot be sent to the engine ({reason}): "
                        "give plain strings and numbers in their ranges, e.g. a seed from 0 "
                        "to 4294967295.") from None


def _ends(event: dict, request_id) -> bool:
    if event["type"] not in protocol.FINAL_TYPES:
        return False
    if event.get("code") == ENGINE_CRASHED:
        return True
    return request_id is None or event.get("id") == request_id


def _wait_or_kill(proc: subprocess.Popen, timeout: float) -> None:
    """Wait `timeout` s, then terminate, then kill: the process is gone afterwards."""
    for step in (None, proc.terminate, proc.kill):
        if step is not None:
            try:
                step()
            except OSError:
                pass
        try:
            proc.wait(timeout=timeout if step is None else 3)
            return
        except subprocess.TimeoutExpired:
            continue
    proc.wait()


def _close_quietly(fh) -> None:
    try:
        if fh is not None:
            fh.close()
    except (OSError, ValueError):
        pass


def _exit_reason(rc) -> str:
    if rc is None:
        return "it closed its output"
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit code {rc}"


def _last_error_line(path, limit: int = 200) -> str:
    """The last line of the log's tail that looks like an error, or ""."""
    if not path:
        return ""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 8192))
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        if _ERROR_WORDS.search(line):
            return line.strip()[:limit]
    return ""


@atexit.register
def _stop_all() -> None:
    """Python (Blender) is exiting: stop every engine we started."""
    for client in list(_LIVE):
        try:
            client.shutdown(timeout=2)
        except Exception:
            pass

