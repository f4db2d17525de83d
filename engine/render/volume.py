"""Differentiable volume rendering of an SDF field (VolSDF-style density), for training.

density(x) = (1 / beta) * Laplace_CDF(-sdf(x) / beta); alpha compositing along each ray
of `samples` stratified points between the ray's entry and exit of the unit-radius
bounding sphere (radius `bound`). Background is white, as in the training renders.
"""

from __future__ import annotations

import torch


def sphere_bounds(origins, dirs, bound: float = 1.0):
    """Entry/exit distances of rays (..., 3) with the sphere |x| = bound; misses give near=far."""
    b = (origins * dirs).sum(-1)
    c = (origins * origins).sum(-1) - bound ** 2
    disc = (b * b - c).clamp(min=0.0).sqrt()
    near = (-b - disc).clamp(min=0.0)
    far = (-b + disc).clamp(min=0.0)
    return near, far


def laplace_density(sdf, beta: float):
    s = -sdf / beta
    cdf = torch.where(s <= 0, 0.5 * torch.exp(s.clamp(max=0)), 1 - 0.5 * torch.exp(-s.clamp(min=0)))
    return cdf / beta


def render_rays(field_fn, origins, dirs, samples: int = 48, beta: float = 0.01,
                bound: float = 1.0, generator=None):
    """origins/dirs (B, R, 3) -> rgb (B, R, 3), alpha (B, R), depth (B, R).

    field_fn(points (B, N, 3)) -> sdf (B, N), rgb (B, N, 3).
    """
    B, R, _ = origins.shape
    near, far = sphere_bounds(origins, dirs, bound)                          # (B, R)
    u = torch.arange(samples, device=origins.device, dtype=origins.dtype) / samples
    jitter = torch.rand(B, R, samples, generator=generator).to(origins) / samples
    t = near[..., None] + (far - near)[..., None] * (u + jitter)             # (B, R, S)
    pts = origins[..., None, :] + t[..., None] * dirs[..., None, :]          # (B, R, S, 3)
    sdf, rgb = field_fn(pts.reshape(B, R * samples, 3))
    sdf, rgb = sdf.view(B, R, samples), rgb.view(B, R, samples, 3)
    delta = ((far - near) / samples)[..., None].expand_as(t)
    alpha_i = 1.0 - torch.exp(-laplace_density(sdf, beta) * delta)          # (B, R, S)
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha_i[..., :1]),
                                     1.0 - alpha_i[..., :-1] + 1e-7], -1), -1)
    w = alpha_i * trans
    alpha = w.sum(-1)
    color = (w[..., None] * rgb).sum(-2) + (1.0 - alpha)[..., None]
    depth = (w * t).sum(-1) / alpha.clamp(min=1e-4)
    return color, alpha, depth
