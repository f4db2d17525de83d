"""Issue 12's modes on the tiny random model: several pictures -> 3D (views), Surprise me
(unconditional), refine, and the sampler, through the pipeline, the CLI and the protocol
(the server's own process is driven in tests/engine/test_server_modes.py)."""

import json
import subprocess

import numpy as np
import pytest
import torch

from engine import protocol
from engine.errors import BAD_IMAGE, BAD_PROMPT, BAD_REQUEST, Cancelled

from refusals import refusal

FAST = dict(resolution=32, texture_mode="vertex")


def block(colour=(200, 40, 40), size=48, box=(12, 36, 16, 32)) -> np.ndarray:
    """An opaque block on a transparent background (H, W, 4) uint8."""
    rgba = np.zeros((size, size, 4), np.uint8)
    y0, y1, x0, x1 = box
    rgba[y0:y1, x0:x1] = (*colour, 255)
    return rgba


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> list[str]:
    """Two picture files on white (no alpha): the corner colour is keyed out."""
    from PIL import Image
    folder = tmp_path_factory.mktemp("pictures")
    paths = []
    for name, box in (("front.png", (12, 36, 16, 32)), ("side.png", (12, 36, 8, 40))):
        rgb = np.full((48, 48, 3), 255, np.uint8)
        rgb[box[0]:box[1], box[2]:box[3]] = (40, 90, 200)
        Image.fromarray(rgb).save(folder / name)
        paths.append(str(folder / name))
    return paths


refused = refusal(BAD_REQUEST)


# ---------------------------------------------------------------- cameras and framing
def test_directions_follow_blenders_views():
    """Azimuth 0 is Blender's Front view (camera on -Y), 90 its Right (+X), 180 Back,
    270 Left; elevation 90 is Top; every camera looks at the origin from the training
    distance, and the protocol's presets name the same directions."""
    from engine.posed import picture_cameras
    from engine.render.cameras import ORBIT_RADIUS
    names = ("front", "right", "back", "left", "top")
    az, el = zip(*(protocol.DIRECTIONS[n] for n in names))
    c2w = picture_cameras(az, [0.0, 0.0, 0.0, 0.0, 90.0])
    where = c2w[:, :3, 3] / ORBIT_RADIUS
    expected = torch.tensor([[0, -1, 0], [1, 0, 0], [0, 1, 0], [-1, 0, 0], [0, 0, 1.0]])
    assert torch.allclose(where, expected, atol=1e-6)
    assert torch.allclose(c2w[:, :3, 2], -expected, atol=1e-6)        # looking at the origin


def test_posed_views_are_the_encoders_training_input(tmp_path):
    """Pictures rendered from known directions come out as the training views of those
    cameras: the same Plücker rays (same convention, same field of view) and nearly the
    same silhouette after background removal and framing."""
    from engine.data import make_asset
    from engine.evaluation.run import render_views
    from engine.posed import picture_cameras, posed_views
    asset = make_asset(10**8 + 3, "bowl")
    dirs = [(30.0, 15.0), (120.0, 35.0)]
    cams = picture_cameras(*zip(*dirs))
    truth, _ = render_views(asset.sdf, asset.rgb, cams, 32)                # (2, 10, 32, 32)
    rgba = [v[:4].permute(1, 2, 0).numpy() for v in truth]
    got = posed_views(rgba, *zip(*dirs), 32)
    assert got.shape == (2, 10, 32, 32)
    assert torch.allclose(got[:, 4:], truth[:, 4:], atol=1e-5)
    inside, seen = got[:, 3] > 0.5, truth[:, 3] > 0.5
    iou = (inside & seen).sum() / (inside | seen).sum()
    assert iou > 0.75, float(iou)


def test_pictures_taken_alike_keep_their_relative_sizes():
    """One scale for all pictures: a wide view and a narrow view of one object stay wide
    and narrow, and the widest reaches REACH of the frame."""
    from engine.imaging import _extent, frame_alike
    from engine.posed import REACH
    wide, narrow = block(box=(12, 36, 4, 44)), block(box=(12, 36, 18, 30))
    framed = frame_alike([wide, narrow], 64, REACH)
    widths = [(f[3] > 0.5).any(0).sum().item() for f in framed]
    assert widths[0] > 2 * widths[1]
    reach = _extent(framed[0].permute(1, 2, 0).numpy(), 0, 1)[1]
    assert reach == pytest.approx(REACH, abs=0.03)


