"""`python -m engine serve` driven from another process through engine/client.py.

One warm engine (the tiny random model) serves most tests in this file, in order; the
crash test restarts it. `--test-step-delay` makes each sampling step take 0.1 s so a
cancel sent after step 3 lands in the middle of sampling whatever the machine's speed;
the test then checks the engine stops within one further step. The geometry stages need
no such hook: at resolution 256 and a 2048 texture they take seconds on a CPU, and a
cancel sent a moment into one must be answered within CANCEL_DEADLINE.
"""

import argparse
import io
import json
import os
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.client import EngineClient
from engine.errors import (BAD_IMAGE, BAD_PROMPT, BAD_REQUEST, BUSY, ENGINE_CRASHED,
                           ENGINE_MISSING, MODEL_NOT_FOUND, KilnError)

from serving import ROOT, TIMEOUT, run_job, warm_engine

STAGES = ["condition", "sample", "decode", "extract", "texture", "export"]
FAST = dict(steps=3, resolution=32, texture=64, faces=500)  # a small, quick request
LARGE = dict(steps=3, resolution=256, texture=2048, faces=20000)  # seconds per geometry stage
CANCEL_DEADLINE = 0.5  # s from sending a cancel to its `cancelled` reply, in any stage
INTO_STAGE = 0.15  # s after a stage starts before the cancel goes: well inside its work
# Lines that once got errors with "id": null (the client then waited for ever).
HUGE_SEED = '{"type":"generate","id":"huge-seed","prompt":"a","seed":' + "9" * 5000 + "}"
HUGE_GUIDANCE = ('{"type":"generate","id":"huge-guidance","prompt":"a","guidance":'
                 + "1" * 400 + "}")
NUL_IMAGE = json.dumps({"type": "generate", "id": "nul-image", "mode": "image",
                        "image": "/tmp/ref\x00.png"})
NEXT = json.dumps({"type": "generate", "id": "next", "prompt": "a red chair"})


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serve")


@pytest.fixture(scope="module")
def engine(venv_python, tiny_model_dir, folder):
    with warm_engine(venv_python, tiny_model_dir, folder, ready=False) as client:
        yield client          # test_ready_names_model_and_device waits for it


def run(client: EngineClient, **params):
    """Generate and wait; return (final event, every other event on the way)."""
    return run_job(client, client.generate, **params)


def next_event(client: EngineClient, kind: str) -> dict:
    """Block until an event of `kind` arrives (others are dropped)."""
    while True:
        for event in client.poll(timeout=1.0):
            if event["type"] == kind:
                return event
            assert event.get("code") != ENGINE_CRASHED, event


def sample_steps(events, job) -> list[int]:
    return [e["step"] for e in events
            if e["type"] == "progress" and e["id"] == job and e["stage"] == "sample"
            and e["step"] > 0]


# ---------------------------------------------------------------- the happy path
def test_ready_names_model_and_device(engine):
    ready = engine.wait_ready(timeout=TIMEOUT)
    assert ready["type"] == "ready", ready
    assert ready["model"] == "random-tiny" and ready["device"] == "cpu"
    assert ready["protocol"] == 1 and ready["pid"] == engine.pid
    assert engine.state == "ready" and engine.info == ready


def test_generate_reports_progress_and_writes_a_glb(engine):
    final, seen = run(engine, prompt="a red chair", seed=1, **FAST)
    assert final["type"] == "result", final
    glb, sidecar = Path(final["glb"]), Path(final["json"])
    assert glb.is_absolute() and glb.read_bytes()[:4] == b"glTF"
    assert json.loads(sidecar.read_text())["seed"] == 1
    assert final["meta"]["prompt"] == "a red chair" and final["meta"]["counts"]["faces"] > 0
    assert set(STAGES) <= set(final["meta"]["timings"])
    progress = [e for e in seen if e["type"] == "progress"]
    assert all(e["id"] == final["id"] for e in progress)
    stages = list(dict.fromkeys(e["stage"] for e in progress))  # first-seen order
    assert stages == STAGES
    assert sample_steps(seen, final["id"]) == [1, 2, 3]
    assert engine.state == "ready"


def test_image_mode_generates_from_a_picture(engine, folder):
    from PIL import Image, ImageDraw
    picture = folder / "ref.png"
    im = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(im).ellipse((16, 12, 48, 52), fill=(200, 30, 30))
    im.save(picture)
    out = folder / "mine" / "from_image.glb"
    final, _ = run(engine, image=str(picture), seed=2, out=str(out), **FAST)
    assert final["type"] == "result", final
    assert final["glb"] == str(out) and out.is_file() and out.with_suffix(".json").is_file()
    assert final["meta"]["mode"] == "image"


