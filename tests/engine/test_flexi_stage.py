"""The FlexiCubes fine-tuning stage: the field's FlexiCubes head, its predicted weights, the
mesh losses against a procedural asset's exact SDF, and `train vae --flexi` end to end."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from engine.config import REGISTRY
from engine.geometry.flexicubes import FlexiCubes, predicted_weights
from engine.geometry.mesh import Mesh
from engine.geometry.mesh_ops import is_watertight
from engine.models import build_model
from engine.train.cache import build_asset_store
from engine.train.flexi import FlexiLossWeights, flexi_losses, sample_mesh
from engine.train.points import StoreTruth
from engine.train.store import Store


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("flexi-assets")
    build_asset_store(range(3), n_views=2, res=32, n_points=256, workers=1).save(folder)
    return folder


def _sphere_grid(res: int, radius: float = 0.6):
    x_nx3 = FlexiCubes.grid_vertices(res)
    return x_nx3, x_nx3.norm(dim=1) - radius


def test_sampled_mesh_points_and_normals_follow_the_surface():
    """Points on a FlexiCubes sphere lie on it and their face normals point outwards."""
    x_nx3, sdf_n = _sphere_grid(24)
    verts, faces, _ = FlexiCubes().extract(x_nx3, sdf_n, None, 24, training=True)
    p, n = sample_mesh(verts, faces, 2000, torch.Generator().manual_seed(0))
    radial = p / p.norm(dim=1, keepdim=True)
    assert (p.norm(dim=1) - 0.6).abs().mean() < 0.01
    assert (n * radial).sum(1).mean() > 0.99


def test_predicted_weights_neutral_head_changes_nothing_and_a_real_one_moves_vertices():
    x_nx3, sdf_n = _sphere_grid(16)
    plain, faces, _ = FlexiCubes().extract(x_nx3, sdf_n, None, 16)
    zero, zero_raw = predicted_weights(lambda p: torch.zeros(len(p), 24), sdf_n, 16)
    assert zero_raw.shape[1] == 21
    same, same_faces, _ = FlexiCubes().extract(x_nx3, sdf_n, None, 16, **zero)
    assert torch.allclose(plain, same) and torch.equal(faces, same_faces)
    lin = torch.nn.Linear(3, 24)
    w, _ = predicted_weights(lambda p: lin(p), sdf_n, 16)
    moved, moved_faces, _ = FlexiCubes().extract(x_nx3, sdf_n, None, 16, **w)
    assert not torch.allclose(plain, moved, atol=1e-4)
    assert is_watertight(Mesh(moved.detach().numpy(), moved_faces.numpy().astype(np.int32)))
    moved.sum().backward()                       # the head's parameters get gradients
    assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0


def test_mesh_losses_fall_when_fitting_one_asset(assets):
    """Decoder + field (with the FlexiCubes head) fitted to one asset by the mesh losses
    alone: the extracted mesh moves onto the true surface and covers it."""
    torch.manual_seed(0)
    cfg = REGISTRY["tiny"]()
    cfg.vae.flexi = True
    vae = build_model(cfg).vae
    vae.encoder.eval()
    store = Store.load(assets)
    with torch.no_grad():
        z = vae.encoder(store.tensors["views"][:1].float())[0]
    w, truth = FlexiLossWeights(res=24, mesh_points=1024), StoreTruth(store)
    batch = {k: store.tensors[k][:1].float() for k in ("points", "sdf")}
    opt = torch.optim.Adam(list(vae.decoder.parameters()) + list(vae.field.parameters()), lr=3e-3)
    gen, seen = torch.Generator().manual_seed(0), []
    for _ in range(60):
        loss, stats = flexi_losses(vae.field, vae.decoder(z), [0], batch, truth, w, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen.append(stats)
    # distance of the mesh to the surface plus of the surface to the mesh (both one-sided
    # Chamfer terms), over the first and the last steps: single steps are noisy
    error = [s["fc_surface"] + s["fc_coverage"] for s in seen]
    before, after = sum(error[:5]) / 5, sum(error[-5:]) / 5
    assert after < 0.7 * before, (before, after)
    head = vae.field.flexi_mlp[-1].weight
    assert head.abs().sum() > 0, "the FlexiCubes head never trained"


def test_train_vae_flexi_writes_a_model_the_pipeline_meshes_with_its_head(assets,
                                                                      tiny_model_dir, tmp_path):
    from engine.io.weights import load_state_dict
    from engine.pipeline import Pipeline
    cmd = [sys.executable, "-m", "engine", "train", "vae", "--data", str(assets), "--init",
           str(tiny_model_dir), "--out", str(tmp_path), "--steps", "4", "--batch", "2",
           "--lr", "3e-3", "--freeze-encoder", "--flexi", "--flexi-res", "16"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["vae"]["flexi"] is True and cfg["vae"]["flexi_res"] == 16
    log = [json.loads(line) for line in (tmp_path / "train_vae.jsonl").read_text().splitlines()]
    assert all("fc_surface" in row and "sdf" in row for row in log)
    state = load_state_dict(tmp_path)
    assert state["vae.field.flexi_mlp.2.weight"].abs().sum() > 0
    pipe = Pipeline.from_pretrained(str(tmp_path), device="cpu")
    assert pipe.flexi_head_fn(torch.zeros(1)) is not None
    result = pipe.text_to_3d("a blue mug", seed=3, resolution=32, faces=2000, steps=2,
                             texture_mode="vertex", extractor="flexicubes")
    assert is_watertight(result.mesh) and result.mesh.num_faces > 100


def test_flexi_needs_an_asset_store(tmp_path, tiny_model_dir):
    cmd = [sys.executable, "-m", "engine", "train", "dit", "--data", str(tmp_path), "--init",
           str(tiny_model_dir), "--out", str(tmp_path / "o"), "--flexi"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
