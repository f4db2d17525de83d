"""Real Blender (bpy 5.0.1 and 4.2 LTS): issue 13, item 3 -- with Output Format "Gaussian
Splats", Generate asks the engine for a .ply of 3D Gaussian splats and imports it as a
point cloud (loose vertices) carrying the splat attributes, shown as points by a
geometry-nodes modifier; GLB stays the default and still gives a textured mesh."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import BLENDERS, blender_python

HERE = Path(__file__).resolve().parent
SPLAT_ATTRIBUTES = (["f_dc_0", "f_dc_1", "f_dc_2", "opacity"] + [f"scale_{i}" for i in range(3)]
                    + [f"rot_{i}" for i in range(4)] + ["nx", "ny", "nz", "splat_radius"])


@pytest.fixture(scope="module", params=BLENDERS)
def seen(request, blender_pythons, venv_python, kiln_zip, tiny_model_dir,
         tmp_path_factory) -> dict:
    python = blender_python(blender_pythons, request.param)
    work = tmp_path_factory.mktemp(f"scenario-splats-{request.param}")
    (work / "out").mkdir()
    args = dict(zip=str(kiln_zip), model=str(tiny_model_dir), out=str(work / "out"))
    if python != venv_python:
        args["engine_python"] = venv_python
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(work / "user"),
               PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)
    done = subprocess.run([python, str(HERE / "scenario_splats.py"), json.dumps(args)],
                          capture_output=True, text=True, timeout=400, env=env, cwd=str(work))
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("KILN_RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-5000:]
    result = json.loads(lines[-1][len("KILN_RESULT "):])
    result["_out"] = str(work / "out")
    return result


def test_generate_writes_a_ply_and_its_sidecar(seen):
    assert seen["generate"] == ["FINISHED"]
    plys = [f for f in seen["files"] if f.endswith(".ply")]
    assert len(plys) == 1, seen["files"]
    stem = plys[0][:-4]
    assert stem + ".json" in seen["files"] and not any(f.endswith(".glb") for f in seen["files"])
    meta = json.loads((Path(seen["_out"]) / (stem + ".json")).read_text())
    assert meta["format"] == "splat" and meta["counts"]["splats"] > 0


def test_the_ply_is_imported_as_a_point_cloud_with_the_splat_attributes(seen):
    from plyfile import PlyData
    obj = seen["objects"][0]
    assert obj["type"] == "MESH" and obj["faces"] == 0 and seen["edges"] == 0
    ply = next(f for f in seen["files"] if f.endswith(".ply"))
    count = PlyData.read(str(Path(seen["_out"]) / ply))["vertex"].count
    assert obj["vertices"] == count > 0                          # one point per splat
    attrs = seen["attributes"]
    for name in SPLAT_ATTRIBUTES:
        assert name in attrs, (name, sorted(attrs))
        assert attrs[name][:2] == ["POINT", "FLOAT"], (name, attrs[name])
    assert not any(name.startswith("f_rest_") for name in attrs)  # Kiln's are all zero
    assert seen["color_attributes"] == ["Col"]
    assert attrs["Col"][:2] == ["POINT", "FLOAT_COLOR"]
    assert 0.0 <= attrs["Col"][2] and attrs["Col"][3] <= 1.0
    # sizes follow the importer's scaling to the target size (2): log scales stay finite
    assert -12 < attrs["scale_0"][2] <= attrs["scale_0"][3] < 0
    assert 0 < attrs["splat_radius"][2] and attrs["splat_radius"][3] < 0.5
    assert 2.0 <= max(obj["dimensions"]) < 2.1          # the points' centres span 2, + radii
    assert obj["collections"] == ["Kiln"] and obj["props"]["kiln_prompt"] == "a red chair"
    assert obj["props"]["kiln_glb"].endswith(".ply")


def test_the_points_show_through_a_geometry_nodes_modifier(seen):
    assert seen["modifiers"] == [["Kiln Splats", "NODES", "Kiln Splats"]]
    assert seen["evaluated_points"] == seen["objects"][0]["vertices"]   # one point a splat


def test_glb_is_still_the_default_and_makes_a_textured_mesh(seen):
    assert seen["glb_generate"] == ["FINISHED"]
    assert seen["glb_object"]["faces"] > 50 and seen["glb_object"]["base_color_from_image"]


def test_the_output_panel_draws_the_format_choice(seen):
    assert seen["panels"]["errors"] == []
    assert "KILN_PT_output" in seen["panels"]["draws"]
