"""Real Blender (bpy 5.0.1): issue 13 -- a prompt list of 4 (a text block, with a bad line
skipped) adds 4 objects in a grid; Morph of two of them adds 2 in a row between them.
The model carries kiln-mini's vocabulary, so a prompt with words it never trained on is
read anew (engine/reading.py) and the artist is told how."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


@pytest.fixture(scope="module")
def reading_model(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny test model with the bundled model's vocabulary.json."""
    from engine.io.weights import write_sha256sums
    from engine.reading import VOCABULARY_FILE
    folder = tmp_path_factory.mktemp("models") / "kiln-tiny-reading"
    shutil.copytree(tiny_model_dir, folder)
    shutil.copyfile(ROOT / "weights" / "kiln-mini" / VOCABULARY_FILE, folder / VOCABULARY_FILE)
    write_sha256sums(folder)
    return folder


@pytest.fixture(scope="module")
def seen(bpy_python, kiln_zip, reading_model, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("scenario-lists")
    (work / "out").mkdir()
    args = dict(zip=str(kiln_zip), model=str(reading_model), out=str(work / "out"))
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(work / "user"),
               PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)
    done = subprocess.run([bpy_python, str(HERE / "scenario_lists.py"), json.dumps(args)],
                          capture_output=True, text=True, timeout=280, env=env, cwd=str(work))
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("KILN_RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-5000:]
    return json.loads(lines[-1][len("KILN_RESULT "):])


def test_generate_list_needs_a_text_block(seen):
    assert seen["poll_without_text"] is False
    assert seen["poll_with_text"] is True


def test_a_prompt_list_of_4_adds_4_objects_with_their_prompts_and_seeds(seen):
    assert seen["generate_list"] == ["FINISHED"]
    objs = seen["list_objects"]
    assert [o["props"]["kiln_prompt"] for o in objs] == [
        "a red chair", "a blue mug", "a green lamp", "a tiny yellow sedan"]
    assert [o["props"]["kiln_seed"] for o in objs] == [7, 3, 7, 5]   # 7: the panel's seed
    assert all(o["type"] == "MESH" and o["faces"] > 50 for o in objs)


def test_a_prompt_read_anew_is_tagged_and_told(seen):
    objs = seen["list_objects"]
    assert [o["props"].get("kiln_read_as") for o in objs] == [None, None, None,
                                                               "a small yellow car"]
    assert seen["list_message"].startswith("Made 4 object(s) in ")
    assert seen["list_message"].endswith('Read "a tiny yellow sedan" as "a small yellow car".')
    shown = " ".join(text for text in seen["list_labels"] if text)   # wrapped over labels
    assert 'Read "a tiny yellow sedan" as "a small yellow car".' in shown
    message_lines = [t for t in seen["list_labels"] if t and ("Made 4" in t or "sedan" in t)]
    assert message_lines and all(len(t) <= 48 for t in message_lines), message_lines


def test_the_objects_lie_in_a_2_by_2_grid(seen):
    xy = [tuple(round(v, 3) for v in o["location"][:2]) for o in seen["list_objects"]]
    step = 2.0 * 1.25                                    # target size 2, as Variations
    assert xy == [(0.0, 0.0), (step, 0.0), (0.0, -step), (step, -step)]


def test_the_prompt_list_panel_draws(seen):
    assert seen["panels"]["errors"] == []
    assert "KILN_PT_prompt_list" in seen["panels"]["draws"]


def test_morph_needs_two_kiln_objects(seen):
    assert seen["morph_poll_one"] is False and seen["morph_poll_two"] is True


def test_morph_of_two_objects_adds_n_in_a_row_between_them_named_by_fraction(seen):
    assert seen["morph"] == ["FINISHED"]
    objs = seen["morph_objects"]
    assert [o["name"][:11] for o in objs] == ["morph_0.33_", "morph_0.67_"]
    (ax, ay, az), (bx, by, bz) = seen["morph_ends"]
    for obj, f in zip(objs, (1 / 3, 2 / 3)):
        want = (ax + f * (bx - ax), ay + f * (by - ay), az + f * (bz - az))
        assert all(abs(g - w) < 1e-3 for g, w in zip(obj["location"], want)), obj
        assert obj["type"] == "MESH" and obj["faces"] > 50
    assert all("morph" in o["props"]["kiln_settings"] for o in objs)
