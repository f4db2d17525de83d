"""Training on tiny models and a handful of procedural assets, on the CPU."""

import json
import re
import subprocess
import sys

import pytest
import torch

from engine.train.cache import build_asset_store
from engine.train.store import Store


@pytest.fixture(scope="module")
def asset_store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("assets")
    build_asset_store(range(8), n_views=2, res=32, n_points=512, workers=1).save(folder)
    return folder


@pytest.fixture(scope="module")
def latent_store(asset_store, tiny_model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("latents")
    _engine("train", "latents", "--data", asset_store, "--init", tiny_model_dir, "--out", folder)
    return folder


def _engine(*args, torchrun: int = 0):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={torchrun}"] if torchrun else [sys.executable]
    cmd = launcher + ["-m", "engine"] + [str(a) for a in args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def _losses(folder, stage):
    lines = (folder / f"train_{stage}.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines]


def test_asset_store_round_trip_and_shapes(asset_store):
    store = Store.load(asset_store)
    assert len(store) == 8
    assert store.tensors["views"].shape == (8, 2, 10, 32, 32)
    assert store.tensors["albedo"].shape == (8, 2, 3, 32, 32)
    assert store.tensors["points"].shape == (8, 512, 3)
    sdf = store.tensors["sdf"]
    assert (sdf < 0).any() and (sdf > 0).any()
    # Plücker moments are orthogonal to their directions
    d, m = store.tensors["views"][:, :, 4:7].float(), store.tensors["views"][:, :, 7:10].float()
    assert (d * m).sum(2).abs().max() < 1e-2


def test_tiny_vae_loss_decreases(asset_store, tmp_path):
    _engine("train", "vae", "--data", asset_store, "--out", tmp_path, "--size", "tiny",
            "--steps", "60", "--batch", "4", "--lr", "3e-3")
    losses = _losses(tmp_path, "vae")
    assert len(losses) == 60
    assert sum(losses[-10:]) / 10 < 0.8 * sum(losses[:10]) / 10
    # the shipped folder loads like any model
    from engine.pipeline import Pipeline
    assert Pipeline.from_pretrained(str(tmp_path)).config.name == "kiln-tiny"


def test_tiny_dit_loss_decreases_and_resumes(latent_store, tiny_model_dir, tmp_path):
    _engine("train", "dit", "--data", latent_store, "--init", tiny_model_dir, "--out", tmp_path,
            "--steps", "80", "--batch", "8", "--lr", "3e-3", "--ckpt-every", "40",
            "--mean-token-prob", "0.3")
    losses = _losses(tmp_path, "dit")
    assert sum(losses[-10:]) / 10 < 0.8 * sum(losses[:10]) / 10
    cfg = json.loads((tmp_path / "config.json").read_text())
    info = json.loads((latent_store / "store.json").read_text())
    assert cfg["latent_scale"] == pytest.approx(info["latent_scale"])
    # the DiT's caption vocabulary ships with it, checked like the weights (engine/reading.py)
    from engine.io.weights import read_sha256sums
    vocabulary = json.loads((tmp_path / "vocabulary.json").read_text())
    caption_words = {w for caps in info["captions"] for c in caps
                     for w in re.findall(r"[a-z0-9']+", c.lower())}
    assert caption_words and caption_words <= set(vocabulary["words"])
    assert "vocabulary.json" in read_sha256sums(tmp_path)
    # resume continues from the checkpoint step
    _engine("train", "dit", "--data", latent_store, "--init", tiny_model_dir, "--out", tmp_path,
            "--steps", "90", "--batch", "8", "--resume")
    assert json.loads((tmp_path / "summary_dit.json").read_text())["first_step"] == 80


def test_two_gloo_processes_train_like_one(latent_store, tiny_model_dir, tmp_path):
    """DDP over 2 processes on the same global batch gives the same losses as 1 process."""
    args = ["train", "dit", "--data", latent_store, "--init", tiny_model_dir, "--steps", "8",
            "--batch", "8", "--lr", "1e-3", "--device", "cpu"]
    _engine(*args, "--out", tmp_path / "one")
    _engine(*args, "--out", tmp_path / "two", torchrun=2)
    one, two = _losses(tmp_path / "one", "dit"), _losses(tmp_path / "two", "dit")
    assert len(one) == len(two) == 8
    assert one == pytest.approx(two, rel=2e-3, abs=2e-4)
    assert one[0] != one[-1]


def test_decoder_fine_tuning_keeps_the_encoder_and_its_statistics(asset_store, tiny_model_dir,
                                                                  tmp_path):
    """--freeze-encoder: the latents a trained DiT learned stay exactly what they were."""
    from engine.io.weights import load_state_dict
    _engine("train", "vae", "--data", asset_store, "--init", tiny_model_dir, "--out", tmp_path,
            "--steps", "6", "--batch", "4", "--lr", "3e-3", "--freeze-encoder")
    before, after = load_state_dict(tiny_model_dir), load_state_dict(tmp_path)
    encoder = [k for k in before if k.startswith("vae.encoder.")]
    assert any("centre.running_mean" in k for k in encoder)
    for key in encoder:
        assert torch.equal(before[key], after[key]), key
    changed = [k for k in before if k.startswith("vae.decoder.") and
               not torch.equal(before[k], after[k])]
    assert changed, "the decoder did not train"
