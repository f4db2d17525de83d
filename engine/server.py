"""`python -m engine serve`: the warm JSON-lines server the add-on talks to.
Jobs are generate requests (a GLB) and restyle requests (a texture PNG).

The model loads once; then a reader thread reads requests from stdin while jobs run on
the main thread. The reader answers ping, cancel and shutdown at once, even mid-job;
the job's progress callback emits `progress` events and raises `Cancelled` at its next
call after a cancel: each sampling step, each stage start, and the ticks inside the
geometry stages (extraction, clean-up, unwrap, bake), which come every few hundredths of
a second (a call that repeats the last stage, step and total only checks for a cancel).
stdout carries protocol lines only: the real stdout is kept as a private handle and
file descriptor 1 is pointed at stderr, so stray prints (ours, a library's, or C code's)
land in the log instead of corrupting the protocol.

Exit status: 0 after `shutdown` (which cancels a running job) or end of input (which
lets it finish); 2 when the model cannot be found or its weights are invalid (an
`error` line says why); 1 for any other startup failure.
"""

from __future__ import annotations

import argparse
import faulthandler
import io
import logging
import os
import queue
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__, protocol
from .errors import (BAD_REQUEST, BUSY, INTERNAL, MODEL_NOT_FOUND, WEIGHTS_INVALID,
                     Cancelled, KilnError)
from .io import outputs

log = logging.getLogger("engine.server")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MAX_DETAIL_CHARS = 300


def default_out_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "kiln" / "out"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="kiln-mini",
                        help="model name in weights/, a model folder, or a hub repo id")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--out-dir", default=str(default_out_dir()),
                        help="folder for results of requests without an 'out' path")
    parser.add_argument("--log-file", default=None,
                        help="also log here (skipped when stderr already goes there)")
    parser.add_argument("--allow-online", action="store_true",
                        help="let hub repo ids download (default: local files only)")
    parser.add_argument("--no-warm-up", dest="warm_up", action="store_false",
                        help="say ready before loading the text encoder (the first text "
                        "request then pays for it)")
    add_testing_arguments(parser)


def add_testing_arguments(parser: argparse.ArgumentParser) -> None:
    """The engine's one testing seam, hidden from --help and off unless given: Kiln's own
    tests sleep `--test-step-delay` s in each sampling (and refine) step so a cancel lands
    mid-job. The add-on passes it only from runtime/testing.py; users never set it."""
    group = parser.add_argument_group("testing")
    group.add_argument("--test-step-delay", type=float, default=0.0, help=argparse.SUPPRESS)


# ---------------------------------------------------------------- stdout / logging
class Channel:
    """The protocol's stdout: one locked writer of whole lines."""

    def __init__(self, stream):
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, msg: dict) -> None:
        line = protocol.encode(msg) + "\n"
        with self._lock:
            try:
                self._stream.write(line)
                self._stream.flush()
            except (OSError, ValueError):  # the client went away; EOF ends us soon
                log.warning("could not write %s to stdout", msg.get("type"))


