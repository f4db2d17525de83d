"""Issue 13, item 1: morph -- the end points are the two sources' own latents (and
meshes), the in-betweens differ from both and are closed meshes; `python -m engine morph`
writes them and a strip; validate_morph refuses with sentences."""

import json
import subprocess

import numpy as np
import pytest
import torch
import trimesh

from engine import morph, protocol
from engine.errors import KilnError
from engine.pipeline import Pipeline

SMALL = dict(steps=2, resolution=32, texture=64, faces=0)


@pytest.fixture(scope="module")
def pipe(tiny_model_dir):
    return Pipeline.from_pretrained(str(tiny_model_dir), device="cpu")


@pytest.fixture(scope="module")
def sources(pipe, tmp_path_factory):
    """Two text results exported like the add-on's: (sidecar path, meta, result) each."""
    folder = tmp_path_factory.mktemp("sources")
    made = []
    for prompt, seed in (("a red chair", 1), ("a blue mug", 2)):
        result = pipe.text_to_3d(prompt, seed=seed, **SMALL)
        _, sidecar = pipe.export(result, folder / f"{prompt.split()[-1]}.glb")
        made.append((sidecar, json.loads(sidecar.read_text()), result))
    return made


@pytest.mark.parametrize("path", morph.PATHS)
def test_the_end_points_are_the_sources_own_latents(pipe, sources, path):
    with torch.inference_mode():
        a, b = (morph.Source(pipe, morph.source_request(meta)) for _, meta, _ in sources)
        for source, f in ((a, 0.0), (b, 1.0)):
            cond = pipe.encode_text([source.params["prompt"]])
            own = pipe.sample_latent(cond, source.settings, lambda *_: None)
            assert torch.equal(morph.latent_at(pipe, a, b, f, path), own)


def test_the_end_point_mesh_is_the_sources_mesh(pipe, sources):
    (_, meta_a, res_a), (_, meta_b, _) = sources
    start = morph.morph(pipe, meta_a, meta_b, 0.0)
    np.testing.assert_array_equal(start.mesh.vertices_nx3, res_a.mesh.vertices_nx3)


@pytest.mark.parametrize("path", morph.PATHS)
def test_an_in_between_differs_from_both_and_is_a_closed_mesh(pipe, sources, path):
    (_, meta_a, res_a), (_, meta_b, res_b) = sources
    mid = morph.morph(pipe, meta_a, meta_b, 0.5, path)
    for end in (res_a, res_b):
        assert mid.mesh.vertices_nx3.shape != end.mesh.vertices_nx3.shape or \
            not np.allclose(mid.mesh.vertices_nx3, end.mesh.vertices_nx3)
    mesh = trimesh.Trimesh(mid.mesh.vertices_nx3, mid.mesh.faces_fx3)  # UV seams merged
    assert len(mesh.faces) > 100 and mesh.is_watertight
    assert mid.meta["mode"] == "morph" and mid.meta["fraction"] == 0.5


def test_the_cli_writes_n_in_betweens_named_by_fraction_and_a_strip(
        venv_python, repo_root, tiny_model_dir, sources, tmp_path):
    (a, _, _), (b, _, _) = sources
    cmd = [venv_python, "-m", "engine", "morph", str(a), str(b), "--steps", "2", "--model",
           str(tiny_model_dir), "--device", "cpu", "--out", str(tmp_path / "m")]
    done = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "m").glob("*.glb")) == \
        ["01-morph-0.33.glb", "02-morph-0.67.glb"]
    answer = json.loads(done.stdout)
    assert answer["strip"].endswith("morph-strip.png")
    assert json.loads((tmp_path / "m" / "02-morph-0.67.json").read_text())["fraction"] == 0.6667


def test_validate_morph_refuses_with_sentences(sources, tmp_path):
    (a, _, _), (b, _, _) = sources
    ok = protocol.validate_morph({"a": str(a), "b": str(b), "fraction": 0.25})
    assert ok["path"] == "latent" and ok["fraction"] == 0.25
    for msg, words in (({"a": str(a), "b": str(b), "fraction": 1.5}, "out of range"),
                       ({"a": str(a), "fraction": 0.5}, 'set "b"'),
                       ({"a": str(a), "b": str(tmp_path / "x.glb"), "fraction": 0.5},
                        "not a sidecar"),
                       ({"a": str(a), "b": str(b)}, 'no "fraction"'),
                       ({"a": str(a), "b": str(b), "fraction": 0.5, "path": "zig"},
                        "latent, noise")):
        with pytest.raises(KilnError, match=words):
            protocol.validate_morph(msg)
    with pytest.raises(KilnError, match="1 to 16"):
        protocol.morph_fractions(0)


def test_a_refined_or_views_source_is_refused_with_the_reason(sources):
    meta = sources[0][1]
    for changed in (dict(meta, mode="views"), dict(meta, mode="image", refine_steps=5)):
        with pytest.raises(KilnError, match="starting noise"):
            morph.source_request(changed)


def test_the_server_answers_a_morph_with_a_glb_and_refuses_a_bad_one(
        venv_python, tiny_model_dir, sources, tmp_path):
    from serving import run_for_progress, warm_engine
    (a, _, _), (b, _, _) = sources
    with warm_engine(venv_python, tiny_model_dir, tmp_path) as client:
        final, progress = run_for_progress(client, client.morph, a=str(a), b=str(b),
                                           fraction=0.5)
        bad, _ = run_for_progress(client, client.morph, a=str(a), b=str(b), fraction=2)
    assert final["type"] == "result", final
    assert final["meta"]["mode"] == "morph" and final["meta"]["fraction"] == 0.5
    assert trimesh.load(final["glb"], force="mesh").faces.shape[0] > 100
    assert {"sample", "export"} <= {e["stage"] for e in progress}
    assert bad["type"] == "error" and "fraction" in bad["message"]
