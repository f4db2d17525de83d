"""The default image path: a small trainable CNN that turns a reference picture into
condition tokens (one per cell of a 4x4 grid) and a pooled vector."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import CondConfig


class SmallImageEncoder(nn.Module):
    def __init__(self, cfg: CondConfig, out_dim: int):
        super().__init__()
        chans = (4, 32, 64, 128, 128)   # RGB + alpha in
        stages = []
        for a, b in zip(chans[:-1], chans[1:]):
            stages += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.GroupNorm(8, b), nn.SiLU()]
        self.net = nn.Sequential(*stages)
        self.to_tokens = nn.Linear(chans[-1], out_dim)
        self.size = cfg.image_size

    def forward(self, image):
        # image (B, 4, S, S) in [0, 1] -> tokens (B, 16, D), mask (B, 16), pooled (B, D)
        feats = F.adaptive_avg_pool2d(self.net(image), 4)                   # (B, 128, 4, 4)
        tokens = self.to_tokens(feats.flatten(2).transpose(1, 2))           # (B, 16, D)
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return tokens, mask, tokens.mean(dim=1)