# ---------------------------------------------------------------- views mode
def test_views_mode_makes_a_mesh_from_two_posed_pictures(pipe, pictures):
    calls = []
    res = pipe.views_to_3d([{"image": pictures[0], "direction": "front"},
                            {"image": pictures[1], "azimuth": 90, "elevation": 10}],
                           progress=lambda *a: calls.append(a), **FAST)
    assert res.mesh.num_faces > 100
    assert res.meta["mode"] == "views"
    assert [(v["azimuth"], v["elevation"]) for v in res.meta["views"]] == [(0.0, 20.0),
                                                                          (90.0, 10.0)]
    assert res.meta["views"][0]["image"] == pictures[0]
    assert not {"steps", "guidance", "sampler"} & set(res.meta)    # no sampling here
    assert list(res.timings) == ["encode", "decode", "extract", "texture"]
    assert [c[0] for c in calls][0] == "encode"


def test_the_direction_of_a_picture_reaches_the_encoder(pipe):
    """The same picture from the front or from the side is another object: its rays
    differ, and so does the latent, and so the mesh."""
    run = lambda az: pipe.views_to_3d([{"image": block(), "azimuth": az}],  # noqa: E731
                                      **FAST).mesh.vertices_nx3
    front, side = run(0), run(90)
    assert front.shape != side.shape or not np.allclose(front, side)
    np.testing.assert_array_equal(front, run(0))                 # and it is deterministic


@pytest.mark.parametrize("views, code, words", [
    ([], BAD_IMAGE, ("needs 1 to 4 pictures and got none",)),
    ([{"image": "x", "direction": "front"}] * 5, BAD_IMAGE, ("takes 1 to 4", "got 5",
                                                               "leave 1 out")),
    ([{"image": "x", "azimuth": 400}], BAD_REQUEST, ("Picture 1 of 1", '"azimuth"', "400",
                                                     "from -360.0 to 360.0")),
    ([{"image": "x", "azimuth": 0}, {"image": "y", "azimuth": 0, "elevation": -95}],
     BAD_REQUEST, ("Picture 2 of 2", '"elevation"', "from -90.0 to 90.0")),
    ([{"image": "x", "direction": "below"}], BAD_REQUEST, ("direction 'below'",
                                                          "front, right, back, left, top")),
    ([{"image": "x"}], BAD_REQUEST, ("has no direction",)),
], ids=["0-pictures", "5-pictures", "azimuth-400", "elevation--95", "unknown-preset",
        "no-direction"])
def test_views_mode_refuses_bad_counts_and_directions_before_any_work(pipe, views, code,
                                                                     words):
    refused(lambda: pipe.views_to_3d(views, **FAST), *words, code=code)


def test_a_picture_with_nothing_on_it_is_named(pipe):
    blank = np.zeros((32, 32, 4), np.uint8)
    refused(lambda: pipe.views_to_3d([{"image": block(), "direction": "front"},
                                      {"image": blank, "direction": "back"}], **FAST),
            "Picture 2 of 2 is empty after background removal", code=BAD_IMAGE)


# ---------------------------------------------------------------- surprise me
def test_surprise_me_samples_the_null_condition(pipe, monkeypatch):
    """No prompt, no text encoder: the DiT's null condition; deterministic per seed;
    guidance plays no part (it is not recorded)."""
    monkeypatch.setattr(type(pipe), "text_encoder", property(lambda self: 1 / 0))
    run = lambda seed, **kw: pipe.unconditional_to_3d(seed=seed, **FAST, **kw)  # noqa: E731
    first, again, other = run(3), run(3, guidance=9.0), run(4)
    np.testing.assert_array_equal(first.mesh.vertices_nx3, again.mesh.vertices_nx3)
    assert not np.array_equal(first.mesh.vertices_nx3, other.mesh.vertices_nx3)
    assert first.meta["mode"] == "unconditional" and "guidance" not in first.meta
    assert "prompt" not in first.meta and first.meta["steps"] == pipe.config.sampling.steps


def test_an_empty_prompt_stays_an_error_in_text_mode(pipe):
    refused(lambda: pipe.text_to_3d("  ", **FAST), "The prompt is empty", code=BAD_PROMPT)
    refused(lambda: protocol.validate_generate({"mode": "text", "prompt": ""}),
            "The prompt is empty", code=BAD_PROMPT)
    assert protocol.validate_generate({"mode": "unconditional"})["prompt"] == ""


# ---------------------------------------------------------------- refine
def _render_loss(vae, z, views):
    """L1 colour + mask of the field of z against the views, at every pixel."""
    from engine.refine import rays_of, render_lit
    rgb, alpha, origins, dirs = rays_of(views)
    with torch.no_grad():
        colour, got = render_lit(vae.field, vae.decoder(z), origins[None], dirs[None],
                                 generator=torch.Generator().manual_seed(0))
    return float((colour[0] - rgb).abs().mean() + (got[0] - alpha).abs().mean())