# ---------------------------------------------------------------- cancel, busy, ping
def test_cancel_mid_sampling_stops_within_one_step(engine):
    seen, sent = [], {}

    def on_event(event):
        seen.append(event)
        if not sent and sample_steps([event], job) and event["step"] >= 3:
            engine.cancel(job)
            sent["at"] = len(seen)

    job = engine.generate(prompt="a tall vase", seed=3, **dict(FAST, steps=50))
    final = engine.wait(job, timeout=TIMEOUT, on_event=on_event)
    assert final["type"] == "cancelled" and final["id"] == job, final
    assert final["stage"] == "sample"
    after_cancel = sample_steps(seen[sent["at"]:], job)
    assert len(after_cancel) <= 1, after_cancel
    assert max(sample_steps(seen, job)) < 50
    assert engine.state == "ready"


@pytest.mark.parametrize("stage, extractor", [("extract", "mc"), ("extract", "flexicubes"),
                                               ("texture", "mc")])
def test_cancel_inside_a_long_geometry_stage_is_answered_within_half_a_second(engine, stage,
                                                                             extractor):
    sent = {}

    def on_event(event):
        if not sent and event["type"] == "progress" and event["stage"] == stage:
            time.sleep(INTO_STAGE)
            engine.cancel(job)
            sent["at"] = time.monotonic()

    job = engine.generate(prompt="a tall vase", seed=8, extractor=extractor, **LARGE)
    final = engine.wait(job, timeout=TIMEOUT, on_event=on_event)
    latency = time.monotonic() - sent["at"]
    print(f"cancel in {stage} ({extractor}): answered after {latency:.3f} s")
    assert final["type"] == "cancelled" and final["id"] == job, final
    assert final["stage"] == stage, f"the stage ended before the cancel landed: {final}"
    assert latency < CANCEL_DEADLINE, f"cancel in {stage} took {latency:.3f} s"
    assert engine.state == "ready"


def test_busy_and_ping_are_answered_while_a_job_runs(engine):
    job = engine.generate(prompt="a lamp", seed=4, **dict(FAST, steps=50))
    event = next_event(engine, "progress")
    assert event["id"] == job
    engine.send({"type": "generate", "id": "second", "prompt": "a cup"})
    busy = next_event(engine, "error")
    assert busy["code"] == BUSY and busy["id"] == "second" and job in busy["message"]
    engine.ping()
    assert next_event(engine, "pong")["busy"] == job
    engine.cancel()
    assert engine.wait(job, timeout=TIMEOUT)["type"] == "cancelled"


# ---------------------------------------------------------------- bad requests
def _malformed(engine):
    engine.send_line("{this is not json")
    return None


def _unknown_type(engine):
    engine.send({"type": "explode", "id": "boom"})
    return "boom"


def _empty_prompt(engine):
    return engine.generate(prompt="   ")


def _missing_image(engine):
    return engine.generate(mode="image", image=str(ROOT / "no" / "such" / "picture.png"))


def _unreadable_image(engine):
    junk = ROOT / "tests" / "engine" / "test_server.py"  # a file, but not a picture
    return engine.generate(mode="image", image=str(junk))


def _unknown_model(engine):
    return engine.generate(prompt="a red chair", model="no-such-model-xyz")


def _bad_number(engine):
    return engine.generate(prompt="a red chair", steps=0)


def _huge_seed(engine):  # the client cannot even encode it: a raw line, as another tool sends
    engine.send_line(HUGE_SEED)
    return "huge-seed"


def _huge_guidance(engine):
    return engine.generate(prompt="a red chair", guidance=10**400)


def _nul_in_image_path(engine):
    return engine.generate(mode="image", image=str(ROOT / "ref\x00.png"))


def _out_under_a_file(engine):
    return engine.generate(prompt="a red chair", out=str(ROOT / "README.md" / "x.glb"))


def _cancel_unknown_job(engine):
    engine.send({"type": "cancel", "id": "ghost"})
    return "ghost"


