"""Gaussian-splat output (issue 13, item 3): the result as 3D Gaussian splats
(engine/geometry/splats.py), the 3DGS .ply (engine/io/splat_ply.py, parsed here with
plyfile as viewers parse it), Kiln's differentiable splat renderer (engine/render/splats.py)
against the mesh renderer, and `--format splat` through the CLI and the server."""

import json
import math

import numpy as np
import pytest
import torch

from engine import protocol
from engine.errors import KilnError
from engine.evaluation.metrics import psnr
from engine.geometry.splats import DEFAULT_SPLATS, Splats, splats_from_mesh, z_to
from engine.io import outputs
from engine.io.splat_ply import PROPERTIES, SH_C0, splat_ply_bytes
from engine.render.cameras import focal_length, orbit_cameras, project
from engine.render.splats import quaternion_matrices, render_splats
from engine.render.thumbnail import albedo_fn
from engine.render.tracer import render_mesh

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RES = 128                  # the comparison's image size; both renders 2 x 2 supersampled
MIN_PSNR = 25.0            # the bar: a splat render vs the mesh render
CAMERAS = orbit_cameras(4, elevation_deg=20.0, azimuth_deg=35.0)   # the thumbnail's view first
FIELDS_3DGS = (["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity"]
               + [f"scale_{i}" for i in range(3)] + [f"rot_{i}" for i in range(4)])


def mesh_render(mesh, c2w) -> dict:
    return render_mesh(torch.from_numpy(mesh.vertices_nx3), torch.from_numpy(mesh.faces_fx3),
                       c2w, res=RES, color_fn=albedo_fn(mesh), supersample=2)


def splat_render(splats: Splats, c2w, **kw) -> dict:
    return render_splats(**splats.tensors(), c2w=c2w, res=RES, supersample=2, **kw)


def compare(splats: Splats, mesh, c2w) -> dict:
    """PSNR of the splat render against the mesh render from c2w, both over white: over
    the object's box ("object": the rows and columns where either render's alpha > 0.01,
    the issue's measure), over the whole frame, and inside the object (both opaque: the
    colours alone)."""
    s, m = splat_render(splats, c2w), mesh_render(mesh, c2w)
    a, b = s["rgb"].numpy(), m["rgb"].numpy()
    sa, ma = s["alpha"].numpy(), m["alpha"].numpy()
    rows, cols = np.nonzero((sa > 0.01) | (ma > 0.01))
    box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    inside = (sa > 0.99) & (ma > 0.99)
    return {"frame": psnr(a, b), "object": psnr(a[box], b[box]),
            "inside": psnr(a[inside], b[inside]), "inside_px": int(inside.sum())}


@pytest.fixture(scope="module")
def result(pipe):
    return pipe.text_to_3d("a red chair", seed=3, steps=2, resolution=48, faces=4000)


@pytest.fixture(scope="module")
def written(pipe, result, tmp_path_factory):
    out = tmp_path_factory.mktemp("splat") / "chair.ply"
    ply, sidecar = pipe.export_splat(result, out)
    return ply, sidecar


# ----------------------------------------------------------------------------- the .ply