def test_refine_brings_the_render_closer_to_the_pictures(pipe):
    from engine.posed import posed_views
    from engine.refine import refine_latent
    vae = pipe.model.vae
    views = posed_views([block(), block(box=(8, 40, 20, 28))], [0.0, 90.0], [20.0, 20.0],
                        pipe.config.vae.image_size)
    with torch.no_grad():
        z0 = vae.encoder(views[None])[0]
    steps = []
    z = refine_latent(vae, z0, views, 15, seed=1, report=lambda i, n: steps.append((i, n)))
    assert steps == [(i, 15) for i in range(1, 16)]
    assert _render_loss(vae, z, views) < 0.9 * _render_loss(vae, z0, views)
    assert all(p.grad is None for p in pipe.model.parameters())   # only z was optimised


def test_refine_is_a_stage_with_a_report_per_step_and_cancel(pipe):
    calls = []

    def progress(stage, step, total):
        calls.append((stage, step, total))
        if (stage, step) == ("refine", 2):
            raise Cancelled("job")

    with pytest.raises(Cancelled):
        pipe.views_to_3d([{"image": block(), "direction": "front"}], refine_steps=5,
                         progress=progress, **FAST)
    assert calls[-2:] == [("refine", 1, 5), ("refine", 2, 5)]
    res = pipe.views_to_3d([{"image": block(), "direction": "front"}], refine_steps=2, **FAST)
    assert list(res.timings) == ["encode", "refine", "decode", "extract", "texture"]
    assert res.meta["refine_steps"] == 2


def test_image_mode_refines_from_the_camera_that_matches_its_picture(pipe, monkeypatch):
    from engine import refine
    from engine.posed import with_rays
    from engine.render.cameras import orbit_cameras
    vae = pipe.model.vae
    with torch.no_grad():
        planes = vae.decoder(torch.randn(1, 3, 4, 4, 4, generator=torch.Generator().manual_seed(5)))
    small = refine.RefineSettings(pose_azimuths=6, pose_elevations=(10.0, 40.0), pose_res=16)
    truth = orbit_cameras(1, azimuth_deg=[120.0], elevation_deg=[40.0])[0]
    target = with_rays(torch.ones(1, 4, 16, 16), truth[None])
    from engine.refine import rays_of, render_lit
    _, _, origins, dirs = rays_of(target)
    with torch.no_grad():
        colour, alpha = render_lit(vae.field, planes, origins[None], dirs[None], small)
    picture = torch.cat([colour[0], alpha[0, :, None]], 1).T.reshape(4, 16, 16)
    assert torch.allclose(refine.find_camera(vae, planes, picture, small), truth, atol=1e-5)
    res = pipe.image_to_3d(block(), seed=1, refine_steps=2, **FAST)
    assert res.meta["refine_steps"] == 2 and "refine" in res.timings


@pytest.mark.parametrize("call, words", [
    (lambda p: p.text_to_3d("a mug", refine_steps=3, **FAST), ("text mode has none",)),
    (lambda p: p.unconditional_to_3d(refine_steps=1, **FAST), ("unconditional mode",)),
    (lambda p: p.image_to_3d(block(), refine_steps=101, **FAST), ("is 101, out of range",
                                                                  "from 0 to 100")),
    (lambda p: p.views_to_3d([{"image": block(), "direction": "top"}], refine_steps=-1),
     ("is -1, out of range",)),
], ids=["text", "unconditional", "101-steps", "negative-steps"])
def test_refine_out_of_place_or_range_is_refused(pipe, call, words):
    refused(lambda: call(pipe), '"refine_steps"', *words)


# ---------------------------------------------------------------- sampler
def test_the_sampler_is_chosen_per_request(pipe):
    run = lambda sampler: pipe.text_to_3d("a mug", seed=1, sampler=sampler,  # noqa: E731
                                          **FAST)
    euler, heun = run("euler"), run("heun")
    assert (euler.meta["sampler"], heun.meta["sampler"]) == ("euler", "heun")
    assert not np.array_equal(euler.mesh.vertices_nx3, heun.mesh.vertices_nx3)
    refused(lambda: run("ddim"), "Unknown sampler 'ddim'", "euler, heun")


# ---------------------------------------------------------------- protocol
def test_protocol_normalises_a_views_request(pictures):
    got = protocol.validate_generate({
        "type": "generate", "views": [{"image": pictures[0], "direction": "back"},
                                      {"image": pictures[1], "azimuth": -90}],
        "refine_steps": 4, "sampler": "heun", "extractor": "flexicubes"})
    assert got["mode"] == "views" and got["prompt"] == "" and got["image"] is None
    assert got["views"] == [{"image": pictures[0], "azimuth": 180.0, "elevation": 20.0},
                            {"image": pictures[1], "azimuth": 270.0, "elevation": 20.0}]
    assert (got["refine_steps"], got["sampler"], got["extractor"]) == (4, "heun", "flexicubes")