@pytest.mark.parametrize("send, code, words", [
    (_malformed, BAD_REQUEST, "not valid JSON"),
    (_unknown_type, BAD_REQUEST, "Unknown message type 'explode'"),
    (_empty_prompt, BAD_PROMPT, "The prompt is empty: type what you want to make"),
    (_missing_image, BAD_IMAGE, "does not exist"),
    (_unreadable_image, BAD_IMAGE, "not a picture"),
    (_unknown_model, MODEL_NOT_FOUND, "no-such-model-xyz"),
    (_bad_number, BAD_REQUEST, '"steps"'),
    (_huge_seed, BAD_REQUEST, "5000 digits"),
    (_huge_guidance, BAD_REQUEST, "401 digits"),
    (_nul_in_image_path, BAD_IMAGE, "NUL character"),
    (_out_under_a_file, BAD_REQUEST, "README.md is a file, not a folder"),
    (_cancel_unknown_job, BAD_REQUEST, "no running job 'ghost' to cancel"),
], ids=["malformed", "unknown-type", "empty-prompt", "missing-image", "unreadable-image",
        "unknown-model", "bad-number", "huge-seed", "huge-guidance", "nul-in-image-path",
        "out-under-a-file", "cancel-unknown-job"])
def test_bad_request_gets_a_clear_error_then_the_next_generate_works(engine, send, code,
                                                                     words):
    request_id = send(engine)
    error = next_event(engine, "error")
    assert error["id"] == request_id
    assert error["code"] == code and words in error["message"], error
    assert error["message"].rstrip().endswith("."), "a whole sentence"
    assert engine.state == "ready"
    final, _ = run(engine, prompt="a red chair", seed=5, **FAST)
    assert final["type"] == "result" and Path(final["glb"]).is_file()


def test_a_value_the_client_cannot_encode_is_refused_without_leaving_it_busy(engine):
    with pytest.raises(KilnError) as info:
        engine.generate(prompt="a red chair", seed=10**5000)
    assert info.value.code == BAD_REQUEST and "seed from 0" in info.value.message
    assert engine.state == "ready" and engine.job is None
    final, _ = run(engine, prompt="a red chair", seed=5, **FAST)
    assert final["type"] == "result"


def test_stdout_carried_only_protocol_lines(engine):
    assert engine.noise == []
    assert engine.is_running()


# ---------------------------------------------------------------- crash and shutdown
def test_killing_the_engine_gives_engine_crashed_and_the_next_generate_restarts(engine,
                                                                                 folder):
    job = engine.generate(prompt="a chair", seed=6, **dict(FAST, steps=50))
    assert next_event(engine, "progress")["id"] == job
    old_pid = engine.pid
    os.kill(old_pid, signal.SIGKILL)
    final = engine.wait(job, timeout=TIMEOUT)
    assert final["type"] == "error" and final["code"] == ENGINE_CRASHED, final
    assert final["id"] == job and str(folder / "engine.log") in final["message"]
    assert engine.state == "crashed" and not engine.is_running()

    final, _ = run(engine, prompt="a chair", seed=6, **FAST)  # restarts the engine
    assert final["type"] == "result", final
    assert engine.pid != old_pid and engine.state == "ready"


def test_shutdown_mid_job_cancels_it_and_leaves_no_process(engine):
    job = engine.generate(prompt="a stool", seed=7, **dict(FAST, steps=50))
    assert next_event(engine, "progress")["id"] == job
    pid, proc = engine.pid, engine._proc
    engine.send({"type": "shutdown"})
    assert engine.wait(job, timeout=TIMEOUT)["type"] == "cancelled"
    assert proc.wait(timeout=TIMEOUT) == 0  # exits by itself, cleanly
    engine.shutdown()
    assert engine.state == "stopped" and not engine.is_running()
    assert not _alive(pid)


def test_end_of_input_exits_cleanly(venv_python, tiny_model_dir, folder):
    """The parent vanishing closes the engine's stdin: it must exit, not linger."""
    client = EngineClient(venv_python, ROOT, model=str(tiny_model_dir), device="cpu",
                          out_dir=folder / "out", log_path=folder / "eof.log",
                          extra_args=["--no-warm-up"])
    assert client.wait_ready(timeout=TIMEOUT)["type"] == "ready"
    pid = client.pid
    client._proc.stdin.close()
    assert client._proc.wait(timeout=TIMEOUT) == 0
    client.shutdown()
    assert not _alive(pid)


def test_missing_weights_at_startup_is_an_error_not_a_hang(venv_python, folder):
    client = EngineClient(venv_python, ROOT, model=str(folder / "no-model-here"),
                          device="cpu", out_dir=folder / "out", log_path=folder / "bad.log")
    error = client.wait_ready(timeout=TIMEOUT)
    assert error["type"] == "error" and error["code"] == MODEL_NOT_FOUND, error
    assert "no-model-here" in error["message"]
    assert client.state == "crashed" and client.returncode == 2
    client.shutdown()


