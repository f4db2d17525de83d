"""Issue 12's modes through the protocol: a warm `engine serve` (tiny random model) driven
by engine/client.py: views with refine (progress per refine step, cancel mid-refine),
Surprise me with a chosen sampler, and bad requests answered with sentences."""

import json
from pathlib import Path

import numpy as np
import pytest

from engine.client import EngineClient
from engine.errors import BAD_IMAGE, BAD_REQUEST

from serving import TIMEOUT, run_for_progress, warm_engine

FAST = dict(resolution=32, texture=64, faces=500)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serve-modes")


@pytest.fixture(scope="module")
def picture(folder) -> str:
    from PIL import Image
    rgba = np.zeros((48, 48, 4), np.uint8)
    rgba[10:38, 14:34] = (60, 160, 60, 255)
    Image.fromarray(rgba).save(folder / "pot.png")
    return str(folder / "pot.png")


@pytest.fixture(scope="module")
def engine(venv_python, tiny_model_dir, folder):
    with warm_engine(venv_python, tiny_model_dir, folder) as client:
        yield client


def run(client: EngineClient, **params):
    """Generate and wait -> (final event, the job's progress events)."""
    return run_for_progress(client, client.generate, **params)


def test_views_with_refine_report_each_refine_step(engine, picture):
    final, progress = run(engine, mode="views", refine_steps=3, views=[
        {"image": picture, "direction": "front"}, {"image": picture, "azimuth": 90}], **FAST)
    assert final["type"] == "result", final
    stages = list(dict.fromkeys(e["stage"] for e in progress))
    assert stages == ["encode", "refine", "decode", "extract", "texture", "export"]
    assert [e["step"] for e in progress if e["stage"] == "refine" and e["step"]] == [1, 2, 3]
    meta = final["meta"]
    assert meta["mode"] == "views" and meta["refine_steps"] == 3
    assert [v["azimuth"] for v in meta["views"]] == [0.0, 90.0]
    assert Path(final["glb"]).name.split("-")[2] == "pot"           # named after a picture
    assert json.loads(Path(final["json"]).read_text())["mode"] == "views"


def test_surprise_me_with_a_chosen_sampler(engine):
    final, progress = run(engine, mode="unconditional", seed=4, sampler="heun", steps=3,
                          **FAST)
    assert final["type"] == "result", final
    assert (final["meta"]["mode"], final["meta"]["sampler"]) == ("unconditional", "heun")
    assert "surprise" in Path(final["glb"]).name
    assert [e["step"] for e in progress if e["stage"] == "sample" and e["step"]] == [1, 2, 3]


def test_cancel_mid_refine_stops_within_a_step(engine, picture):
    seen, sent = [], {}

    def on_event(event):
        seen.append(event)
        if not sent and event.get("stage") == "refine" and event.get("step", 0) >= 2:
            engine.cancel(job)
            sent["step"] = event["step"]

    job = engine.generate(mode="image", image=picture, refine_steps=60, seed=1, **FAST)
    final = engine.wait(job, timeout=TIMEOUT, on_event=on_event)
    assert final["type"] == "cancelled", final
    assert final["stage"] == "refine" and final["step"] <= sent["step"] + 2, final
    assert engine.state == "ready"


@pytest.mark.parametrize("params, code, words", [
    (dict(mode="views", views=[]), BAD_IMAGE, "needs 1 to 4 pictures and got none"),
    (dict(mode="views", views=[{"image": "PIC", "direction": "front"}] * 5), BAD_IMAGE,
     "got 5"),
    (dict(views=[{"image": "PIC", "azimuth": 45, "elevation": 120}]), BAD_REQUEST,
     '"elevation" field'),
    (dict(image="PIC", refine_steps=500), BAD_REQUEST, "from 0 to 100"),
    (dict(prompt="a mug", refine_steps=5), BAD_REQUEST, "text mode has none"),
    (dict(mode="unconditional", sampler="ddpm"), BAD_REQUEST, "use one of euler, heun"),
], ids=["0-pictures", "5-pictures", "elevation-120", "refine-500", "refine-text",
        "unknown-sampler"])
def test_bad_requests_get_a_sentence_and_the_next_one_works(engine, picture, params, code,
                                                           words):
    params = json.loads(json.dumps(params).replace("PIC", picture))
    final, _ = run(engine, **params)
    assert final["type"] == "error" and final["code"] == code, final
    assert words in final["message"], final["message"]
    ok, _ = run(engine, mode="unconditional", steps=1, **FAST)
    assert ok["type"] == "result", ok
