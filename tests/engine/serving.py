"""A warm `engine serve` on the tiny random model, driven by engine/client.py: the server
tests share how it starts and how one job is run through it."""

import contextlib
from pathlib import Path

from engine.client import EngineClient

ROOT = Path(__file__).resolve().parents[2]
STEP_DELAY = 0.1      # s per sampling / refine step (--test-step-delay): a cancel lands mid-job
TIMEOUT = 300         # a safety net for a loaded machine, not a speed check


@contextlib.contextmanager
def warm_engine(venv_python, model_dir, folder: Path, ready: bool = True):
    """A started engine on `model_dir` (CPU, --test-step-delay), writing its results to
    folder/out and its log to folder/engine.log, and (with `ready`) asserted ready; shut
    down when the block ends."""
    client = EngineClient(venv_python, ROOT, model=str(model_dir), device="cpu",
                          out_dir=folder / "out", log_path=folder / "engine.log",
                          extra_args=["--test-step-delay", str(STEP_DELAY)])
    client.start()
    if ready:
        assert client.wait_ready(timeout=TIMEOUT)["type"] == "ready"
    yield client
    client.shutdown()


def run_job(client: EngineClient, submit, **params):
    """`submit(**params)` (client.generate or client.restyle) and wait for the job's last
    event -> (that event, every other event on the way)."""
    seen = []
    job = submit(**params)
    final = client.wait(job, timeout=TIMEOUT, on_event=seen.append)
    assert final.get("id") == job
    return final, seen


def run_for_progress(client: EngineClient, submit, **params):
    """run_job -> (the job's last event, its progress events)."""
    final, seen = run_job(client, submit, **params)
    return final, [e for e in seen if e["type"] == "progress" and e["id"] == final["id"]]