def test_a_missing_python_is_an_error_event_not_an_exception(folder):
    client = EngineClient(folder / "no" / "python", ROOT, log_path=folder / "none.log")
    error = client.wait_ready(timeout=TIMEOUT)
    assert error["type"] == "error" and error["code"] == ENGINE_MISSING, error
    assert "preferences" in error["message"] and client.state == "crashed"
    job = client.generate(prompt="a chair")
    assert client.wait(job, timeout=TIMEOUT)["code"] == ENGINE_MISSING


# ---------------------------------------------------------------- in-process reader
def in_process_server(out_dir: Path):
    """A Server whose reader runs here, on a fake pipeline (no model, no jobs run)."""
    from engine.server import Channel, Server
    args = argparse.Namespace(model="fake", device="cpu", out_dir=str(out_dir),
                              allow_online=False, test_step_delay=0.0)
    stream = io.StringIO()
    pipe = SimpleNamespace(name="fake", device="cpu")
    return Server(pipe, args, Channel(stream), None), stream


@pytest.mark.parametrize("line, request_id, code", [
    (HUGE_SEED, "huge-seed", BAD_REQUEST),
    (HUGE_GUIDANCE, "huge-guidance", BAD_REQUEST),
    (NUL_IMAGE, "nul-image", BAD_IMAGE),
], ids=["5000-digit-seed", "400-digit-guidance", "nul-in-image-path"])
def test_each_error_carries_its_requests_id_and_the_next_request_is_accepted(
        tmp_path, line, request_id, code):
    server, stream = in_process_server(tmp_path)
    server.read_forever(io.StringIO(line + "\n" + NEXT + "\n"))
    replies = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert len(replies) == 1, replies  # one error, and no "busy" for the next request
    error = replies[0]
    assert error["type"] == "error" and error["id"] == request_id, error
    assert error["code"] == code and error["message"].endswith("."), error
    assert server.current is not None and server.current.id == "next"


def _replies(stream) -> list[dict]:
    return [json.loads(text) for text in stream.getvalue().splitlines()]


@pytest.mark.parametrize("lines, running", [
    ([], "it runs no job"),
    ([NEXT], "it runs 'next'"),
], ids=["idle", "busy"])
def test_a_cancel_naming_no_running_job_is_answered_with_its_id(tmp_path, lines, running):
    server, stream = in_process_server(tmp_path)
    cancel = json.dumps({"type": "cancel", "id": "ghost"})
    server.read_forever(io.StringIO("\n".join([*lines, cancel, ""])))
    error, = _replies(stream)
    assert error["type"] == "error" and error["id"] == "ghost", error
    assert error["code"] == BAD_REQUEST and running in error["message"]
    assert "nothing was cancelled" in error["message"]
    assert server.current is None or not server.current.cancel.is_set()


def test_a_cancel_without_an_id_while_idle_needs_no_answer(tmp_path):
    server, stream = in_process_server(tmp_path)
    server.read_forever(io.StringIO('{"type": "cancel"}\n'))
    assert _replies(stream) == []


def _under_a_file(folder: Path) -> str:
    (folder / "notes.txt").write_text("notes")
    return str(folder / "notes.txt" / "x.glb")


def _a_folder(folder: Path) -> str:
    (folder / "chair.glb").mkdir()
    return str(folder / "chair.glb")


def _a_long_name(folder: Path) -> str:
    return str(folder / ("a" * 300 + ".glb"))


def _read_only(folder: Path) -> str:
    (folder / "locked").mkdir()
    return str(folder / "locked" / "x.glb")


@pytest.mark.parametrize("make, words", [
    (_under_a_file, "notes.txt is a file, not a folder"),
    (_a_folder, "it is a folder"),
    (_a_long_name, "too long"),
    (_read_only, "may not write in the folder"),
], ids=["under-a-file", "a-folder", "300-characters", "read-only"])
def test_an_output_the_engine_cannot_write_is_refused_before_the_job_starts(
        tmp_path, monkeypatch, make, words):
    """The fake pipeline cannot generate: reaching it would be an "internal" error. As
    root every folder is writable, so the read-only answer is simulated."""
    from engine.protocol import validate_generate
    from engine.server import Job
    server, stream = in_process_server(tmp_path)
    out = make(tmp_path)
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path).name != "locked")
    job = Job("j1", validate_generate({"id": "j1", "prompt": "a chair", "out": out}))
    final = server.run_job(job)
    assert final["type"] == "error" and final["id"] == "j1", final
    assert final["code"] == BAD_REQUEST and words in final["message"], final
    assert "choose a" in final["message"]                 # ...nother folder, ...shorter name
    assert _replies(stream) == []                         # no progress: nothing started


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in _status(pid)


def _status(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return ""
