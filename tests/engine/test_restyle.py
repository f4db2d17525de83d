"""Restyle (issue 12, item 4) on the tiny random model: an existing mesh's colours baked
onto its own UVs, through the bake, the flow from t = strength, the pipeline, the CLI
and the protocol's checks (the server's own process: tests/engine/test_server_restyle.py)."""

import json
import subprocess

import numpy as np
import pytest
import torch

from engine import protocol
from engine.errors import BAD_MESH, BAD_PROMPT, BAD_REQUEST, Cancelled
from engine.geometry.texture import bake_uv_layout, uv_pixels
from engine.io import outputs
from engine.restyle import (FIT_RADIUS, RestyleMesh, encoder_views, load_mesh, normalised,
                            texture_png)
from engine.sampling import add_noise, partial_grid

from cubes import cube
from refusals import refusal

FAST = dict(texture=64, steps=4)


@pytest.fixture(scope="module")
def cube_file(tmp_path_factory) -> str:
    v, t, uv = cube(3.0)                         # metres, not the unit ball: normalised
    path = tmp_path_factory.mktemp("restyle") / "cube.npz"
    np.savez(path, positions_nx3=v, triangles_tx3=t, uvs_tx3x2=uv)
    return str(path)


refused = refusal(BAD_MESH)


# ---------------------------------------------------------------- the bake
def test_each_texel_gets_the_colour_of_its_own_point():
    """A square whose 3D point is (2u - 1, 2v - 1, 0) at UV (u, v), and a field whose
    colour is its position: every baked texel holds the point of its UV, v up."""
    quad_uv = np.array([[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]], np.float32)
    quad_xyz = np.c_[2 * quad_uv - 1, np.zeros(4)].astype(np.float32)
    tris = np.array([[0, 1, 2], [0, 2, 3]])
    texture, covered = bake_uv_layout(quad_xyz[tris], quad_uv[tris],
                                      lambda p: (p + 1) / 2, size=64)
    rows, cols = np.mgrid[8:56, 8:56]                            # texels well inside
    u, v = (cols + 0.5) / 64, 1 - (rows + 0.5) / 64
    assert np.abs(texture[rows, cols, 0] / 255.0 - u).max() < 2 / 255
    assert np.abs(texture[rows, cols, 1] / 255.0 - v).max() < 2 / 255
    assert np.all(texture[rows, cols, 2] == 128)                 # z = 0
    assert 0.6 < covered < 0.75                                  # 0.8^2 and an edge margin
    assert texture[0, 0].min() > 0                               # the gutter is filled


def test_uvs_past_the_first_tile_wrap_into_it():
    tri = np.array([[[0.2, 0.2], [0.8, 0.2], [0.5, 0.8]]], np.float32)
    assert np.allclose(uv_pixels(tri + [1.0, -2.0], 32), uv_pixels(tri, 32))


def test_the_flow_starts_at_strength():
    x0, noise = torch.ones(3), torch.full((3,), -2.0)
    assert torch.equal(add_noise(x0, noise, 0.0), x0)
    assert torch.equal(add_noise(x0, noise, 1.0), noise)
    assert torch.allclose(add_noise(x0, noise, 0.25), torch.full((3,), 0.25))
    grid = partial_grid(12, 0.5)
    assert len(grid) == 7 and grid[0] == 0.5 and grid[-1] == 0.0
    assert partial_grid(12, 0.0).tolist() == [0.0]                # no steps: z0 kept
    assert len(partial_grid(4, 0.1)) == 2                         # at least one step


# ---------------------------------------------------------------- frame and views
def test_the_mesh_is_framed_like_a_training_asset():
    v, t, uv = cube(3.0)
    far = np.vstack([v + 5.0, [[100.0, 100.0, 100.0]]])          # an unused vertex far away
    points = normalised(far, t)
    used = points[:8]
    assert np.allclose((used.min(0) + used.max(0)) / 2, 0, atol=1e-6)
    assert np.linalg.norm(used, axis=1).max() == pytest.approx(FIT_RADIUS, rel=1e-5)


