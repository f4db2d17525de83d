"""Test fixture: small random models saved like real ones (no training)."""

from __future__ import annotations

from pathlib import Path

import torch

from engine.config import REGISTRY
from engine.io.weights import save_state_dict
from engine.models import build_model


def random_model(size: str = "tiny", seed: int = 0, bumpy: float = 0.05):
    """A randomly initialised model whose zero-initialised heads get small random weights,
    so its surface and colours depend on the latent (an untrained model is a sphere)."""
    torch.manual_seed(seed)
    cfg = REGISTRY[size]()
    model = build_model(cfg)
    with torch.no_grad():
        for layer in (model.vae.field.sdf_head, model.dit.final.linear):
            layer.weight.normal_(0.0, bumpy)
    return cfg, model


def save_random_model(folder: Path, size: str = "tiny", seed: int = 0) -> Path:
    cfg, model = random_model(size, seed)
    cfg.name = f"random-{size}"
    save_state_dict(folder, model.state_dict(), cfg.to_dict())
    return Path(folder)
