"""Background Blender (bpy 5.0.1 and 4.2 LTS): install the zip, generate, undo,
variations, history with thumbnails, the panels drawn, lifecycle.

One scenario process (scenarios.py background) per Blender does the work; each test
checks one fact. Under 4.2 the engine Python is set in Preferences to the repository's
.venv (a different virtual environment from Blender's, made from the same Python).
"""

import json
import os

import pytest

from conftest import BLENDERS


@pytest.fixture(scope="module", params=BLENDERS)
def seen(request, run_scenario):
    return run_scenario("background", blender=request.param)


def test_runs_in_the_blender_asked_for(seen, request):
    assert seen["blender"].startswith(request.node.callspec.params["seen"])


def test_install_and_enable(seen):
    assert seen["install"] == ["FINISHED"]
    assert seen["enabled"]


def test_poll_refuses_empty_prompt(seen):
    assert seen["poll_empty_prompt"] is False
    assert seen["poll_with_prompt"] is True


def test_setup_engine_refused_offline_with_a_reason(seen):
    # bpy in background mode has online access off: no download, a clear sentence.
    assert "Online access is off" in seen["setup_offline"]


def test_generate_makes_a_textured_object(seen):
    assert seen["generate"] == ["FINISHED"]
    obj = seen["object"]
    assert obj and obj["type"] == "MESH"
    assert obj["faces"] > 100 and obj["uv_layers"] >= 1
    assert obj["base_color_from_image"], "Base Color is not fed by an Image Texture"
    assert obj["collections"] == ["Kiln"]
    assert obj["smooth"] is True


def test_generate_places_and_scales(seen):
    obj = seen["object"]
    assert obj["location"] == pytest.approx([1.0, 2.0, 0.0])           # the 3D cursor
    assert max(obj["dimensions"]) == pytest.approx(2.0, rel=1e-3)      # target size


def test_generate_stores_its_settings(seen):
    props = seen["object"]["props"]
    assert props["kiln_prompt"] == "a red chair"
    assert props["kiln_seed"] == 7
    assert props["kiln_model"]
    settings = json.loads(props["kiln_settings"])
    assert settings["params"]["seed"] == 7 and settings["params"]["steps"] == 4
    assert settings["target_size"] == 2.0


def test_undo_removes_the_import(seen):
    assert seen["objects_after_generate"] == 1
    assert seen["objects_after_undo"] == 0
    assert seen["kiln_after_undo"] == 0


def test_variations_make_distinct_seeds_in_a_row(seen):
    assert seen["variations"] == ["FINISHED"]
    objs = seen["variation_objects"]
    assert len(objs) == 3
    seeds = [o["props"]["kiln_seed"] for o in objs]
    assert seeds == [7, 8, 9]
    for obj in objs:
        assert obj["name"].endswith(f"_s{obj['props']['kiln_seed']}")
    xs = [o["location"][0] for o in objs]
    assert xs[0] < xs[1] < xs[2]


def test_regenerate_replaces_the_selected_object(seen):
    assert seen["regenerate"] == ["FINISHED"]
    new = seen["regenerated"]
    assert new["props"]["kiln_prompt"] == "a blue chair"
    assert new["props"]["kiln_seed"] == 7
    assert new["location"] == pytest.approx(seen["regenerate_source"]["location"])
    assert seen["source_still_there"] is False


def test_image_input_with_colour_key(seen):
    assert seen["image_generate"] == ["FINISHED"]
    assert seen["image_params"]["mode"] == "image"
    assert seen["image_params"]["image"].endswith(".png")
    assert seen["image_alpha_corner"] == 0.0          # the white background, keyed out
    assert seen["image_alpha_centre"] == 1.0          # the red square stays


def test_history_lists_and_reimports(seen):
    assert len(seen["history"]) >= 6
    assert any("a blue chair" in h["title"] for h in seen["history"])
    assert seen["history_import"] == ["FINISHED"]
    assert seen["history_import_added"] == 1


def test_every_result_has_its_thumbnail_in_history(seen):
    thumbs = [h["thumb"] for h in seen["history"]]
    assert all(t and t == h["glb"][:-4] + ".png" for t, h in zip(thumbs, seen["history"]))
    assert all(os.path.isfile(t) for t in thumbs)


def test_the_panels_draw_and_history_loads_the_thumbnails(seen):
    drawn = seen["panels"]
    assert drawn["errors"] == []
    assert set(drawn["draws"]) >= {"KILN_PT_main", "KILN_PT_output", "KILN_PT_engine",
                                   "KILN_PT_history", "KilnPreferences"}
    assert any("a blue chair" in label for label in drawn["history_labels"])
    # Background Blender makes no icons (icon_id 0, so the panel falls back to a mesh
    # icon); the previews behind them are loaded from each thumbnail. The real-window
    # test sees the icons themselves.
    assert seen["previews"] == {h["thumb"]: [128, 128] for h in seen["history"]}


def test_disable_and_enable_leave_no_engine_process(seen):
    assert seen["pid1"] and seen["pid1_alive_after_disable"] is False
    assert seen["generate_after_enable"] == ["FINISHED"]
    assert seen["pid2"] and seen["pid2"] != seen["pid1"]
    assert seen["pid2_alive_after_disable"] is False
    assert seen["engines_left"] == []


def test_scene_saves(seen):
    assert seen["blend_saved"]