def test_the_encoder_sees_the_mesh_in_its_own_colours():
    v, t, uv = cube()
    red = np.zeros((12, 3, 3), np.float32)
    red[..., 0] = 0.9
    points = normalised(v, t)
    grey = encoder_views(RestyleMesh(v, t, uv), points, 32)
    coloured = encoder_views(RestyleMesh(v, t, uv, red), points, 32)
    assert grey.shape == coloured.shape == (4, 10, 32, 32)
    alpha = coloured[:, 3] > 0.5
    assert alpha.float().mean() > 0.1                             # the cube fills each view
    assert torch.equal(grey[:, 3:], coloured[:, 3:])             # same alpha and rays
    rgb = coloured[:, :3].permute(0, 2, 3, 1)[alpha]
    assert (rgb[:, 0] > rgb[:, 1] + 0.2).all() and not torch.equal(grey[:, :3], coloured[:, :3])


# ---------------------------------------------------------------- the pipeline
def test_restyle_bakes_a_texture_for_the_meshs_own_uvs(pipe, cube_file):
    seen = []
    res = pipe.restyle(cube_file, "a blue box", strength=0.7, seed=3, progress=lambda *a:
                       seen.append(a), **FAST)
    assert res.mesh is None and res.texture.shape == (64, 64, 3)
    assert res.texture.dtype == np.uint8
    stages = list(dict.fromkeys(stage for stage, _, _ in seen))
    assert stages == ["condition", "render", "encode", "sample", "decode", "texture"]
    assert [s for stage, s, _ in seen if stage == "sample" and s] == [1, 2, 3]  # 0.7 x 4
    meta = res.meta
    assert (meta["mode"], meta["prompt"], meta["strength"], meta["seed"]) == \
        ("restyle", "a blue box", 0.7, 3)
    assert meta["triangles"] == 12 and meta["texels_baked"] > 0.5
    assert "resolution" not in meta and "faces" not in meta      # no mesh is made


def test_strength_zero_keeps_the_encoded_latent_and_one_forgets_it(pipe):
    cond = pipe.encode_text(["a blue box"])
    settings = dict(seed=1, steps=4, guidance=2.0, sampler="euler")
    z0 = torch.randn(1, 3, 4, 4, 4)
    kept = pipe.sample_latent(cond, dict(settings, strength=0.0), lambda *a: None, start=z0)
    assert torch.allclose(kept, z0, atol=1e-6)
    full = [pipe.sample_latent(cond, dict(settings, strength=1.0), lambda *a: None, start=z)
            for z in (z0, z0 + 5.0)]
    assert torch.allclose(full[0], full[1], atol=1e-6)            # pure noise: no trace of z0
    half = [pipe.sample_latent(cond, dict(settings, strength=0.5), lambda *a: None, start=z)
            for z in (z0, z0 + 5.0)]
    assert not torch.allclose(half[0], half[1], atol=1e-3)


def test_the_prompt_and_seed_change_the_colours(pipe, cube_file):
    a = pipe.restyle(cube_file, "a blue box", strength=1.0, seed=1, **FAST).texture
    b = pipe.restyle(cube_file, "a blue box", strength=1.0, seed=2, **FAST).texture
    again = pipe.restyle(cube_file, "a blue box", strength=1.0, seed=1, **FAST).texture
    assert np.array_equal(a, again) and not np.array_equal(a, b)


def test_restyle_stops_at_a_cancel(pipe, cube_file):
    def progress(stage, step, total):
        if stage == "sample" and step == 1:
            raise Cancelled("job")
    with pytest.raises(Cancelled):
        pipe.restyle(cube_file, "a blue box", progress=progress, **FAST)


