"""Real Blender (bpy 5.0.1): the Pictures input and Surprise me add objects, and the
panel's sampler, extractor and refine settings reach the engine's request."""

import json
import os
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def seen(bpy_python, kiln_zip, tiny_model_dir, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("scenario-modes")
    (work / "out").mkdir()
    args = dict(zip=str(kiln_zip), model=str(tiny_model_dir), out=str(work / "out"))
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(work / "user"),
               PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)
    done = subprocess.run([bpy_python, str(HERE / "scenario_modes.py"), json.dumps(args)],
                          capture_output=True, text=True, timeout=280, env=env, cwd=str(work))
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("KILN_RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-5000:]
    return json.loads(lines[-1][len("KILN_RESULT "):])


def test_pictures_mode_needs_a_picture_in_every_row(seen):
    assert seen["poll_without_pictures"] is False
    assert seen["poll_with_empty_picture"] is False
    assert seen["poll_with_pictures"] is True
    assert seen["directions_after_add"] == ["FRONT", "RIGHT"]


def test_pictures_mode_adds_an_object_from_two_posed_pictures(seen):
    assert seen["views_generate"] == ["FINISHED"] and seen["views_added"] == 1
    obj = seen["views_object"]
    assert obj["type"] == "MESH" and obj["faces"] > 50 and obj["collections"] == ["Kiln"]
    assert obj["name"].startswith("front_s7")
    params = seen["views_params"]
    assert params["mode"] == "views"
    first, second = params["views"]
    assert first["direction"] == "front" and (second["azimuth"], second["elevation"]) == \
        (90.0, 10.0)
    for view, name in ((first, "front_png.png"), (second, "side.png")):   # colour-keyed
        assert view["image"].endswith(name) and os.path.isfile(view["image"])
        assert os.path.basename(os.path.dirname(view["image"])) == "inputs"
    assert (params["refine_steps"], params["sampler"], params["extractor"]) == \
        (2, "heun", "flexicubes")


def test_the_panel_draws_the_pictures_list_and_the_new_settings(seen):
    assert seen["draw_errors"] == []
    props = seen["drawn_props"]
    for name in ("source", "direction", "azimuth", "elevation", "refine_steps", "extractor",
                 "background"):
        assert name in props, name
    assert "steps" not in props and "guidance" not in props       # views are not sampled
    assert {"kiln.picture_add", "kiln.picture_remove", "kiln.surprise"} <= \
        set(seen["drawn_operators"])
    assert seen["list_labels"] == ["front.png", "Front", "side", "90°, 10°"]


def test_the_pictures_list_holds_at_most_four(seen):
    assert seen["pictures_at_most"] == 4 and seen["add_poll_when_full"] is False
    assert seen["pictures_after_remove"] == ["CUSTOM", "RIGHT", "BACK"]  # the next unused


def test_surprise_me_adds_an_object_without_a_prompt(seen):
    assert seen["generate_poll_without_prompt"] is False      # text mode still needs one
    assert seen["surprise_poll_without_prompt"] is True
    assert seen["surprise"] == ["FINISHED"] and seen["surprise_added"] == 1
    obj = seen["surprise_object"]
    assert obj["type"] == "MESH" and obj["faces"] > 50
    params = seen["surprise_params"]
    assert params["mode"] == "unconditional" and "guidance" not in params
    assert "prompt" not in params and "refine_steps" not in params
    assert params["seed"] == seen["seed_now"] and obj["name"] == f"surprise_s{params['seed']}"
