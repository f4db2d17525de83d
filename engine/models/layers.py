"""Shared transformer pieces: attention, MLP, adaLN modulation, timestep embedding."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def modulate(x, shift, scale):
    """adaLN: x (B, N, D), shift/scale (B, D)."""
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class Attention(nn.Module):
    """Multi-head attention; self-attention when `context` is None."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim or dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x, context=None, mask=None):
        # x (B, N, D); context (B, L, Dc); mask (B, L) True = attend
        ctx = x if context is None else context
        B, N, D = x.shape
        q = self.q(x).view(B, N, self.heads, -1).transpose(1, 2)            # (B, h, N, d)
        k, v = self.kv(ctx).view(B, ctx.shape[1], 2, self.heads, -1).unbind(2)
        k, v = k.transpose(1, 2), v.transpose(1, 2)                          # (B, h, L, d)
        attn_mask = None if mask is None else mask[:, None, None, :]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.out(y.transpose(1, 2).reshape(B, N, D))


class Mlp(nn.Module):
    def __init__(self, dim: int, ratio: float = 4.0):
        super().__init__()
        hidden = int(dim * ratio)
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"),
                                 nn.Linear(hidden, dim))

    def forward(self, x):
        return self.net(x)


class TimestepEmbedder(nn.Module):
    """Sinusoidal features of t in [0, 1] followed by an MLP (as DiT)."""

    def __init__(self, dim: int, freq_dim: int = 128):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t):
        # t (B,) in [0, 1]
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
        args = 1000.0 * t.float()[:, None] * freqs[None]                     # (B, half)
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))


def sincos_2d(dim: int, h: int, w: int) -> torch.Tensor:
    """Fixed 2D sine-cosine position embedding, (h*w, dim)."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                            torch.arange(w, dtype=torch.float32), indexing="ij")
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float32) / quarter)
    parts = []
    for coord in (ys.flatten(), xs.flatten()):
        out = coord[:, None] * omega[None]
        parts += [torch.sin(out), torch.cos(out)]
    emb = torch.cat(parts, dim=1)                                            # (h*w, 4*quarter)
    return F.pad(emb, (0, dim - emb.shape[1]))


def triplane_pos_embed(dim: int, h: int, w: int) -> torch.Tensor:
    """Position embedding for 3 planes of h*w tokens: 2D sincos + a per-plane offset, (3*h*w, dim)."""
    pos = sincos_2d(dim, h, w)                                               # (h*w, dim)
    plane = torch.zeros(3, dim)
    plane[torch.arange(3), torch.arange(3) * 2 + dim // 2] = 1.0             # one-hot plane code
    return (pos[None] + plane[:, None]).reshape(3 * h * w, dim)


class AdaLNBlock(nn.Module):
    """DiT block with adaLN-Zero: self-attention, optional cross-attention, MLP.

    `group` tells how the self-attention sees the tokens:
      "all"   -- one sequence (cross-plane attention when the tokens are 3 planes);
      "plane" -- tokens attend only within their own plane (self-plane attention).
    """

    def __init__(self, dim: int, heads: int, cond_dim: int, context_dim: int | None = None,
                 group: str = "all", mlp_ratio: float = 4.0):
        super().__init__()
        self.group = group
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.cross = None
        if context_dim is not None:
            self.norm_c = nn.LayerNorm(dim, eps=1e-6)
            self.cross = Attention(dim, heads, context_dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(dim, mlp_ratio)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 6 * dim))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def _self_attention(self, x):
        if self.group == "all":
            return self.attn(x)
        B, N, D = x.shape
        per_plane = x.reshape(B * 3, N // 3, D)                              # (B*3, hw, D)
        return self.attn(per_plane).reshape(B, N, D)

    def forward(self, x, c, context=None, context_mask=None):
        # x (B, N, D); c (B, cond_dim); context (B, L, Dc)
        s1, g1, b1, s2, g2, b2 = self.ada(c).chunk(6, dim=-1)
        x = x + g1.unsqueeze(1) * self._self_attention(modulate(self.norm1(x), s1, b1))
        if self.cross is not None:
            x = x + self.cross(self.norm_c(x), context, context_mask)
        return x + g2.unsqueeze(1) * self.mlp(modulate(self.norm2(x), s2, b2))


class FinalLayer(nn.Module):
    """adaLN-modulated norm + linear projection, zero-initialised (DiT)."""

    def __init__(self, dim: int, cond_dim: int, out_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 2 * dim))
        self.linear = nn.Linear(dim, out_dim)
        for layer in (self.ada[1], self.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x, c):
        shift, scale = self.ada(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))