def test_the_ply_parses_with_plyfile_with_every_field_a_viewer_needs(written, result):
    from plyfile import PlyData
    ply_path, sidecar = written
    ply = PlyData.read(str(ply_path))
    assert ply.text is False and ply.byte_order == "<"          # binary_little_endian
    vertex = ply["vertex"]
    assert vertex.count == DEFAULT_SPLATS
    names = [p.name for p in vertex.properties]
    assert names == PROPERTIES                                  # the reference layout
    assert all(n in names for n in FIELDS_3DGS + [f"f_rest_{i}" for i in range(45)])
    assert all(p.val_dtype in ("f4", "float32", "float") for p in vertex.properties)
    data = {n: np.asarray(vertex[n], np.float64) for n in names}
    assert all(np.isfinite(v).all() for v in data.values())
    quats = np.stack([data[f"rot_{i}"] for i in range(4)], 1)
    assert np.allclose(np.linalg.norm(quats, axis=1), 1.0, atol=1e-5)
    alpha = 1 / (1 + np.exp(-data["opacity"]))
    assert (alpha > 0.5).all() and (alpha < 1).all()
    scales = np.exp(np.stack([data[f"scale_{i}"] for i in range(3)], 1))
    assert (scales[:, 2] < scales[:, 0]).all()                   # flat along the normal
    rgb = 0.5 + SH_C0 * np.stack([data[f"f_dc_{i}"] for i in range(3)], 1)
    assert rgb.min() >= -1e-5 and rgb.max() <= 1 + 1e-5
    assert not any(np.any(data[f"f_rest_{i}"]) for i in range(45))
    # the splats lie on the result's surface: near its vertices, within its bounds
    means = np.stack([data["x"], data["y"], data["z"]], 1)
    lo, hi = result.mesh.vertices_nx3.min(0), result.mesh.vertices_nx3.max(0)
    assert (means > lo - 0.05).all() and (means < hi + 0.05).all()
    from scipy.spatial import cKDTree
    gap, _ = cKDTree(result.mesh.vertices_nx3).query(means)
    assert np.percentile(gap, 99) < 0.05
    # the sidecar and the thumbnail beside it are Kiln's
    meta = json.loads(sidecar.read_text())
    assert meta["generator"] == "kiln" and meta["format"] == "splat"
    assert meta["counts"]["splats"] == DEFAULT_SPLATS and meta["prompt"] == "a red chair"
    assert "splat" in meta["timings"] and meta["thumbnail"] == "chair.png"
    assert outputs.is_kiln_png(ply_path.with_suffix(".png"))
    assert "generator kiln" in ply.comments


