"""Real Blender (bpy 5.0.1 and 4.2 LTS): Restyle the selected object (issue 12, item 4).

A cube with a UV map the test made (and a Subdivision modifier), a cube without one,
and a Kiln result are restyled through the operator, as a user presses it: the vertex
positions, UVs and modifiers stay exactly as they were, the material's Base Color now
comes from a new image through the object's own UV map, the user's material is left
untouched, and one undo brings the old material (and the object without a UV map) back.
"""

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import BLENDERS, blender_python

HERE = Path(__file__).resolve().parent
TIMEOUT = 420


def run_restyle_scenario(python: str, args: dict, work: Path) -> dict:
    """scenario_restyle.py in its own process group: on a timeout the group (Blender and
    the engine it started) is killed, so nothing is left behind."""
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(work / "user"),
               PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)
    proc = subprocess.Popen([python, str(HERE / "scenario_restyle.py"), json.dumps(args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=str(work), start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the restyle scenario ran over {TIMEOUT} s:\n{out[-2000:]}\n{err[-3000:]}")
    lines = [ln for ln in out.splitlines() if ln.startswith("KILN_RESULT ")]
    assert proc.returncode == 0 and lines, out[-3000:] + err[-5000:]
    return json.loads(lines[-1][len("KILN_RESULT "):])


@pytest.fixture(scope="module", params=BLENDERS)
def seen(request, blender_pythons, venv_python, kiln_zip, tiny_model_dir, tmp_path_factory):
    python = blender_python(blender_pythons, request.param)
    work = tmp_path_factory.mktemp(f"scenario-restyle-{request.param}")
    (work / "out").mkdir()
    args = dict(zip=str(kiln_zip), model=str(tiny_model_dir), out=str(work / "out"))
    if python != venv_python:
        args["engine_python"] = venv_python
    result = run_restyle_scenario(python, args, work)
    result["_out"] = str(work / "out")
    return result


def unchanged_geometry(case: dict) -> None:
    before, after = case["before"], case["after"]
    assert after["co"] == before["co"]                           # exactly the same floats
    assert after["modifiers"] == before["modifiers"]
    assert after["faces"] == before["faces"]
    if before["data_materials"]:                                 # the mesh's own list
        assert after["data_materials"] == before["data_materials"]
    else:                                                        # one empty slot to link to
        assert after["data_materials"] == [None]


def restyled_slots(case: dict, uv_map: str) -> None:
    before, after = case["before"], case["after"]
    assert len(after["slots"]) == max(len(before["slots"]), 1)
    for old, new in zip(before["slots"] or [{"material": None, "image": None}], after["slots"]):
        assert new["from_image"], "Base Color is not fed by an Image Texture"
        assert new["material"] != old["material"] and new["link"] == "OBJECT"
        assert new["image"] and new["image"] != old["image"] and new["image_packed"]
        assert new["uv_map"] == uv_map


def undone(case: dict) -> None:
    before, back = case["before"], case["undone"]
    assert back["slots"] == before["slots"]
    assert back["uv_maps"] == before["uv_maps"] and back["co"] == before["co"]
    assert back["restyle"] is None


def test_runs_in_the_blender_asked_for(seen, request):
    assert seen["blender"].startswith(request.node.callspec.params["seen"])


def test_a_cube_with_its_own_uv_map_keeps_geometry_uvs_and_modifiers(seen):
    case = seen["cube"]
    assert case["result"] == ["FINISHED"], case
    assert case["message"].startswith("Restyled Painted in ")
    unchanged_geometry(case)
    assert case["after"]["uv_maps"] == case["before"]["uv_maps"]
    assert case["after"]["active_uv"] == "TestUV"
    restyled_slots(case, "TestUV")
    assert case["after"]["slots"][0]["image_size"] == [256, 256]   # the panel's texture size
    stored = json.loads(case["after"]["restyle"])
    assert (stored["prompt"], stored["strength"], stored["uv_map"], stored["made_uv_map"]) \
        == ("a blue box", 0.6, "TestUV", False)
    assert os.path.isfile(stored["texture"]) and stored["texture"].endswith(".png")


def test_the_users_material_is_kept_and_undo_brings_it_back(seen):
    case = seen["cube"]
    assert "Painted paint" in case["materials_after_undo"]
    assert case["before"]["slots"][0]["material"] == "Painted paint"
    assert case["before"]["slots"][0]["from_image"] is False
    undone(case)


def test_an_object_without_uvs_gets_a_smart_uv_map_and_undo_removes_it(seen):
    case = seen["bare"]
    assert case["result"] == ["FINISHED"], case
    assert case["before"]["uv_maps"] == {} and case["before"]["slots"] == []   # no material
    assert case["after"]["slots"][0]["material"] == "Bare restyled"
    unchanged_geometry(case)
    assert list(case["after"]["uv_maps"]) == ["KilnUV"] and case["after"]["active_uv"] == "KilnUV"
    uv = case["after"]["uv_maps"]["KilnUV"]
    assert min(uv) >= 0.0 and max(uv) <= 1.0 and len(set(uv)) > 8  # an unwrap, not one point
    restyled_slots(case, "KilnUV")
    assert json.loads(case["after"]["restyle"])["made_uv_map"] is True
    undone(case)


def test_a_kiln_result_is_restyled_in_place(seen):
    assert seen["generate"] == ["FINISHED"]
    case = seen["kiln"]
    assert case["result"] == ["FINISHED"], case
    assert case["before"]["faces"] > 50 and case["before"]["slots"][0]["from_image"]
    unchanged_geometry(case)
    assert case["after"]["uv_maps"] == case["before"]["uv_maps"]
    restyled_slots(case, case["before"]["active_uv"])
    undone(case)


def test_in_a_window_the_timer_applies_it_with_its_own_undo_step(seen):
    assert seen["timer_operator"] == ["FINISHED"] and seen["timer_busy_after_operator"]
    assert seen["timer_finished"] and seen["timer_error"] == ""
    fractions = seen["timer_fractions"]
    assert fractions == sorted(fractions) and fractions[-1] > 0.5   # never runs backwards
    order = ["waiting", "load", "condition", "render", "encode", "sample", "decode",
             "texture", "export"]                                 # restyle's, as the engine
    stages = seen["timer_stages"]                                # runs them (ticks may skip)
    assert len(stages) >= 2 and [order.index(s) for s in stages] == sorted(
        order.index(s) for s in stages), stages
    before, after, back = seen["timer_before"], seen["timer_after"], seen["timer_undone"]
    assert after["co"] == before["co"] and after["uv_maps"] == before["uv_maps"]
    assert after["slots"][0]["from_image"] and not before["slots"][0]["from_image"]
    assert back["slots"] == before["slots"] and back["restyle"] is None


def test_an_object_without_faces_is_refused_with_a_sentence(seen):
    assert "has no faces" in seen["no_faces"] and "pick an object" in seen["no_faces"]
    assert seen["no_faces_uv_maps"] == 0 and seen["no_faces_materials"] == 0
    assert seen["files_after_no_faces"]                          # no mesh file, no texture


def test_restyle_needs_a_mesh_and_a_prompt(seen):
    assert seen["poll_non_mesh"] is False
    assert seen["poll_without_prompt"] is False
    assert seen["poll_with_prompt"] is True


def test_the_panel_draws_the_restyle_settings(seen):
    panel = seen["panel"]
    assert panel["draw_errors"] == []
    assert panel["restyle_props"] == ["restyle_prompt", "restyle_strength"]
    assert panel["restyle_operators"] == ["kiln.restyle"]
    assert panel["restyle_labels"] == ["Painted · UV map TestUV"]


def test_the_mesh_files_and_textures_stay_in_the_output_folder(seen):
    assert [n for n in seen["inputs"] if n.endswith("_restyle.npz")]
    assert not [n for n in seen["inputs"] + seen["outputs"] if n.endswith(".part")]
    textures = [n for n in seen["outputs"] if n.endswith(".png") and "_s7" in n]
    assert len(textures) >= 3 and all(n[:-4] + ".json" in seen["outputs"] for n in textures)
    assert seen["engines_left"] == []
