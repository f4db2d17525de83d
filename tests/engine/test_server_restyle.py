"""Restyle through the protocol: a warm `engine serve` (tiny random model) driven by
engine/client.py: a texture for a mesh's own UVs with progress per stage, a cancel
mid-sample, and bad requests (no faces, strength out of range) answered with sentences
carrying the request's id while the engine stays ready."""

import json
from pathlib import Path

import numpy as np
import pytest

from engine.client import EngineClient
from engine.errors import BAD_MESH, BAD_REQUEST
from engine.io import outputs

from cubes import cube
from serving import TIMEOUT, run_for_progress, warm_engine


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serve-restyle")


@pytest.fixture(scope="module")
def meshes(folder) -> dict:
    v, t, uv = cube(2.0)
    np.savez(folder / "cube.npz", positions_nx3=v, triangles_tx3=t, uvs_tx3x2=uv,
             colors_tx3x3=np.full((12, 3, 3), 0.5, np.float32))
    np.savez(folder / "empty.npz", positions_nx3=v, triangles_tx3=np.zeros((0, 3), np.int64),
             uvs_tx3x2=np.zeros((0, 3, 2), np.float32))
    return {"cube": str(folder / "cube.npz"), "empty": str(folder / "empty.npz")}


@pytest.fixture(scope="module")
def engine(venv_python, tiny_model_dir, folder):
    with warm_engine(venv_python, tiny_model_dir, folder) as client:
        yield client


def run(client: EngineClient, **params):
    """Restyle and wait -> (final event, the job's progress events)."""
    return run_for_progress(client, client.restyle, **params)


def test_restyle_answers_with_a_texture_and_reports_each_stage(engine, meshes, folder):
    out = folder / "cube-blue.png"
    final, progress = run(engine, mesh=meshes["cube"], prompt="a blue box", strength=0.5,
                          steps=4, seed=2, texture=64, out=str(out))
    assert final["type"] == "result", final
    assert final["texture"] == str(out) and "glb" not in final
    assert outputs.is_kiln_png(out)
    stages = list(dict.fromkeys(e["stage"] for e in progress))
    assert stages == ["condition", "render", "encode", "sample", "decode", "texture", "export"]
    assert [e["step"] for e in progress if e["stage"] == "sample" and e["step"]] == [1, 2]
    meta = final["meta"]
    assert (meta["mode"], meta["strength"], meta["seed"], meta["triangles"]) == \
        ("restyle", 0.5, 2, 12)
    assert json.loads(Path(final["json"]).read_text())["prompt"] == "a blue box"
    assert engine.state == "ready"


def test_restyle_without_out_lands_in_the_output_folder(engine, meshes, folder):
    final, _ = run(engine, mesh=meshes["cube"], prompt="a red box", steps=1, texture=64)
    assert final["type"] == "result", final
    texture = Path(final["texture"])
    assert texture.parent == (folder / "out").resolve() and texture.suffix == ".png"
    assert "restyle-a-red-box" in texture.name


def test_cancel_mid_sample_stops_the_restyle(engine, meshes, folder):
    seen, sent = [], {}

    def on_event(event):
        seen.append(event)
        if not sent and event.get("stage") == "sample" and event.get("step", 0) >= 1:
            engine.cancel(job)
            sent["step"] = event["step"]

    out = folder / "never.png"
    job = engine.restyle(mesh=meshes["cube"], prompt="a blue box", strength=1.0, steps=40,
                         texture=64, out=str(out))
    final = engine.wait(job, timeout=TIMEOUT, on_event=on_event)
    assert final["type"] == "cancelled" and final["stage"] == "sample", final
    assert final["step"] <= sent["step"] + 2 and not out.exists()
    assert engine.state == "ready"


@pytest.mark.parametrize("params, code, words", [
    (dict(mesh="EMPTY", prompt="a box"), BAD_MESH, "has no faces"),
    (dict(mesh="CUBE", prompt="a box", strength=1.2), BAD_REQUEST, "out of range"),
    (dict(mesh="CUBE", prompt="a box", faces=100), BAD_REQUEST, "Unknown field 'faces'"),
    (dict(prompt="a box"), BAD_MESH, "Restyle needs a mesh"),
], ids=["no-faces", "strength-1.2", "generate-field", "no-mesh"])
def test_bad_restyles_get_a_sentence_and_the_next_one_works(engine, meshes, params, code,
                                                            words):
    params = json.loads(json.dumps(params).replace("EMPTY", meshes["empty"])
                        .replace("CUBE", meshes["cube"]))
    final, _ = run(engine, **params)
    assert final["type"] == "error" and final["code"] == code, final
    assert words in final["message"], final["message"]
    ok, _ = run(engine, mesh=meshes["cube"], prompt="a box", steps=1, texture=64)
    assert ok["type"] == "result", ok