def test_the_writer_keeps_what_it_is_given():
    """Colours, opacities, scales and rotations survive the .ply as 3DGS defines them."""
    from plyfile import PlyData
    import io
    rng = np.random.default_rng(0)
    n = 50
    normals = rng.normal(size=(n, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    s = Splats(means_nx3=rng.normal(size=(n, 3)).astype(np.float32),
               normals_nx3=normals.astype(np.float32),
               colors_nx3=rng.random((n, 3)).astype(np.float32),
               opacities_n=rng.uniform(0.1, 0.9, n).astype(np.float32),
               scales_nx3=rng.uniform(0.001, 0.1, (n, 3)).astype(np.float32),
               rotations_nx4=z_to(normals))
    v = PlyData.read(io.BytesIO(splat_ply_bytes(s)))["vertex"]
    assert np.allclose(np.stack([v["x"], v["y"], v["z"]], 1), s.means_nx3)
    rgb = 0.5 + SH_C0 * np.stack([v[f"f_dc_{i}"] for i in range(3)], 1)
    assert np.allclose(rgb, s.colors_nx3, atol=1e-5)
    assert np.allclose(1 / (1 + np.exp(-v["opacity"])), s.opacities_n, atol=1e-5)
    assert np.allclose(np.exp(np.stack([v[f"scale_{i}"] for i in range(3)], 1)), s.scales_nx3,
                       rtol=1e-5)


def test_rotations_turn_the_splat_z_axis_onto_the_normal():
    normals = np.array([[0, 0, 1], [0, 0, -1], [1, 0, 0], [0, -1, 0], [0.6, 0.0, -0.8],
                        [0.48, 0.6, 0.64]], np.float64)
    rot = quaternion_matrices(torch.from_numpy(z_to(normals)).double()).numpy()
    assert np.allclose(rot[:, :, 2], normals, atol=1e-6)        # local +z -> the normal
    assert np.allclose(rot @ rot.transpose(0, 2, 1), np.eye(3), atol=1e-6)


# ----------------------------------------------------------------------------- the renderer

def test_one_splat_lands_where_the_camera_projects_it_with_its_mass():
    """A round splat facing the camera: its alpha is centred on cameras.project's pixel
    and sums to opacity x 2 pi sigma^2 (in pixels), the dilation keeping its mass."""
    c2w = CAMERAS[0]
    point = torch.tensor([[0.1, -0.05, 0.2]])
    normal = c2w[:3, 3] - point[0]
    normal = (normal / normal.norm()).numpy()[None]
    sigma, opacity, res = 0.02, 0.3, 96
    out = render_splats(point, torch.tensor([[sigma, sigma, sigma / 10]]),
                        torch.from_numpy(z_to(normal)), torch.tensor([[1.0, 0.0, 0.0]]),
                        torch.tensor([opacity]), c2w, res=res, background=0.0)
    uv, z = project(point, c2w, 40.0, res)
    alpha = out["alpha"]
    rows, cols = torch.meshgrid(torch.arange(res) + 0.5, torch.arange(res) + 0.5, indexing="ij")
    centre = torch.stack([(alpha * cols).sum(), (alpha * rows).sum()]) / alpha.sum()
    assert torch.allclose(centre, uv[0], atol=0.05)
    sigma_px = sigma * focal_length(40.0, res) / float(z[0])
    assert math.isclose(float(alpha.sum()), opacity * 2 * math.pi * sigma_px ** 2, rel_tol=0.03)
    assert torch.allclose(out["rgb"][..., 0], alpha, atol=1e-6)   # red over black
    assert float(out["rgb"][..., 1:].abs().max()) < 1e-6


def test_front_splats_hide_back_ones_in_depth_order():
    """Two opaque splats on one line of sight, given in either order: the nearer colour."""
    c2w = CAMERAS[0]
    eye = c2w[:3, 3]
    towards = -eye / eye.norm()
    means = torch.stack([eye + 2.0 * towards, eye + 2.6 * towards])
    normal = (-towards).numpy()[None].repeat(2, 0)
    colours = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    for order in ([0, 1], [1, 0]):
        out = render_splats(means[order], torch.full((2, 3), 0.2),
                            torch.from_numpy(z_to(normal))[order], colours[order],
                            torch.full((2,), 0.99), c2w, res=32)
        centre = out["rgb"][16, 16]
        assert centre[0] > 0.9 and centre[2] < 0.1, (order, centre)


def test_row_bands_do_not_change_the_picture(result):
    """Few pairs per band (many bands) and one band give the same image."""
    splats = splats_from_mesh(result.mesh, count=4096)
    one = render_splats(**splats.tensors(), c2w=CAMERAS[1], res=64)
    many = render_splats(**splats.tensors(), c2w=CAMERAS[1], res=64, chunk=2000)
    assert torch.allclose(one["rgb"], many["rgb"], atol=1e-5)
    assert torch.allclose(one["alpha"], many["alpha"], atol=1e-5)


def test_gradients_flow_to_every_splat_parameter_and_match_finite_differences():
    rng = np.random.default_rng(1)
    n = 40
    normals = rng.normal(size=(n, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    params = {"means_nx3": torch.tensor(rng.uniform(-0.3, 0.3, (n, 3))),
              "scales_nx3": torch.tensor(rng.uniform(0.03, 0.08, (n, 3))),
              "quats_nx4": torch.from_numpy(z_to(normals)).double(),
              "colors_nx3": torch.tensor(rng.random((n, 3))),
              "opacities_n": torch.tensor(rng.uniform(0.3, 0.8, n))}
    for p in params.values():
        p.requires_grad_(True)
    target = torch.tensor(rng.random((24, 24, 3)))
    c2w = CAMERAS[2].double()

    def loss_of(**kw):
        return ((render_splats(**kw, c2w=c2w, res=24)["rgb"] - target) ** 2).mean()

    loss = loss_of(**params)
    loss.backward()
    for name, p in params.items():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    # the analytic derivative along a random direction matches central differences
    for name in ("means_nx3", "scales_nx3", "colors_nx3", "opacities_n"):
        direction = torch.tensor(rng.normal(size=params[name].shape))
        eps = 1e-6
        with torch.no_grad():
            plus = {k: (v + eps * direction if k == name else v) for k, v in params.items()}
            minus = {k: (v - eps * direction if k == name else v) for k, v in params.items()}
            numeric = (loss_of(**plus) - loss_of(**minus)) / (2 * eps)
        analytic = (params[name].grad * direction).sum()
        assert math.isclose(float(analytic), float(numeric), rel_tol=1e-3, abs_tol=1e-9), name


def test_a_few_steps_of_gradient_descent_fit_splat_colours_to_a_picture(result):
    """The renderer is differentiable end to end: grey splats learn the mesh's colours."""
    splats = splats_from_mesh(result.mesh, count=4096)
    t = splats.tensors()
    target = render_splats(**t, c2w=CAMERAS[0], res=48)["rgb"]
    logits = torch.zeros_like(t["colors_nx3"], requires_grad=True)
    optimiser = torch.optim.Adam([logits], lr=0.2)
    losses = []
    for _ in range(25):
        out = render_splats(**dict(t, colors_nx3=torch.sigmoid(logits)), c2w=CAMERAS[0], res=48)
        loss = ((out["rgb"] - target) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.2 * losses[0], losses


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_the_renderer_draws_the_same_picture_on_cuda(result):
    splats = splats_from_mesh(result.mesh, count=8192)
    cpu = render_splats(**splats.tensors(), c2w=CAMERAS[0], res=64)
    gpu = render_splats(**splats.tensors("cuda"), c2w=CAMERAS[0].cuda(), res=64)
    assert gpu["rgb"].device.type == "cuda"
    assert torch.allclose(cpu["rgb"], gpu["rgb"].cpu(), atol=1e-4)
    t = splats.tensors("cuda")
    t["colors_nx3"].requires_grad_(True)
    render_splats(**t, c2w=CAMERAS[0], res=64)["rgb"].sum().backward()
    assert torch.isfinite(t["colors_nx3"].grad).all() and t["colors_nx3"].grad.abs().sum() > 0


# ----------------------------------------------------------------------------- splats vs mesh

def test_the_splat_render_matches_the_mesh_render_from_the_same_camera(pipe, result):
    """The tiny model's result (splats in the field's colours on the field's surface)
    against its textured mesh, from four orbit cameras."""
    splats = splats_from_mesh(result.mesh, rgb_fn=pipe.field_fns(result.planes)[1],
                              sdf_fn=pipe.field_fns(result.planes)[0])
    for c2w in CAMERAS:
        seen = compare(splats, result.mesh, c2w)
        assert seen["object"] >= MIN_PSNR, seen
        assert seen["inside"] >= 30.0 and seen["inside_px"] > 200, seen


def test_the_comparison_fails_for_wrong_colours_or_a_wrong_place(result):
    """The check can fail: the same splats in inverted colours, or moved up by 0.05."""
    splats = splats_from_mesh(result.mesh)
    assert compare(splats, result.mesh, CAMERAS[0])["object"] >= MIN_PSNR
    inverted = Splats(**dict(vars(splats), colors_nx3=1.0 - splats.colors_nx3))
    assert compare(inverted, result.mesh, CAMERAS[0])["object"] < MIN_PSNR - 5
    moved = Splats(**dict(vars(splats), means_nx3=splats.means_nx3 + np.float32([0, 0, 0.05])))
    assert compare(moved, result.mesh, CAMERAS[0])["object"] < MIN_PSNR


@pytest.fixture(scope="module")
def mini():
    from engine.pipeline import Pipeline
    return Pipeline.from_pretrained("kiln-mini", device="cpu")


def test_kiln_mini_red_chair_as_splats_matches_its_mesh(mini, tmp_path):
    """The shipped model's "a red chair" through export_splat: the .ply read back (by
    plyfile) renders like the GLB's mesh from the thumbnail's camera and three more."""
    from plyfile import PlyData
    res = mini.text_to_3d("a red chair", seed=1, resolution=96)
    ply, _ = mini.export_splat(res, tmp_path / "chair.ply")
    v = PlyData.read(str(ply))["vertex"]
    col = lambda *names: np.stack([np.asarray(v[n], np.float32) for n in names], 1)  # noqa: E731
    splats = Splats(means_nx3=col("x", "y", "z"), normals_nx3=col("nx", "ny", "nz"),
                    colors_nx3=np.clip(0.5 + SH_C0 * col("f_dc_0", "f_dc_1", "f_dc_2"), 0, 1),
                    opacities_n=1 / (1 + np.exp(-np.asarray(v["opacity"], np.float32))),
                    scales_nx3=np.exp(col("scale_0", "scale_1", "scale_2")),
                    rotations_nx4=col("rot_0", "rot_1", "rot_2", "rot_3"))
    red = splats.colors_nx3.mean(0)
    assert red[0] > red[1] + 0.2 and red[0] > red[2] + 0.2, red
    for c2w in CAMERAS:
        seen = compare(splats, res.mesh, c2w)
        assert seen["object"] >= MIN_PSNR, seen
        assert seen["inside"] >= 30.0, seen
        print(f"kiln-mini a red chair: {seen}")


# ----------------------------------------------------------------------------- protocol, CLI

def test_the_format_field_is_checked_and_names_the_ply():
    assert protocol.validate_generate({"type": "generate", "prompt": "a mug"})["format"] == "glb"
    ok = protocol.validate_generate({"type": "generate", "prompt": "a mug", "format": "splat",
                                     "out": "/tmp/mug.ply"})
    assert ok["format"] == "splat" and ok["out"].endswith("mug.ply")
    with pytest.raises(KilnError, match=r"does not end in \.ply.*chair\.ply"):
        protocol.validate_generate({"type": "generate", "prompt": "a mug", "format": "splat",
                                    "out": "/tmp/mug.glb"})
    with pytest.raises(KilnError, match="format.*glb, splat"):
        protocol.validate_generate({"type": "generate", "prompt": "a mug", "format": "obj"})
    with pytest.raises(KilnError, match=r"does not end in \.ply"):
        outputs.check_writable("/tmp/mug.glb", ".ply")


def test_a_ply_kiln_did_not_write_is_never_replaced(pipe, result, tmp_path):
    theirs = tmp_path / "scan.ply"
    theirs.write_bytes(b"ply\nformat ascii 1.0\nend_header\n")
    with pytest.raises(KilnError, match="will not overwrite"):
        pipe.export_splat(result, theirs)
    assert theirs.read_bytes().startswith(b"ply\nformat ascii")


def test_cli_format_splat_writes_the_ply_and_its_sidecar(venv_python, repo_root, tiny_model_dir,
                                                        tmp_path):
    import subprocess
    out = tmp_path / "chair.ply"
    done = subprocess.run([venv_python, "-m", "engine", "generate", "--prompt", "a red chair",
                           "--format", "splat", "--out", str(out), "--model",
                           str(tiny_model_dir), "--device", "cpu", "--steps", "2",
                           "--resolution", "48", "--faces", "3000"],
                          cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["ply"] == str(out) and out.read_bytes().startswith(b"ply\n")
    assert json.loads(out.with_suffix(".json").read_text())["format"] == "splat"
    wrong = subprocess.run([venv_python, "-m", "engine", "generate", "--prompt", "a red chair",
                            "--format", "splat", "--out", str(tmp_path / "x.glb"), "--model",
                            str(tiny_model_dir)], cwd=repo_root, capture_output=True, text=True,
                           timeout=120)
    assert wrong.returncode == 2 and "does not end in .ply" in wrong.stderr


def test_the_server_answers_a_splat_request_with_the_ply(venv_python, tiny_model_dir, tmp_path):
    from serving import run_job, warm_engine
    with warm_engine(venv_python, tiny_model_dir, tmp_path) as client:
        final, _ = run_job(client, client.generate, prompt="a red chair", seed=2, steps=2,
                           resolution=48, faces=3000, format="splat")
    assert final["type"] == "result", final
    assert "glb" not in final and final["ply"].endswith(".ply")
    from plyfile import PlyData
    assert PlyData.read(final["ply"])["vertex"].count == final["meta"]["splats"]
    assert final["meta"]["format"] == "splat"