def test_export_writes_a_marked_texture_and_keeps_a_users_picture(pipe, cube_file, tmp_path):
    res = pipe.restyle(cube_file, "a blue box", **FAST)
    png, sidecar = pipe.export_texture(res, tmp_path / "blue.png")
    assert outputs.is_kiln_png(png) and not list(tmp_path.glob("*.part"))
    meta = json.loads(sidecar.read_text())
    assert meta["generator"] == "kiln" and meta["counts"]["texture"] == [64, 64]
    pipe.export_texture(res, png)                                # its own files: replaced
    mine = tmp_path / "mine.png"
    mine.write_bytes(texture_png(res.texture)[:8] + b"not Kiln's")
    refused(lambda: pipe.export_texture(res, mine), "will not overwrite", code=BAD_REQUEST)
    assert mine.read_bytes().endswith(b"not Kiln's")


def test_a_mesh_file_with_a_uv_map_restyles(pipe, tmp_path):
    obj = tmp_path / "quad.obj"
    obj.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\n"
                   "vt 0.1 0.1\nvt 0.9 0.1\nvt 0.9 0.9\nvt 0.1 0.9\nf 1/1 2/2 3/3\nf 1/1 3/3 4/4\n")
    mesh = load_mesh(obj, up="z")
    assert mesh.num_triangles == 2
    assert np.allclose(mesh.uvs_tx3x2[0], [[.1, .1], [.9, .1], [.9, .9]])
    assert pipe.restyle(mesh, "a blue box", **FAST).texture.shape == (64, 64, 3)
    bare = tmp_path / "bare.obj"
    bare.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nf 1 2 3\n")
    refused(lambda: load_mesh(bare), "no triangles with a UV map", "unwrap")


# ---------------------------------------------------------------- bad meshes
def test_bad_meshes_are_refused_with_the_fix(pipe, tmp_path):
    v, t, uv = cube()
    cases = {
        "no faces": (RestyleMesh(v, np.zeros((0, 3), np.int64), np.zeros((0, 3, 2))),
                     ["has no faces", "restyle an object with faces"]),
        "index": (RestyleMesh(v, t + 5, uv), ["vertices that do not exist"]),
        "nan": (RestyleMesh(np.where(v > 0, np.nan, v), t, uv), ["not finite"]),
        "uv shape": (RestyleMesh(v, t, uv[:5]), ["one UV per corner"]),
        "no uv area": (RestyleMesh(v, t, np.zeros_like(uv)), ["UV map has no area",
                                                              "Smart UV Project"]),
        "a point": (RestyleMesh(np.zeros_like(v), t, uv), ["no size"]),
        "colours": (RestyleMesh(v, t, uv, np.zeros((3, 3, 3))), ["colours of shape"]),
    }
    for name, (mesh, words) in cases.items():
        refused(lambda: pipe.restyle(mesh, "a blue box", **FAST), *words)
    refused(lambda: pipe.restyle(RestyleMesh(v, t, uv), "  ", **FAST), code=BAD_PROMPT)
    refused(lambda: pipe.restyle(RestyleMesh(v, t, uv), "a box", strength=1.5),
            "strength", "from 0.0 to 1.0", code=BAD_REQUEST)
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04 not a zip")
    refused(lambda: load_mesh(broken), "cannot be read", "press Restyle again")
    partial = tmp_path / "partial.npz"
    np.savez(partial, positions_nx3=v, triangles_tx3=t)
    refused(lambda: load_mesh(partial), "'uvs_tx3x2'")


def test_too_many_triangles_are_refused(monkeypatch):
    import engine.restyle as restyle
    monkeypatch.setattr(restyle, "MAX_RESTYLE_TRIANGLES", 10)
    v, t, uv = cube()
    refused(lambda: restyle.check_mesh(RestyleMesh(v, t, uv)), "12 triangles", "decimate")


