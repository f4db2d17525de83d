"""The kiln-mini v2 recipe's pieces: fresh exact samples, the sign loss, the projection
encoder's cameras, the fit (auto-decoder) and encoder stages, and a tiny model that must
fit four assets far better than a blob does."""

import json
import os
import subprocess
import sys

import pytest
import torch

from engine.config import VAEConfig
from engine.data.shapes import make_asset
from engine.models.vae import ProjectionEncoder, TriplaneDecoder, TriplaneField, \
    project_to_views, view_cameras
from engine.render.cameras import camera_rays, orbit_cameras, plucker, project
from engine.data.dataset import SURFACE_BANK
from engine.train.cache import build_asset_store
from engine.train.points import PointDraw, StoreTruth, draw_points
from engine.train.store import Store
from engine.train.vae import VAELossWeights, geometry_loss, near_sign_error

SEEDS = [0, 25, 6, 10]      # chair, table (thin legs), mug (handle), lamp (thin stem)


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("assets4")
    build_asset_store(SEEDS, n_views=2, res=32, n_points=1024, workers=1).save(folder)
    return folder


def _engine(*args):
    out = subprocess.run([sys.executable, "-m", "engine", *map(str, args)], capture_output=True,
                         text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def store_sign_error(field, planes, store: Store) -> float:
    """Near-surface sign error of decoded planes at the store's own sample points."""
    with torch.no_grad():
        sdf, _ = field(planes, store.tensors["points"])
    return near_sign_error(sdf, store.tensors["sdf"])


# ----------------------------------------------------------------------------- points

def test_store_keeps_a_surface_bank_on_the_zero_level_set(store_dir):
    store = Store.load(store_dir)
    bank = store.tensors["surface"]
    assert bank.shape == (len(SEEDS), SURFACE_BANK, 3)
    for i, seed in enumerate(SEEDS):
        assert make_asset(seed).sdf(bank[i].float()).abs().max() < 2e-3


def test_fresh_samples_are_exact_new_each_step_and_mostly_near(store_dir):
    store = Store.load(store_dir)
    truth, d = StoreTruth(store), PointDraw(count=1000, near_frac=0.5)
    gen, rows = torch.Generator().manual_seed(0), list(range(len(SEEDS)))
    a = truth.fresh(rows, d, gen)
    b = truth.fresh(rows, d, gen)
    assert a["points"].shape == (4, 1000, 3) and a["rgb"].shape == (4, 1000, 3)
    assert a["points"].abs().max() <= 1.0
    assert not torch.equal(a["points"], b["points"])              # fresh, not a fixed set
    for i, seed in enumerate(SEEDS):                                # exact SDF at those points
        assert torch.allclose(a["sdf"][i], make_asset(seed).sdf(a["points"][i]), atol=1e-6)
    near = (a["sdf"].abs() < 0.05).float().mean().item()
    assert near > 0.45                 # uniform points alone put ~5% there
    again = truth.fresh(rows, d, torch.Generator().manual_seed(0))
    assert torch.equal(again["points"], a["points"])              # deterministic per seed


def test_thin_parts_get_their_share_of_points():
    """The lamp's stem is a thin cylinder: uniform sampling almost never lands near it; the
    surface bank spreads points by area, so its stem gets points."""
    lamp = make_asset(10)
    assert lamp.category == "lamp"
    from engine.geometry.surface import level_set_points
    bank = level_set_points(lamp.sdf, 4096, torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    pts = draw_points(bank, PointDraw(count=4000, near_frac=0.5), gen)
    uniform = torch.rand(4000, 3, generator=gen) * 2 - 1
    band = lambda p: (lamp.sdf(p).abs() < 0.02).float().sum().item()
    assert band(pts) > 10 * max(1.0, band(uniform))


def test_sign_loss_costs_a_wrong_sign_more_than_the_same_error_with_the_right_sign():
    truth = torch.tensor([[0.005, -0.005, 0.004, -0.004]])
    right = truth + truth.sign() * 0.01          # 0.01 off, sign right
    wrong = truth - truth.sign() * 0.01          # 0.01 off, sign wrong
    w = VAELossWeights(sign=1.0)
    assert geometry_loss(wrong, truth, w)[0] > 1.5 * geometry_loss(right, truth, w)[0]
    # without the sign weight both cost the same SDF L1 (the first recipe)
    plain = VAELossWeights(sign=0.0)
    assert torch.allclose(geometry_loss(wrong, truth, plain)[0], geometry_loss(right, truth, plain)[0])


# ----------------------------------------------------------------------------- encoder

def test_cameras_from_plucker_rays_project_like_the_renderer():
    c2w = orbit_cameras(3, elevation_deg=[5.0, 25.0, 40.0], azimuth_deg=70.0, fov_deg=40.0)
    origins, dirs = camera_rays(c2w, 40.0, 32)
    centre, axes, tan = view_cameras(plucker(origins, dirs).permute(0, 3, 1, 2))
    assert torch.allclose(centre, c2w[:, :3, 3], atol=1e-4)
    pts = torch.rand(50, 3) * 2 - 1
    uv, front = project_to_views(pts, centre, axes, tan)
    assert front.all()
    for v in range(3):
        pix, _ = project(pts, c2w[v], 40.0, 32)
        assert torch.allclose(uv[v], pix / 32 * 2 - 1, atol=1e-4)


def test_projection_encoder_takes_one_to_four_views_and_sees_the_object(store_dir):
    cfg = VAEConfig(image_size=32, encoder="projection", enc_channels=(8, 16), enc_width=32,
                    latent_channels=4, latent_size=8, proj_res=8, proj_depth=4, proj_channels=8)
    enc = ProjectionEncoder(cfg)
    views = Store.load(store_dir).tensors["views"].float()            # (4, 2, 10, 32, 32)
    for n in (1, 2):
        mean, logvar = enc(views[:, :n])
        assert mean.shape == logvar.shape == (4, 3, 4, 8, 8)
    mean.sum().backward()
    assert enc.stem[0][0].weight.grad.abs().sum() > 0
    # different objects give different latents; an empty view gives none of them
    assert (mean[0] - mean[1]).abs().max() > 1e-4


# ----------------------------------------------------------------------------- stages

def small_model_dir(folder):
    """The tiny test model with 32² tri-planes of 16 channels (tiny's 16² planes of 8
    cannot hold a table's legs): a random model folder to start a stage from."""
    import dataclasses
    from engine.config import tiny
    from engine.io.weights import save_state_dict
    from engine.models import build_model
    cfg = tiny()
    cfg.vae = dataclasses.replace(cfg.vae, up_channels=(16, 16, 16), plane_channels=16,
                                  field_hidden=32, field_layers=2)
    torch.manual_seed(0)
    save_state_dict(folder, build_model(cfg).state_dict(), cfg.to_dict())
    return folder


def projection_model_dir(folder):
    """small_model_dir's model with a projection encoder (tiny's latent: 4 x 4 x 4)."""
    import dataclasses
    from engine.config import ModelConfig
    from engine.io.weights import save_state_dict
    from engine.models import build_model
    small = ModelConfig.load(small_model_dir(folder / "small") / "config.json")
    small.vae = dataclasses.replace(small.vae, encoder="projection", enc_channels=(8, 16),
                                    proj_res=8, proj_depth=4, proj_channels=8)
    torch.manual_seed(0)
    save_state_dict(folder, build_model(small).state_dict(), small.to_dict())
    return folder


def _projection_cfg(**kw) -> VAEConfig:
    return VAEConfig(encoder="projection", image_size=32, enc_channels=(8, 16), proj_res=8,
                     proj_depth=4, proj_channels=8, enc_width=16, latent_channels=4, **kw)


def test_the_encoders_global_path_starts_neutral_and_reaches_every_cell(store_dir):
    """proj_global: added to a trained projection encoder it changes nothing until trained;
    once its weights are not zero, every cell of both objects' latents moves."""
    views = Store.load(store_dir).tensors["views"][[0, 2]].float()          # chair, mug
    torch.manual_seed(0)
    local = ProjectionEncoder(_projection_cfg())
    both = ProjectionEncoder(_projection_cfg(proj_global=True))
    missing, unexpected = both.load_state_dict(local.state_dict(), strict=False)
    assert not unexpected and {k.split(".")[0] for k in missing} == {"globe", "cell_pos"}
    with torch.no_grad():
        m_local, _ = local(views)
        assert torch.equal(both(views)[0], m_local)
        torch.nn.init.normal_(both.globe[2].weight, std=0.1)
        offset = both(views)[0] - m_local                                    # (2, 3, c, h, w)
    assert (offset.abs().amax(dim=2) > 1e-4).all()        # it reaches every cell


def test_fit_stage_learns_shapes_not_a_blob_and_the_encoder_regresses_its_table(store_dir, tmp_path):
    """A small decoder with a free latent per asset, 3D losses on fresh exact samples: after
    600 steps the near-surface sign error on the 4 assets (a chair, a table, a mug, a lamp)
    must be well below a blob's (the untrained sphere sits near 44%; a model that learns
    only a blob of the right size stays near 40%)."""
    fit, enc = tmp_path / "fit", tmp_path / "enc"
    _engine("train", "fit", "--data", store_dir, "--out", fit, "--init",
            small_model_dir(tmp_path / "init"), "--steps", "600", "--batch", "4", "--lr", "3e-3",
            "--table-lr", "10", "--fresh-points", "1024", "--sign-weight", "1", "--ckpt-every", "300")
    from engine.config import ModelConfig
    from engine.io.weights import load_state_dict
    from engine.train.loop import load_table
    store = Store.load(store_dir)
    cfg = ModelConfig.load(fit / "config.json").vae
    state = {k: v.float() for k, v in load_state_dict(fit).items()}
    dec, field = TriplaneDecoder(cfg), TriplaneField(cfg)
    dec.load_state_dict({k[len("vae.decoder."):]: v for k, v in state.items()
                         if k.startswith("vae.decoder.")})
    field.load_state_dict({k[len("vae.field."):]: v for k, v in state.items()
                           if k.startswith("vae.field.")})
    table = load_table(fit, len(store))
    blob = store_sign_error(field, torch.zeros_like(dec(table)), store)
    err = store_sign_error(field, dec(table).detach(), store)
    assert blob > 0.35
    assert err < 0.6 * blob, f"near-surface sign error {err:.3f} (blob {blob:.3f})"
    with pytest.raises(ValueError, match="latents but the store has"):
        load_table(fit, 3)
    # the encoder stage regresses that table from the views; the decoder stays as fitted
    _engine("train", "encoder", "--data", store_dir, "--init", fit, "--out", enc,
            "--steps", "80", "--batch", "4", "--lr", "3e-3")
    losses = [json.loads(x)["loss"] for x in (enc / "train_encoder.jsonl").read_text().splitlines()]
    assert sum(losses[-10:]) < 0.7 * sum(losses[:10])
    after = load_state_dict(enc)
    assert all(torch.equal(after[k].float(), state[k]) for k in state if k.startswith("vae.decoder."))
    # ... with the global path added to a projection encoder (it starts at zero and learns);
    # an attention encoder has none and is refused with a sentence
    glob = tmp_path / "glob"
    _engine("train", "encoder", "--data", store_dir, "--init", projection_model_dir(tmp_path / "p"),
            "--table", fit, "--out", glob, "--encoder-global", "--steps", "20", "--batch", "4",
            "--lr", "3e-3")
    assert ModelConfig.load(glob / "config.json").vae.proj_global
    assert load_state_dict(glob)["vae.encoder.globe.2.weight"].float().abs().sum() > 0
    refused = subprocess.run([sys.executable, "-m", "engine", "train", "encoder", "--data",
                              str(store_dir), "--init", str(fit), "--out", str(tmp_path / "no"),
                              "--encoder-global", "--steps", "1"],
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "projection encoder" in refused.stderr
    # ... or learns through the frozen decoder on 3D samples (its field's own losses)
    geo = tmp_path / "geo"
    _engine("train", "encoder", "--data", store_dir, "--init", enc, "--out", geo,
            "--encoder-target", "field", "--fresh-points", "1024", "--sign-weight", "1",
            "--steps", "60", "--batch", "4", "--lr", "1e-3")
    logged = [json.loads(x) for x in (geo / "train_encoder.jsonl").read_text().splitlines()]
    assert {"sdf", "sign_err"} <= set(logged[0]) and "table" not in logged[0]
    assert sum(x["loss"] for x in logged[-10:]) < sum(x["loss"] for x in logged[:10])
    geo_state = load_state_dict(geo)
    assert all(torch.equal(geo_state[k].float(), state[k]) for k in state
               if k.startswith(("vae.decoder.", "vae.field.")))
    assert not all(torch.equal(geo_state[k], after[k]) for k in after if k.startswith("vae.encoder."))
    refused = subprocess.run([sys.executable, "-m", "engine", "train", "encoder", "--data",
                              str(store_dir), "--init", str(enc), "--out", str(tmp_path / "no"),
                              "--encoder-target", "field", "--steps", "1"],
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "--fresh-points" in refused.stderr
    # a trained model's table re-derived (decoder and field fixed): it starts from the
    # encoder's means and fits closer than they do
    redo = tmp_path / "redo"
    _engine("train", "fit", "--data", store_dir, "--init", enc, "--out", redo, "--freeze-decoder",
            "--fresh-points", "1024", "--sign-weight", "1", "--steps", "150", "--batch", "4",
            "--lr", "3e-3", "--table-lr", "10")
    from engine.models import build_model
    from engine.train.cache import encoder_means
    enc_model = build_model(ModelConfig.load(enc / "config.json")).eval()
    enc_model.load_state_dict({k: v.float() for k, v in after.items()})
    means, redone = encoder_means(enc_model, store), load_table(redo, len(store))
    redo_state = load_state_dict(redo)
    assert all(torch.equal(redo_state[k].float(), state[k]) for k in state
               if k.startswith(("vae.decoder.", "vae.field.")))
    first = json.loads((redo / "train_fit.jsonl").read_text().splitlines()[0])
    with torch.no_grad():
        err_means = store_sign_error(field, dec(means), store)
        err_redone = store_sign_error(field, dec(redone), store)
    assert err_redone < 0.8 * err_means, (err_redone, err_means)
    assert abs(first["sign_err"] - err_means) < 0.15      # step 1 decoded the means
    refused = subprocess.run([sys.executable, "-m", "engine", "train", "fit", "--data",
                              str(store_dir), "--out", str(tmp_path / "no"), "--freeze-decoder",
                              "--steps", "1"], capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "--freeze-decoder" in refused.stderr
    # FlexiCubes fine-tuning on the same fixed latents (after the DiT): table untouched,
    # the FlexiCubes head learns
    fc = tmp_path / "fc"
    _engine("train", "fit", "--data", store_dir, "--init", enc, "--table", fit, "--freeze-table",
            "--flexi", "--flexi-res", "16", "--fresh-points", "512", "--steps", "3", "--batch", "2",
            "--out", fc)
    assert torch.equal(load_table(fc, len(store)), table)
    head = load_state_dict(fc)["vae.field.flexi_mlp.2.weight"].float()
    assert head.abs().sum() > 0
    # the DiT's latent store can take the table itself
    lat = tmp_path / "lat"
    _engine("train", "latents", "--data", store_dir, "--init", fit, "--from-table", "--out", lat)
    info = json.loads((lat / "store.json").read_text())
    z = Store.load(lat).tensors["latent"].float()
    assert torch.allclose(z, ((table - info["latent_shift"]) * info["latent_scale"]), atol=2e-2)


def test_a_resumed_stage_keeps_its_schedule(store_dir, tmp_path):
    """The learning rate follows the share of the time cap used; a resumed run starts from
    the time already spent, not from zero (so a killed recipe continues, not restarts)."""
    _engine("train", "fit", "--data", store_dir, "--out", tmp_path, "--size", "tiny",
            "--steps", "20", "--batch", "2", "--fresh-points", "256", "--ckpt-every", "10")
    meta = json.loads((tmp_path / "checkpoint" / "trainer.json").read_text())
    assert meta["step"] == 20 and meta["elapsed_s"] > 0
    _engine("train", "fit", "--data", store_dir, "--out", tmp_path, "--size", "tiny",
            "--steps", "30", "--batch", "2", "--fresh-points", "256", "--resume")
    summary = json.loads((tmp_path / "summary_fit.json").read_text())
    assert summary["first_step"] == 20 and summary["steps_done"] == 10
    assert summary["wall_s"] >= meta["elapsed_s"]
    # a checkpoint written before the learning-rate groups had scales still resumes
    trainer = tmp_path / "checkpoint" / "trainer.json"
    old = json.loads(trainer.read_text())
    for g in old["param_groups"]:
        g.pop("lr_scale", None)
    trainer.write_text(json.dumps(old))
    _engine("train", "fit", "--data", store_dir, "--out", tmp_path, "--size", "tiny",
            "--steps", "32", "--batch", "2", "--fresh-points", "256", "--resume")
    assert json.loads((tmp_path / "summary_fit.json").read_text())["first_step"] == 30


def test_a_store_of_an_older_format_is_refused_with_the_fix(store_dir, tmp_path):
    store = Store.load(store_dir)
    del store.tensors["normals"]
    store.info = {"seeds": store.info["assets"]}          # what stores held before version 2
    store.save(tmp_path / "old")
    out = subprocess.run([sys.executable, "-m", "engine", "train", "fit", "--data",
                          str(tmp_path / "old"), "--out", str(tmp_path / "o"), "--size", "tiny",
                          "--steps", "2", "--fresh-points", "64"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode != 0
    assert "not an asset store of this Kiln" in out.stderr and "train data" in out.stderr


def test_a_fit_table_of_the_first_rows_guides_only_those_rows(tmp_path):
    """A store grown past the one the fit saw: with `both`, the table's MSE covers the rows
    it has latents for and no others; any other target refuses a table of the wrong size."""
    from safetensors.torch import save_file
    from engine.train.loop import TABLE_DIR, load_table
    from engine.train.vae import encoder_step_losses
    (tmp_path / TABLE_DIR).mkdir()
    save_file({"latents": torch.randn(3, 3, 4, 8, 8)}, str(tmp_path / TABLE_DIR / "latents.safetensors"))
    assert len(load_table(tmp_path, 5, prefix=True)) == 3
    with pytest.raises(ValueError, match="encoder-target both"):
        load_table(tmp_path, 5)
    with pytest.raises(ValueError, match="latents but the store has"):
        load_table(tmp_path, 2, prefix=True)

    class Fixed(torch.nn.Module):          # an encoder whose mean is given: (B, 3, 4, 8, 8)
        def __init__(self, mean):
            super().__init__()
            self.mean = mean

        def forward(self, views):
            return self.mean, torch.zeros_like(self.mean)

    class Vae:
        pass
    vae, target = Vae(), torch.randn(2, 3, 4, 8, 8)
    mean = torch.randn(4, 3, 4, 8, 8)
    vae.encoder = Fixed(mean)
    rows = torch.tensor([True, False, True, False])
    loss, stats = encoder_step_losses(vae, torch.zeros(4, 1, 10, 8, 8), 1, target, None,
                                      target_rows=rows)
    expected = ((mean[rows] - target) ** 2).mean() / target.var()
    assert torch.allclose(loss, expected)
    mean[~rows] += 100.0                   # rows without a latent do not move the loss
    assert torch.allclose(encoder_step_losses(vae, torch.zeros(4, 1, 10, 8, 8), 1, target, None,
                                              target_rows=rows)[0], expected)
    none, stats = encoder_step_losses(vae, torch.zeros(4, 1, 10, 8, 8), 1, target[:0], None,
                                      target_rows=torch.zeros(4, dtype=torch.bool))
    assert float(none) == 0.0 and "table" not in stats