@pytest.mark.parametrize("msg, code, words", [
    ({"mode": "views"}, BAD_IMAGE, "needs 1 to 4 pictures and got none"),
    ({"views": "a.png"}, BAD_REQUEST, '"views" field must be a list'),
    ({"views": [{"image": "/no/such.png", "direction": "front"}]}, BAD_IMAGE,
     "Picture 1 of 1: the image '/no/such.png' does not exist"),
    ({"views": [{"direction": "front"}]}, BAD_IMAGE, 'Picture 1 of 1 has no "image"'),
    ({"views": [{"image": "PIC", "direction": "front", "azimuth": 10}]}, BAD_REQUEST,
     'gives both a "direction" and angles'),
    ({"views": [{"image": "PIC", "azimuth": "left"}]}, BAD_REQUEST, "must be a number"),
    ({"views": [{"image": "PIC", "azimuth": 0, "roll": 5}]}, BAD_REQUEST,
     "unknown field 'roll'"),
    ({"views": ["PIC"]}, BAD_REQUEST, "must be an object"),
    ({"prompt": "a", "sampler": "ddim"}, BAD_REQUEST, '"sampler" field is \'ddim\''),
    ({"prompt": "a", "refine_steps": 2}, BAD_REQUEST, "text mode has none"),
    ({"image": "PIC", "refine_steps": 1000}, BAD_REQUEST, "from 0 to 100"),
    ({"prompt": "a", "mode": "surprise"}, BAD_REQUEST,
     "use one of text, image, views, unconditional"),
])
def test_protocol_refuses_bad_views_samplers_and_refine_with_a_sentence(pictures, msg, code,
                                                                       words):
    text = json.dumps(msg).replace("PIC", pictures[0])
    err = refused(lambda: protocol.validate_generate(json.loads(text)), words, code=code)
    assert err.message.endswith(".")


# ---------------------------------------------------------------- CLI
def _cli(venv_python, repo_root, model, *argv):
    cmd = [venv_python, "-m", "engine", "generate", "--model", str(model), "--device", "cpu",
           *argv]
    return subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=300)


def test_cli_views_with_refine_and_surprise_me_write_results(venv_python, repo_root,
                                                            tiny_model_dir, pictures,
                                                            tmp_path):
    views = _cli(venv_python, repo_root, tiny_model_dir, "--views", *pictures, "--azimuths",
                 "0", "90", "--elevations", "10", "30", "--refine-steps", "2",
                 "--resolution", "32", "--vertex-colors", "--out", str(tmp_path / "v.glb"))
    assert views.returncode == 0, views.stderr
    side = json.loads((tmp_path / "v.json").read_text())
    assert side["mode"] == "views" and side["refine_steps"] == 2
    assert [(v["azimuth"], v["elevation"]) for v in side["views"]] == [(0, 10), (90, 30)]
    assert "refine" in side["timings"]
    surprise = _cli(venv_python, repo_root, tiny_model_dir, "--unconditional", "--seed", "5",
                    "--sampler", "heun", "--resolution", "32", "--vertex-colors",
                    "--out", str(tmp_path / "u.glb"))
    assert surprise.returncode == 0, surprise.stderr
    side = json.loads((tmp_path / "u.json").read_text())
    assert (side["mode"], side["seed"], side["sampler"]) == ("unconditional", 5, "heun")


@pytest.mark.parametrize("flags, words", [
    (["--views"], "needs 1 to 4 pictures and got none"),
    (["--views", "P", "P", "P", "P", "P", "--directions", *["front"] * 5], "got 5"),
    (["--views", "P", "--azimuths", "400"], "is 400.0, out of range"),
    (["--views", "P", "--directions", "below"], "invalid choice: 'below'"),
    (["--views", "P", "P", "--azimuths", "0"], "--azimuths has 1 value(s)"),
    (["--views", "P"], "Give each --views picture its direction"),
    (["--views", "P", "--azimuths", "0", "--directions", "front"], "not both"),
    (["--prompt", "a mug", "--azimuths", "0"], "add --views PICTURE"),
    (["--prompt", "a mug", "--refine-steps", "2"], "text mode has none"),
    (["--unconditional", "--refine-steps", "2"], "unconditional mode has none"),
    (["--image", "P", "--refine-steps", "101"], "from 0 to 100"),
], ids=["0-pictures", "5-pictures", "azimuth-400", "unknown-direction", "count-mismatch",
        "no-direction", "two-ways", "angles-without-views", "refine-text",
        "refine-unconditional", "refine-101"])
def test_cli_refuses_bad_views_and_refine_before_loading_a_model(venv_python, repo_root,
                                                                 pictures, tmp_path, flags,
                                                                 words):
    argv = [pictures[0] if f == "P" else f for f in flags]
    done = _cli(venv_python, repo_root, tmp_path / "no-model", *argv, "--out",
                str(tmp_path / "x.glb"))
    assert done.returncode == 2 and words in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not (tmp_path / "x.glb").exists()