def claim_stdout():
    """Return (private protocol stream, restore function); fd 1 then goes to stderr."""
    real = sys.stdout
    real.flush()
    try:
        fd = os.dup(real.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        sys.stdout = sys.stderr  # no real file (e.g. called in-process by a test)
        return real, lambda: setattr(sys, "stdout", real)
    os.dup2(sys.stderr.fileno(), real.fileno())
    stream = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
    sys.stdout = sys.stderr

    def restore():
        stream.flush()
        os.dup2(fd, real.fileno())
        stream.close()
        sys.stdout = real
    return stream, restore


def setup_logging(log_file) -> list:
    """Log to stderr and to `log_file` (unless stderr is that file already)."""
    fmt = logging.Formatter(LOG_FORMAT)
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_file:
        path = Path(log_file).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        if not _stderr_is(path):
            handlers.append(logging.FileHandler(path, encoding="utf-8"))
    root = logging.getLogger()
    for handler in handlers:
        handler.setFormatter(fmt)
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    return handlers


def _stderr_is(path: Path) -> bool:
    try:
        return path.exists() and os.path.samestat(os.fstat(sys.stderr.fileno()),
                                                  os.stat(path))
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False


def _detail(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().rstrip(".")
    return text if len(text) <= MAX_DETAIL_CHARS else text[:MAX_DETAIL_CHARS] + "..."


# ---------------------------------------------------------------- pipeline loading
def load_pipeline(model: str, device: str, allow_online: bool = False,
                  warm_up: bool = True):
    """Pipeline.from_pretrained with people-facing errors for a missing model."""
    from .pipeline import Pipeline  # torch: imported only by the engine process
    try:
        pipe = Pipeline.from_pretrained(model, device=device, allow_online=allow_online)
        if warm_up and hasattr(pipe, "warm_up"):
            pipe.warm_up()  # text encoder too: the first request pays no load time
        return pipe
    except KilnError:
        raise
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise KilnError(MODEL_NOT_FOUND, f"The model {model!r} was not found ({_detail(exc)})"
                        ": give a model name from weights/ such as 'kiln-mini', a folder "
                        "holding config.json and model.safetensors, or a hub repo id."
                        ) from exc


def timed_export(progress, export):
    """`export()` between the export stage's two reports -> (what it returned, seconds)."""
    progress("export", 0, 1)
    t0 = time.perf_counter()
    written = export()
    export_s = time.perf_counter() - t0
    progress("export", 1, 1)
    return written, export_s


# ---------------------------------------------------------------- the server
VALIDATORS = {protocol.GENERATE: protocol.validate_generate,
              protocol.RESTYLE: protocol.validate_restyle,
              protocol.MORPH: protocol.validate_morph}


@dataclass
class Job:
    id: str
    params: dict
    kind: str = protocol.GENERATE         # or protocol.RESTYLE, protocol.MORPH
    cancel: threading.Event = field(default_factory=threading.Event)
    stage: str = ""
    step: int = 0
    total: int = 0


class Server:
    """Reads requests on a thread; runs one job at a time on the calling thread."""

    def __init__(self, pipe, args, channel: Channel, log_path: str | None):
        self.pipe = pipe
        self.args = args
        self.channel = channel
        self.log_where = f"the log file {log_path}" if log_path else "the engine's stderr"
        self.out_dir = Path(args.out_dir).expanduser()
        self.jobs: queue.Queue = queue.Queue()
        self.lock = threading.Lock()
        self.current: Job | None = None
        self.stopping = False
        self.count = 0

    # -- reader thread ------------------------------------------------------
    def read_forever(self, stdin) -> None:
        for raw in _lines(stdin):
            try:
                self.handle_line(raw)
            except Exception as exc:  # never let the reader die silently
                log.exception("reader failed on a line")
                self.channel.send(protocol.error(protocol.request_id(raw), INTERNAL,
                                  f"The engine could not handle a request "
                                  f"({_detail(exc)}); see {self.log_where}."))
        log.info("stdin closed: finishing the running job, if any, then exiting")
        self.stop(cancel=False)  # the parent is gone or done: no more requests

    def handle_line(self, raw) -> None:
        line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        if not line.strip():
            return
        try:
            msg = protocol.decode(line, allowed=protocol.CLIENT_TYPES)
        except KilnError as exc:
            log.warning("bad line %r: %s", line[:200], exc.message)
            self.channel.send(protocol.error(protocol.request_id(line), exc.code,
                                             exc.message))
            return
        kind = msg["type"]
        if kind == protocol.PING:
            busy = self.current.id if self.current else None
            self.channel.send({"type": protocol.PONG, "busy": busy})
        elif kind == protocol.CANCEL:
            self.cancel(msg.get("id"))
        elif kind == protocol.SHUTDOWN:
            log.info("shutdown requested")
            self.stop()
        else:
            self.accept(msg)

    def accept(self, msg: dict) -> None:
        request_id = protocol.plain_id(msg.get("id"))
        kind = msg["type"]
        validate = VALIDATORS.get(kind, protocol.validate_generate)
        try:
            params = validate(msg)
        except KilnError as exc:
            self.channel.send(protocol.error(request_id, exc.code, exc.message))
            return
        except Exception as exc:  # a check that itself failed: still answer this request
            log.exception("validating request %r failed", request_id)
            self.channel.send(protocol.error(request_id, INTERNAL, f"The engine could not "
                              f"check this request ({_detail(exc)}); see {self.log_where}."))
            return
        with self.lock:
            self.count += 1
            job_id = params["id"] = params["id"] or f"job-{self.count}"
            if self.stopping:
                return
            if self.current is not None:
                busy_id = self.current.id
            else:
                busy_id = None
                self.current = Job(job_id, params, kind)
                self.jobs.put(self.current)
        if busy_id is not None:
            self.channel.send(protocol.error(job_id, BUSY, f"The engine is busy with job "
                              f"{busy_id!r}: wait for it to finish or cancel it, then "
                              "send this request again."))

    def cancel(self, job_id) -> None:
        """Stop the running job (the one named, if an id is given). A cancel naming no
        running job -- it never came, or already ended -- is answered with an error
        carrying that id; one without an id while idle has nothing to answer to."""
        job_id = protocol.plain_id(job_id)
        with self.lock:  # held while a job's final event is sent: that event comes first
            job = self.current
        if job is not None and job_id in (None, job.id):
            log.info("cancel %s at %s %d", job.id, job.stage or "start", job.step)
            job.cancel.set()
        elif job_id is not None:
            log.info("cancel %r: no such running job", job_id)
            running = f"it runs {job.id!r}" if job else "it runs no job"
            self.channel.send(protocol.error(job_id, BAD_REQUEST, f"The engine has no "
                              f"running job {job_id!r} to cancel ({running}; a finished job "
                              "has already sent its result): nothing was cancelled."))

    def stop(self, cancel: bool = True) -> None:
        """No more requests; `shutdown` also cancels the running job, end of input not."""
        with self.lock:
            self.stopping = True
            job = self.current
        if job is not None and cancel:
            job.cancel.set()
        self.jobs.put(None)

    # -- main thread --------------------------------------------------------
    def run_forever(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            final = self.run_job(job)
            with self.lock:  # free the slot and answer at once: a quick next request
                self.current = None  # is never refused as busy, and a late cancel's
                self.channel.send(final)  # "no such job" never comes before the result

    def run_job(self, job: Job) -> dict:
        t0 = time.perf_counter()
        log.info("job %s: %s", job.id, {k: v for k, v in job.params.items() if v is not None})
        try:
            final = {protocol.RESTYLE: self.restyle, protocol.MORPH: self.morph}.get(
                job.kind, self.generate)(job)
        except Cancelled:
            log.info("job %s cancelled at %s %d", job.id, job.stage, job.step)
            return protocol.cancelled(job.id, stage=job.stage, step=job.step)
        except KilnError as exc:
            log.warning("job %s refused: %s", job.id, exc.message)
            return protocol.error(job.id, exc.code, exc.message)
        except Exception as exc:
            log.error("job %s failed:\n%s", job.id, traceback.format_exc())
            return protocol.error(job.id, INTERNAL, self.failure_sentence(exc))
        log.info("job %s done in %.2f s: %s", job.id, time.perf_counter() - t0,
                 final.get("glb") or final.get("texture") or final.get("ply"))
        return final

    def failure_sentence(self, exc: Exception) -> str:
        fix = "try again, and if it keeps failing, report it with that log"
        if "out of memory" in str(exc).lower() or isinstance(exc, MemoryError):
            fix = "lower the resolution, face budget or texture size, or use the CPU"
        return (f"The engine failed while generating ({_detail(exc)}): {fix}. Details "
                f"are in {self.log_where}.")

    def progress_fn(self, job: Job):
        delay = self.args.test_step_delay          # the testing seam (add_testing_arguments)

        def progress(stage: str, step: int, total: int) -> None:
            if delay and stage in ("sample", "refine"):
                time.sleep(delay)
            if job.cancel.is_set():
                raise Cancelled(job.id)
            if (stage, int(step), int(total)) == (job.stage, job.step, job.total):
                return  # a tick inside the stage: nothing new to report
            job.stage, job.step, job.total = stage, int(step), int(total)
            self.channel.send(protocol.progress(job.id, stage, step, total))
        return progress

    def generate(self, job: Job) -> dict:
        suffix = protocol.FORMAT_SUFFIXES[job.params.get("format") or "glb"]
        p, out, pipe, progress = self.begin_job(
            job, protocol.GENERATE, lambda out: outputs.check_writable(out, suffix))
        res = pipe.generate(p, progress=progress)
        if p.get("format") == "splat":             # the result as Gaussian splats (.ply)
            (ply, sidecar), export_s = timed_export(
                progress, lambda: pipe.export_splat(res, str(out)))
            return protocol.splatted(job.id, str(ply), str(sidecar),
                                     self.result_meta(pipe, res, export_s))
        (glb, sidecar), export_s = timed_export(progress, lambda: pipe.export(res, str(out)))
        return protocol.result(job.id, str(glb), str(sidecar),
                               self.result_meta(pipe, res, export_s))

    def restyle(self, job: Job) -> dict:
        """A restyle request -> the texture PNG + sidecar (engine/restyle.py)."""
        p, out, pipe, progress = self.begin_job(job, protocol.RESTYLE,
                                                outputs.check_writable_texture)
        options = {k: p[k] for k in ("seed", "steps", "guidance", "texture") if k in p}
        res = pipe.restyle(p["mesh"], p["prompt"], p["strength"], progress=progress,
                           sampler=p.get("sampler"), **options)
        (png, sidecar), export_s = timed_export(
            progress, lambda: pipe.export_texture(res, str(out)))
        return protocol.restyled(job.id, str(png), str(sidecar),
                                 self.result_meta(pipe, res, export_s))

    def morph(self, job: Job) -> dict:
        """A morph request -> the in-between's GLB + sidecar (engine/morph.py)."""
        from .morph import morph, read_sidecar
        p, out, pipe, progress = self.begin_job(job, protocol.MORPH,
                                                outputs.check_writable)
        res = morph(pipe, read_sidecar(p["a"]), read_sidecar(p["b"]), p["fraction"],
                    p["path"], progress=progress)
        (glb, sidecar), export_s = timed_export(progress, lambda: pipe.export(res, str(out)))
        return protocol.result(job.id, str(glb), str(sidecar),
                               self.result_meta(pipe, res, export_s))

    def begin_job(self, job: Job, kind: str, check_writable):
        """A job's (params, output path, pipeline, progress), once it is not cancelled and
        `check_writable` accepts its output: a bad output is refused before any work."""
        progress = self.progress_fn(job)
        if job.cancel.is_set():
            raise Cancelled(job.id)
        p = job.params
        out = self.out_path(p, kind)
        check_writable(out)
        return p, out, self.pipeline_for(p.get("model"), progress), progress

    def pipeline_for(self, model, progress):
        """The warm pipeline, or a newly loaded one when a request names another model."""
        if not model or model in (self.args.model, self.pipe.name):
            return self.pipe
        progress("load", 0, 1)
        log.info("loading model %r", model)
        pipe = load_pipeline(model, self.args.device, self.args.allow_online)
        self.pipe, self.args.model = pipe, model  # keep only one model warm
        progress("load", 1, 1)
        return pipe

    def out_path(self, p: dict, kind: str = protocol.GENERATE) -> Path:
        if p.get("out"):
            out = Path(p["out"])
            out = out if out.is_absolute() else self.out_dir / out
        else:
            stem = protocol.slug(p.get("prompt") or Path(_picture(p) or "surprise").stem)
            suffix = protocol.FORMAT_SUFFIXES[p.get("format") or "glb"]
            if kind == protocol.MORPH:
                stem = f"morph-{p['fraction']:.2f}"
            if kind == protocol.RESTYLE:
                stem, suffix = f"restyle-{stem}", ".png"
            stamp = time.strftime("%Y%m%d-%H%M%S")
            tail = protocol.slug(p["id"])
            out = self.out_dir / f"{stamp}-{stem}-s{p.get('seed', 0)}-{tail}{suffix}"
        return out.resolve()  # its folders are made when the result is written

    def result_meta(self, pipe, res, export_s: float) -> dict:
        meta = dict(getattr(res, "meta", None) or {})
        timings = dict(getattr(res, "timings", None) or {})
        timings.setdefault("export", export_s)
        meta["timings"] = timings
        mesh = getattr(res, "mesh", None)
        if mesh is not None:
            meta["counts"] = {"vertices": int(len(mesh.vertices_nx3)),
                              "faces": int(len(mesh.faces_fx3))}
        meta.setdefault("model", pipe.name)
        meta.setdefault("device", str(pipe.device))
        return protocol.plain(meta)


def _lines(stdin):
    """Lines of stdin read with os.read on its descriptor.

    Not through sys.stdin's buffered reader: a daemon thread blocked inside it holds
    its lock, and the interpreter then aborts at exit ("could not acquire lock").
    """
    try:
        fd = stdin.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        yield from iter(stdin.readline, "")  # an in-memory stream (tests in-process)
        return
    pending = b""
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        yield from lines
    if pending:
        yield pending


def _picture(p: dict):
    """The request's (first) picture path, or None (text and unconditional modes)."""
    return p.get("image") or (p.get("views") or [{}])[0].get("image")


# ---------------------------------------------------------------- entry point
def _enable_faulthandler() -> None:
    try:
        faulthandler.enable(sys.stderr)  # a hard crash still leaves a trace in the log
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass


def main(args) -> int:
    t0 = time.perf_counter()
    stream, restore_stdout = claim_stdout()
    channel = Channel(stream)
    handlers = setup_logging(args.log_file)
    _enable_faulthandler()
    try:
        return _serve(args, channel, t0)
    finally:
        for handler in handlers:
            logging.getLogger().removeHandler(handler)
            handler.close()
        restore_stdout()


def _serve(args, channel: Channel, t0: float) -> int:
    log.info("kiln engine %s (pid %d) loading %r on %s", __version__, os.getpid(),
             args.model, args.device)
    try:
        pipe = load_pipeline(args.model, args.device, args.allow_online, args.warm_up)
    except KilnError as exc:
        log.error("cannot load the model: %s", exc.message)
        channel.send(protocol.error(None, exc.code, exc.message))
        return 2 if exc.code in (MODEL_NOT_FOUND, WEIGHTS_INVALID) else 1
    except ImportError as exc:
        log.error("cannot import the engine:\n%s", traceback.format_exc())
        channel.send(protocol.error(None, INTERNAL, f"The engine's Python lacks a "
                     f"dependency ({_detail(exc)}): set up the engine environment again "
                     "(Preferences > Kiln > Set up engine, or make setup)."))
        return 1
    except Exception as exc:
        log.error("cannot start:\n%s", traceback.format_exc())
        where = args.log_file or "the engine's stderr"
        channel.send(protocol.error(None, INTERNAL, f"The engine could not start "
                     f"({_detail(exc)}); details are in {where}."))
        return 1
    server = Server(pipe, args, channel, args.log_file)
    load_s = time.perf_counter() - t0
    channel.send(protocol.ready(__version__, str(pipe.device), pipe.name, pid=os.getpid(),
                                load_s=round(load_s, 3), out_dir=str(server.out_dir)))
    log.info("ready in %.2f s", load_s)
    threading.Thread(target=server.read_forever, args=(sys.stdin,), name="kiln-reader",
                     daemon=True).start()
    server.run_forever()
    log.info("bye")
    return 0
