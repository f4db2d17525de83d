"""`train all` on a folder of meshes, end to end, with tiny caps: a model folder that
generate and doctor load; broken files reported, not fatal; resumable; --init replays."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

trimesh = pytest.importorskip("trimesh")


def _dumbbell(r: float, length: float):
    parts = [trimesh.creation.icosphere(2, r).apply_translation([0, length / 2, 0]),
             trimesh.creation.icosphere(2, r).apply_translation([0, -length / 2, 0]),
             trimesh.creation.cylinder(0.06, length, sections=12).apply_transform(
                 trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))]
    return trimesh.util.concatenate(parts)      # overlapping parts: not one closed surface


def _cone(h: float):
    cone = trimesh.creation.cone(0.35, h, sections=16).apply_transform(
        trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]))   # Y-up
    return trimesh.util.concatenate([cone, trimesh.creation.box((0.8, 0.08, 0.8))])


def _textured(mesh):
    from PIL import Image
    img = np.zeros((8, 8, 3), np.uint8)
    img[:, :4], img[:, 4:] = [250, 200, 0], [200, 0, 0]
    uv = (mesh.vertices[:, [0, 2]] - mesh.vertices[:, [0, 2]].min(0)) / np.ptp(mesh.vertices[:, [0, 2]], 0)
    mesh.visual = trimesh.visual.TextureVisuals(uv=uv, image=Image.fromarray(img))
    return mesh


def make_library(folder):
    """13 meshes in 3 categories (OBJ and GLB; textured, vertex-coloured and plain; some
    not watertight) and one broken file."""
    folder.mkdir()
    rows = []
    for i in range(4):
        m = _dumbbell(0.2 + 0.04 * i, 1.2 + 0.1 * i)
        m.visual.vertex_colors = [60 * i, 60, 200, 255]
        name = f"dumbbell_{i}.{'glb' if i % 2 else 'obj'}"
        m.export(folder / name)
        rows.append(f"{name},a blue dumbbell,dumbbell\n")
    for i in range(5):
        m = trimesh.creation.torus(0.55, 0.08 + 0.02 * i, major_sections=24, minor_sections=8)
        if i == 1:
            m = _textured(m)
        if i == 2:
            m.update_faces(np.arange(len(m.faces)) > 7)         # a hole: not watertight
        m.export(folder / f"ring_{i}.glb")
        rows.append(f"ring_{i}.glb,a golden ring,ring\n")
    sub = folder / "cones"
    sub.mkdir()
    for i in range(4):
        m = _cone(0.8 + 0.15 * i)
        m.visual.face_colors = [240, 120, 0, 255]
        name = f"traffic_cone_{i}.{'obj' if i % 2 else 'glb'}"
        m.export(sub / name)
        rows.append(f"cones/{name},an orange traffic cone,traffic cone\n")
    (folder / "cones" / "traffic_cone_0.txt").write_text("ignored: captions.csv wins\n")
    (folder / "broken.obj").write_text("v 1 2\nf 9 9 9\n")
    (folder / "captions.csv").write_text("file,caption,category\n" + "".join(rows))
    return folder


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return make_library(tmp_path_factory.mktemp("lib") / "my_library")


def _engine(*args, timeout=600):
    out = subprocess.run([sys.executable, "-m", "engine", *map(str, args)], capture_output=True,
                         text=True, timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return out


TINY_CAPS = ["--size", "tiny", "--max-steps", "2", "--points", "1024", "--minutes", "10",
             "--workers", "2", "--device", "cpu"]


@pytest.fixture(scope="module")
def trained(library, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "mine"
    done = _engine("train", "all", "--meshes", library, "--out", out, *TINY_CAPS)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done


def test_train_all_makes_a_model_folder_that_generate_and_doctor_load(trained, tmp_path):
    out, done = trained
    assert "skipping broken.obj: not a readable .obj file" in done.stderr
    assert "1 of 14 files skipped: broken.obj" in done.stderr
    for stage in ("data", "fit", "dit", "encoder"):
        assert f"{stage:>8} [" in done.stderr                         # a progress bar each
    summary = json.loads((out / "train_all.json").read_text())
    assert summary["library_categories"] == ["dumbbell", "ring", "traffic cone"]
    assert summary["stages"]["data"]["assets"] == 13
    assert [s["file"] for s in summary["stages"]["data"]["skipped"]] == ["broken.obj"]
    assert all(summary["stages"][s]["steps_done"] == 2 for s in ("fit", "dit", "encoder"))
    assert (out / "MODEL_CARD.md").is_file() and (out / "SHA256SUMS").is_file()
    vocabulary = json.loads((out / "vocabulary.json").read_text())     # engine/reading.py
    assert {"traffic", "cone", "orange"} <= set(vocabulary["words"])
    assert vocabulary["names"]["traffic cone"] == "traffic cone"
    assert "vocabulary.json" in (out / "SHA256SUMS").read_text()
    glb = tmp_path / "ring.glb"
    gen = _engine("generate", "--model", out, "--prompt", "a golden ring", "--out", glb,
                  "--resolution", "32", "--steps", "2")
    assert gen.returncode == 0, gen.stderr[-3000:]
    assert glb.read_bytes()[:4] == b"glTF"
    doctor = _engine("doctor", "--model", out)
    assert doctor.returncode == 0, doctor.stderr[-3000:]
    assert f"model {out}: ok" in doctor.stdout
    from engine.pipeline import Pipeline
    assert Pipeline.from_pretrained(str(out), device="cpu").config.name == "mine"


def test_train_all_resumes_without_redoing_finished_stages(trained, library):
    out, _ = trained
    before = json.loads((out / "train_all.json").read_text())["stages"]
    again = _engine("train", "all", "--meshes", library, "--out", out, *TINY_CAPS)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "data [" not in again.stderr                     # nothing rebuilt or retrained
    assert json.loads((out / "train_all.json").read_text())["stages"] == before


def test_the_store_holds_every_kind_of_mesh_with_signs_and_captions(trained):
    from engine.train.store import Store, check_assets
    out, _ = trained
    store = check_assets(Store.load(out / "work" / "data"), "data")
    rec = {r["source"]: i for i, r in enumerate(store.info["assets"])}
    assert "cones/traffic_cone_3.obj" in rec and not store.info["assets"][rec["ring_2.glb"]]["watertight"]
    for i in range(len(store)):                           # every asset has an inside
        assert (store.tensors["sdf"][i] < 0).float().mean() > 0.02
    assert store.info["captions"][rec["cones/traffic_cone_0.glb"]] == ["an orange traffic cone"]
    names = store.info["categories"]
    assert names[int(store.tensors["category"][rec["ring_1.glb"]])] == "ring"


def test_mesh_truth_gives_fresh_pool_samples_and_a_first_order_sdf(trained):
    from engine.train.points import PointDraw, StoreTruth
    from engine.train.store import Store
    out, _ = trained
    store = Store.load(out / "work" / "data")
    truth = StoreTruth(store)
    gen = torch.Generator().manual_seed(0)
    a, b = truth.fresh([0, 1], PointDraw(count=256), gen), truth.fresh([0, 1], PointDraw(count=256), gen)
    assert a["points"].shape == (2, 256, 3) and not torch.equal(a["points"], b["points"])
    near = (a["sdf"][:, :128].abs() < 0.05).float().mean()
    assert near > 0.8                                      # the near half comes from the near pool
    # the SDF at pool points near the surface, from the oriented surface bank alone
    pts, sdf = store.tensors["points"][0, :200], store.tensors["sdf"][0, :200]
    est, normal = truth.query(0, pts)
    close = sdf.abs() < 0.02
    assert ((est - sdf)[close]).abs().mean() < 0.01 and (normal.norm(dim=1) - 1).abs().max() < 1e-2


def test_train_all_from_an_init_model_replays_it_and_fine_tunes_flexicubes_on_meshes(
        library, tiny_model_dir, tmp_path):
    out = tmp_path / "tuned"
    done = _engine("train", "all", "--meshes", library, "--out", out, "--init", tiny_model_dir,
                   "--replay", "3", "--flexi", "--flexi-res", "12", *TINY_CAPS[2:])
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "train_all.json").read_text())
    replayed = summary["replay_assets"]
    assert replayed == summary["stages"]["replay"]["generated"] > 0
    assert summary["stages"]["data"]["assets"] == 13 + replayed
    # the DiT's latents keep the init model's normalisation (its DiT stays valid)
    init_cfg = json.loads((tiny_model_dir / "config.json").read_text())
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["latent_scale"] == pytest.approx(init_cfg["latent_scale"])
    assert cfg["vae"]["flexi"] and summary["stages"]["flexi"]["steps_done"] == 2
    log = (out / "work" / "flexi" / "train_fit.jsonl").read_text().splitlines()
    assert all("fc_flip" in json.loads(line) for line in log)
    # replay rows start from the latents that made them
    from safetensors.torch import load_file
    from engine.train.store import Store
    table = load_file(str(out / "work" / "table" / "latent_table" / "latents.safetensors"))["latents"]
    saved = load_file(str(out / "work" / "replay" / "latents.safetensors"))
    store = Store.load(out / "work" / "data")
    rows = [i for i, r in enumerate(store.info["assets"]) if r.get("replay")]
    assert len(rows) == replayed
    for i in rows:
        name = store.info["assets"][i]["source"]
        assert torch.equal(table[i], saved[name])