# ---------------------------------------------------------------- the protocol's checks
def test_validate_restyle_normalises_and_refuses(cube_file, tmp_path):
    ok = protocol.validate_restyle({"type": "restyle", "mesh": cube_file, "prompt": " a box ",
                                    "seed": 3, "out": str(tmp_path / "x.png")})
    assert ok["prompt"] == "a box" and ok["strength"] == protocol.DEFAULT_STRENGTH
    assert ok["mesh"] == cube_file and ok["seed"] == 3 and "steps" not in ok
    base = {"type": "restyle", "mesh": cube_file, "prompt": "a box"}
    bad = [({"strength": 1.01}, BAD_REQUEST, "out of range"),
           ({"strength": -0.1}, BAD_REQUEST, "out of range"),
           ({"strength": float("nan")}, BAD_REQUEST, "not a number"),
           ({"strength": "half"}, BAD_REQUEST, "must be a number"),
           ({"strength": True}, BAD_REQUEST, "must be a number"),
           ({"texture": 8}, BAD_REQUEST, "from 64 to 4096"),
           ({"resolution": 64}, BAD_REQUEST, "Unknown field 'resolution'"),
           ({"prompt": ""}, BAD_PROMPT, "The prompt is empty"),
           ({"mesh": None}, BAD_MESH, "Restyle needs a mesh"),
           ({"mesh": str(tmp_path / "gone.npz")}, BAD_MESH, "does not exist"),
           ({"mesh": str(tmp_path)}, BAD_MESH, "not a file Kiln can restyle"),
           ({"mesh": cube_file + "\x00"}, BAD_REQUEST, "NUL"),
           ({"out": str(tmp_path / "x.glb")}, BAD_REQUEST, "does not end in .png"),
           ({"sampler": "ddim"}, BAD_REQUEST, "euler, heun")]
    for change, code, words in bad:
        refused(lambda: protocol.validate_restyle(dict(base, **change)), words, code=code)


# ---------------------------------------------------------------- the CLI
def cli(venv_python, repo_root, *args):
    return subprocess.run([venv_python, "-m", "engine", "restyle", *args], cwd=repo_root,
                          capture_output=True, text=True, timeout=240)


def test_cli_restyles_and_refuses_with_sentences(venv_python, repo_root, tiny_model_dir,
                                                 cube_file, tmp_path):
    out = tmp_path / "blue.png"
    done = cli(venv_python, repo_root, "--mesh", cube_file, "--prompt", "a blue box",
               "--strength", "0.6", "--texture", "64", "--model", str(tiny_model_dir),
               "--device", "cpu", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    said = json.loads(done.stdout)
    assert said["texture"] == str(out) and outputs.is_kiln_png(out)
    assert json.loads(out.with_suffix(".json").read_text())["strength"] == 0.6
    done = cli(venv_python, repo_root, "--mesh", cube_file, "--prompt", "a blue box",
               "--strength", "2", "--model", str(tiny_model_dir), "--out", str(out))
    assert done.returncode == 2 and "strength" in done.stderr and "out of range" in done.stderr
    empty = tmp_path / "empty.npz"
    np.savez(empty, positions_nx3=np.zeros((3, 3)), triangles_tx3=np.zeros((0, 3), np.int64),
             uvs_tx3x2=np.zeros((0, 3, 2)))
    done = cli(venv_python, repo_root, "--mesh", str(empty), "--prompt", "a blue box",
               "--model", str(tiny_model_dir), "--out", str(tmp_path / "e.png"))
    assert done.returncode == 2 and "error (bad_mesh)" in done.stderr
    assert "has no faces" in done.stderr and not (tmp_path / "e.png").exists()


def test_the_clis_up_axes_are_the_mesh_loaders():
    import argparse
    from engine.config import UP_ROTATIONS
    from engine.restyle_cli import add_arguments
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    up = next(a for a in parser._actions if a.dest == "up")
    assert set(up.choices) == set(UP_ROTATIONS)
    refused(lambda: load_mesh("x.obj", up="w"), "up axis 'w'")
