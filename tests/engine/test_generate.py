"""`python -m engine generate` end to end on a tiny random model, and the pipeline's
promises: determinism per seed, closed meshes from both extractors, the face budget."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import trimesh

from engine.errors import KilnError
from engine.io import outputs, weights


def _generate(venv_python, repo_root, model, out, *extra):
    cmd = [venv_python, "-m", "engine", "generate", "--prompt", "a red chair", "--model",
           str(model), "--device", "cpu", "--resolution", "48", "--texture", "256",
           "--out", str(out), *extra]
    done = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


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
                                    "export", "thumbnail"}
    assert side["thumbnail"] == "x.png" and (tmp_path / "x.png").is_file()
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

    monkeypatch.setattr(outputs.os, "replace", full_disk)
    with pytest.raises(KilnError) as info:
        pipe.export(result, tmp_path / "mug.glb")
    assert info.value.code == "bad_request" and "No space left" in info.value.message
    assert str(tmp_path / "mug.glb") in info.value.message
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- the CLI checks like the server
def _cli(venv_python, repo_root, tmp_path, *argv):
    """`python -m engine generate` with a model that does not exist: whatever it refuses
    was refused before any model was loaded."""
    cmd = [venv_python, "-m", "engine", "generate", "--model", str(tmp_path / "no-model"),
           "--device", "cpu", *argv]
    return subprocess.run(cmd, cwd=repo_root, capture_output=True, timeout=300)


def _cli_refused(done, code: str, *words) -> str:
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 2, stderr
    assert f"error ({code}): " in stderr and "Traceback" not in stderr, stderr
    assert all(word in stderr for word in words), stderr
    assert done.stdout == b""
    return stderr


@pytest.mark.parametrize("flags, words", [
    (["--steps", "0"], '"steps" field (the number of sampling steps) is 0, out of range'),
    (["--faces", "50"], '"faces" field (the face budget; 0 means no limit) is 50'),
    (["--seed", "-5"], '"seed" field (the random seed) is -5, out of range'),
    (["--resolution", "7"], "is 7, out of range: use a value from 32 to 512"),
    (["--guidance", "nan"], "not a number"),
], ids=["steps-0", "faces-50", "seed-negative", "resolution-7", "guidance-nan"])
def test_cli_refuses_what_the_protocol_refuses_in_its_words(venv_python, repo_root, tmp_path,
                                                           flags, words):
    done = _cli(venv_python, repo_root, tmp_path, "--prompt", "a red chair", "--out",
                str(tmp_path / "x.glb"), *flags)
    _cli_refused(done, "bad_request", words)
    assert not (tmp_path / "x.glb").exists()


def test_cli_refuses_a_prompt_argv_could_not_decode(venv_python, repo_root, tmp_path):
    done = _cli(venv_python, repo_root, tmp_path, "--prompt", b"caf\xe9 chair", "--out",
                str(tmp_path / "x.glb"))
    _cli_refused(done, "bad_prompt", "broken character at position 4")


def _under_a_file(tmp_path):
    (tmp_path / "somefile.txt").write_text("notes")
    return tmp_path / "somefile.txt" / "x.glb", "is a file, not a folder"


def _a_folder(tmp_path):
    (tmp_path / "chair.glb").mkdir()
    return tmp_path / "chair.glb", "it is a folder"


def _a_long_name(tmp_path):
    return tmp_path / ("a" * 300 + ".glb"), "too long"


@pytest.mark.parametrize("make", [_under_a_file, _a_folder, _a_long_name],
                         ids=["under-a-file", "a-folder", "300-characters"])
def test_cli_refuses_an_output_it_cannot_write_before_loading_the_model(
        venv_python, repo_root, tmp_path, make):
    out, words = make(tmp_path)
    done = _cli(venv_python, repo_root, tmp_path, "--prompt", "a red chair", "--out", str(out))
    stderr = _cli_refused(done, "bad_request", words)
    assert str(out)[:60] in stderr or repr(out.name[:40]) in stderr


# ---------------------------------------------------------------- one prompt check, faces 0
def test_the_pipeline_checks_prompts_as_the_protocol_does(pipe):
    from engine import pipeline, protocol
    assert pipeline.MAX_PROMPT_CHARS == protocol.MAX_PROMPT_CHARS
    too_long = "a" * (protocol.MAX_PROMPT_CHARS + 1)
    with pytest.raises(KilnError) as info:
        pipe.text_to_3d(too_long)
    with pytest.raises(KilnError) as same:
        protocol.validate_generate({"prompt": too_long})
    assert info.value.message == same.value.message
    with pytest.raises(KilnError) as info:           # the tokenizer raised TypeError
        pipe.text_to_3d("a red \ud800 chair")
    assert info.value.code == "bad_prompt" and "broken character" in info.value.message


def test_faces_0_means_no_limit(pipe):
    run = lambda faces: pipe.text_to_3d("a mug", seed=1, resolution=32,  # noqa: E731
                                        faces=faces, texture_mode="vertex")
    unlimited, budget, default = run(0), run(500), run(None)
    assert unlimited.meta["faces"] == 0 and default.meta["faces"] == 20000
    assert len(budget.mesh.faces_fx3) <= 525 < len(unlimited.mesh.faces_fx3)


@pytest.mark.parametrize("mode, code", [("text", "bad_prompt"), ("image", "bad_image")])
def test_a_field_with_no_surface_is_a_sentence_not_an_unwrap_error(pipe, tmp_path,
                                                                  monkeypatch, mode, code):
    import torch
    from PIL import Image
    nothing = lambda points: torch.ones(len(points))                 # noqa: E731
    grey = lambda points: torch.full((len(points), 3), 0.5)          # noqa: E731
    monkeypatch.setattr(pipe, "field_fns", lambda planes, tick=None: (nothing, grey))
    monkeypatch.setattr(pipe, "flexi_head_fn", lambda planes: None)
    picture = tmp_path / "ref.png"
    im = Image.new("RGB", (64, 64), "white")
    im.paste((200, 30, 30), (16, 16, 48, 48))
    im.save(picture)
    for extractor in ("mc", "flexicubes"):
        with pytest.raises(KilnError) as info:
            if mode == "text":
                pipe.text_to_3d("a mug", resolution=32, extractor=extractor)
            else:
                pipe.image_to_3d(picture, resolution=32, extractor=extractor)
        assert info.value.code == code and "No surface came out" in info.value.message
        assert "another seed" in info.value.message


def test_export_refuses_a_nul_or_over_long_name_in_a_sentence(pipe, result, tmp_path):
    for out, words in ((tmp_path / "mu\x00g.glb", "NUL character"),
                       (tmp_path / ("a" * 300 + ".glb"), "too long")):
        err = _refused_at_once(pipe, result, out)
        assert words in err.message
    assert list(tmp_path.iterdir()) == []


def _refused_at_once(pipe, result, out) -> KilnError:
    with pytest.raises(KilnError) as info:
        pipe.export(result, out)
    assert info.value.code == "bad_request"
    return info.value


@pytest.mark.parametrize("stage", ["extract", "texture"])
def test_the_geometry_stages_report_as_they_work_and_a_raising_callback_stops_them(
        pipe, monkeypatch, stage):
    """The server's progress callback raises Cancelled: inside extract and texture it must
    be called again and again (not only at the stage's start), and the raise must stop it."""
    from engine import pipeline
    from engine.errors import Cancelled
    monkeypatch.setattr(pipeline, "TICK_SECONDS", 0.0)
    calls = []

    def progress(name, step, total):
        calls.append(name)
        if calls.count(stage) == 20:
            raise Cancelled("job")

    with pytest.raises(Cancelled):
        pipe.text_to_3d("a lamp", seed=1, resolution=64, texture=256, faces=2000,
                        progress=progress)
    assert calls[-1] == stage and calls.count(stage) == 20
