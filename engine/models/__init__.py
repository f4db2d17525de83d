"""nn.Modules only: the VAE (encoder, decoder, field), the DiT and the image encoder.

`build_model(config)` makes the trainable Kiln model whose state dict is what the
weights files hold. Frozen pretrained conditioners (MiniLM, CLIP) live outside it.
"""

from __future__ import annotations

import torch.nn as nn

from ..config import ModelConfig
from .dit import DiT, Condition
from .image_encoder import SmallImageEncoder
from .vae import TriplaneVAE


class KilnModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.vae = TriplaneVAE(cfg.vae)
        self.dit = DiT(cfg.dit, cfg.vae.latent_channels, cfg.vae.latent_size)
        self.image_encoder = SmallImageEncoder(cfg.cond, cfg.dit.cond_dim)


def build_model(cfg: ModelConfig) -> KilnModel:
    return KilnModel(cfg)


__all__ = ["KilnModel", "build_model", "DiT", "Condition", "TriplaneVAE", "SmallImageEncoder"]
