"""The generator: a DiT over tri-plane latent tokens, trained by rectified flow.

Each patch x patch block of latent cells of each plane is one token: z (B, 3, c, h, w)
gives 3*(h/p)*(w/p) tokens of c*p*p values. Conditioning: adaLN-Zero from the timestep plus the pooled condition, and
cross-attention to condition tokens (text token states or image patch tokens). A learned
null condition stands in for the dropped condition in classifier-free guidance.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..config import DiTConfig
from .layers import AdaLNBlock, FinalLayer, TimestepEmbedder, triplane_pos_embed


def mean_token(tokens, mask):
    """tokens (B, L, D), mask (B, L) -> their mask-weighted mean (B, 1, D)."""
    w = mask.unsqueeze(-1).to(tokens.dtype)
    return (tokens * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp(min=1.0)


@dataclass
class Condition:
    tokens: torch.Tensor   # (B, L, cond_dim)
    mask: torch.Tensor     # (B, L) bool, True = real token
    pooled: torch.Tensor   # (B, cond_dim)

    def __len__(self):
        return self.tokens.shape[0]

    def to(self, device):
        return Condition(self.tokens.to(device), self.mask.to(device), self.pooled.to(device))

    @staticmethod
    def cat(a: "Condition", b: "Condition") -> "Condition":
        L = max(a.tokens.shape[1], b.tokens.shape[1])
        pad = lambda c: (torch.nn.functional.pad(c.tokens, (0, 0, 0, L - c.tokens.shape[1])),
                         torch.nn.functional.pad(c.mask, (0, L - c.mask.shape[1])))
        (ta, ma), (tb, mb) = pad(a), pad(b)
        return Condition(torch.cat([ta, tb]), torch.cat([ma, mb]), torch.cat([a.pooled, b.pooled]))


class DiT(nn.Module):
    def __init__(self, cfg: DiTConfig, latent_channels: int, latent_size: int):
        super().__init__()
        self.cfg = cfg
        D, p = cfg.width, cfg.patch
        self.embed = nn.Linear(latent_channels * p * p, D)
        self.register_buffer("pos", triplane_pos_embed(D, latent_size // p, latent_size // p),
                             persistent=False)
        self.t_embed = TimestepEmbedder(D)
        self.pool_embed = nn.Sequential(nn.Linear(cfg.cond_dim, D), nn.SiLU(), nn.Linear(D, D))
        self.blocks = nn.ModuleList(
            AdaLNBlock(D, cfg.heads, D, context_dim=cfg.cond_dim, group="all",
                       mlp_ratio=cfg.mlp_ratio) for _ in range(cfg.depth))
        self.final = FinalLayer(D, D, latent_channels * p * p)
        self.null_tokens = nn.Parameter(torch.randn(cfg.cond_tokens, cfg.cond_dim) * 0.02)
        self.null_pooled = nn.Parameter(torch.zeros(cfg.cond_dim))

    def null_condition(self, batch: int) -> Condition:
        tokens = self.null_tokens.expand(batch, -1, -1)
        mask = torch.ones(batch, tokens.shape[1], dtype=torch.bool, device=tokens.device)
        return Condition(tokens, mask, self.null_pooled.expand(batch, -1))

    def forward(self, x, t, cond: Condition):
        # x (B, 3, c, h, w); t (B,) in [0, 1] -> velocity (B, 3, c, h, w)
        B, _, c, h, w = x.shape
        y = self.embed(self.patchify(x)) + self.pos                         # (B, T, D)
        g = self.t_embed(t) + self.pool_embed(cond.pooled)                   # (B, D)
        for block in self.blocks:
            y = block(y, g, cond.tokens, cond.mask)
        return self.unpatchify(self.final(y, g), c, h, w)

    def patchify(self, x):
        """(B, 3, c, h, w) -> (B, 3*(h/p)*(w/p), c*p*p)"""
        B, _, c, h, w = x.shape
        p = self.cfg.patch
        x = x.view(B, 3, c, h // p, p, w // p, p).permute(0, 1, 3, 5, 2, 4, 6)
        return x.reshape(B, 3 * (h // p) * (w // p), c * p * p)

    def unpatchify(self, tokens, c: int, h: int, w: int):
        """(B, 3*(h/p)*(w/p), c*p*p) -> (B, 3, c, h, w)"""
        B, p = tokens.shape[0], self.cfg.patch
        x = tokens.view(B, 3, h // p, w // p, c, p, p).permute(0, 1, 4, 2, 5, 3, 6)
        return x.reshape(B, 3, c, h, w)
