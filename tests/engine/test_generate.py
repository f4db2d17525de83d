"""`python -m engine generate` end to end on a tiny random model, and the pipeline's
promises: determinism per seed, closed meshes from both extractors, the face budget."""

import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import trimesh

from engine.errors import KilnError
from engine.io import outputs, weights
from engine.pipeline import Pipeline


def _generate(venv_python, repo_root, model, out, *extra):
    cmd = [venv_python, "-m", "engine", "generate", "--prompt", "a red chair", "--model",
           str(model), "--device", "cpu", "--resolution", "48", "--texture", "256",
           "--out", str(out), *extra]
    done = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def pipe(tiny_model_dir):
    return Pipeline.from_pretrained(str(tiny_model_dir), device="cpu")


def test_cli_writes_a_closed_textured_glb_and_a_sidecar(venv_python, repo_root,
                                                        tiny_model_dir, tmp_path):
    done = _generate(venv_python, repo_root, tiny_model_dir, tmp_path / "x.glb", "--seed", "1")
    assert json.loads(done.stdout)["glb"].endswith("x.glb")        # stdout: one JSON line
    mesh = trimesh.load(tmp_path / "x.glb", force="mesh")
    assert mesh.visual.uv.shape == (len(mesh.vertices), 2)
    assert mesh.visual.material.baseColorTexture.size == (256, 256)
    closed = trimesh.Trimesh(mesh.vertices, mesh.faces)     # UV seams split vertices; weld
    closed.merge_vertices(merge_tex=True, merge_norm=True)
    assert len(closed.faces) > 100 and closed.is_watertight
    side = json.loads((tmp_path / "x.json").read_text())
    assert side["seed"] == 1 and side["prompt"] == "a red chair"
    assert set(side["timings"]) == {"condition", "sample", "decode", "extract", "texture",
                                    "export"}
    assert side["counts"]["faces"] == len(mesh.faces)


def test_same_seed_same_mesh_other_seed_other_mesh(pipe):
    run = lambda seed: pipe.text_to_3d("a red chair", seed=seed, resolution=40,  # noqa: E731
                                       texture_mode="vertex").mesh.vertices_nx3
    first, again, other = run(3), run(3), run(4)
    np.testing.assert_array_equal(first, again)
    assert first.shape != other.shape or not np.allclose(first, other)


@pytest.mark.parametrize("extractor", ["mc", "flexicubes"])
def test_both_extractors_give_closed_meshes_within_the_face_budget(pipe, extractor):
    result = pipe.text_to_3d("a blue mug", seed=2, resolution=64, faces=3000,
                             texture_mode="vertex", extractor=extractor)
    mesh = trimesh.Trimesh(result.mesh.vertices_nx3, result.mesh.faces_fx3, process=False)
    assert mesh.is_watertight
    assert abs(len(mesh.faces) - 3000) <= 0.05 * 3000
    assert result.meta["extractor"] == extractor


def test_unknown_extractor_is_refused_before_any_work(pipe):
    with pytest.raises(KilnError, match="Unknown extractor 'dmtet'.*mc, flexicubes"):
        pipe.text_to_3d("a mug", extractor="dmtet")


def test_the_extractor_defaults_to_the_models_config(pipe):
    """No extractor asked: the model's config.sampling.extractor decides (kiln-mini ships
    the one its eval found best)."""
    saved = pipe.config.sampling.extractor
    try:
        for choice in ("flexicubes", "mc"):
            pipe.config.sampling.extractor = choice
            result = pipe.text_to_3d("a mug", seed=1, resolution=32, texture_mode="vertex")
            assert result.meta["extractor"] == choice
    finally:
        pipe.config.sampling.extractor = saved


# ---------------------------------------------------------------- export keeps others' files
@pytest.fixture(scope="module")
def result(pipe):
    return pipe.text_to_3d("a mug", seed=1, resolution=32, texture_mode="vertex")


def _refused(pipe, result, out) -> KilnError:
    with pytest.raises(KilnError) as info:
        pipe.export(result, out)
    assert info.value.code == "bad_request"
    assert "choose another output name or folder" in info.value.message
    return info.value


def _no_part_files(folder: Path) -> bool:
    return not list(folder.rglob("*.part"))


def test_export_never_overwrites_a_users_json_beside_the_glb(pipe, result, tmp_path):
    notes = tmp_path / "notes.json"
    notes.write_bytes(b'{"todo": ["buy clay"]}\n')
    err = _refused(pipe, result, tmp_path / "notes.glb")
    assert str(notes) in err.message and "not written by Kiln" in err.message
    assert notes.read_bytes() == b'{"todo": ["buy clay"]}\n'
    assert not (tmp_path / "notes.glb").exists() and _no_part_files(tmp_path)


def test_export_into_a_model_folder_leaves_its_config_alone(pipe, result, tiny_model_dir,
                                                            tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    before = (model / "config.json").read_bytes()
    err = _refused(pipe, result, model / "config.glb")
    assert str(model / "config.json") in err.message
    assert (model / "config.json").read_bytes() == before and weights.verify(model)


def test_export_never_overwrites_a_glb_kiln_did_not_write(pipe, result, tmp_path):
    theirs = tmp_path / "statue.glb"
    theirs.write_bytes(b"glTF someone else's model")
    err = _refused(pipe, result, theirs)
    assert str(theirs) in err.message
    assert theirs.read_bytes() == b"glTF someone else's model"
    assert not (tmp_path / "statue.json").exists()


def test_re_exporting_replaces_kilns_own_pair(pipe, result, tmp_path):
    out = tmp_path / "seeds" / "mug.glb"
    glb, sidecar = pipe.export(result, out)
    assert json.loads(sidecar.read_text())["generator"] == "kiln"
    other = pipe.text_to_3d("a mug", seed=2, resolution=32, texture_mode="vertex")
    assert pipe.export(other, out) == (glb, sidecar)       # seed iteration: its own files
    assert json.loads(sidecar.read_text())["seed"] == 2
    assert trimesh.load(glb, force="mesh").faces.shape == other.mesh.faces_fx3.shape
    assert _no_part_files(tmp_path)
    # a result of a Kiln from before the marker (its sidecar's own keys) is Kiln's too
    legacy = {k: v for k, v in json.loads(sidecar.read_text()).items() if k != "generator"}
    sidecar.write_text(json.dumps(legacy))
    assert pipe.export(result, out) == (glb, sidecar)


def test_a_failed_write_is_a_sentence_and_leaves_no_part_file(pipe, result, tmp_path,
                                                              monkeypatch):
    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs, "os", SimpleNamespace(replace=full_disk))
    with pytest.raises(KilnError) as info:
        pipe.export(result, tmp_path / "mug.glb")
    assert info.value.code == "bad_request" and "No space left" in info.value.message
    assert str(tmp_path / "mug.glb") in info.value.message
    assert list(tmp_path.iterdir()) == []
