"""VAE training: multi-view renders in, tri-plane field out.

Losses per batch (input views: a random 1..4 of the rendered views, so single-image
reconstruction works):
- 3D: L1 on the (clamped) SDF at sampled points; L1 on colour near the surface;
- rendering: VolSDF volume rendering of rays from all views (input and novel): colour and
  mask L1;
- KL of the latent, small weight (the latent stays smooth for the DiT).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..render.volume import render_rays


@dataclass
class VAELossWeights:
    sdf: float = 10.0
    sdf_clamp: float = 0.1
    rgb: float = 1.0
    render_rgb: float = 0.1
    render_mask: float = 0.1
    kl: float = 1e-6
    rays: int = 256            # rays per example per step
    ray_samples: int = 32
    surface_band: float = 0.03  # |sdf| below which a point's colour is supervised


def rays_from_plucker(plucker_nx6):
    """(d, o x d) with unit d -> (origin on the ray closest to the world origin, d)."""
    d, m = plucker_nx6[..., :3], plucker_nx6[..., 3:]
    return torch.cross(d, m, dim=-1), d


def pick_rays(views, count: int, gen: torch.Generator):
    """Random pixels from all views. views (B, V, 10, H, W) -> origins, dirs (B, R, 3),
    rgb (B, R, 3), alpha (B, R)."""
    B, V, C, H, W = views.shape
    flat = views.permute(0, 1, 3, 4, 2).reshape(B, V * H * W, C)
    idx = torch.randint(0, V * H * W, (B, count), generator=gen).to(views.device)
    px = torch.gather(flat, 1, idx[..., None].expand(-1, -1, C))             # (B, R, 10)
    origins, dirs = rays_from_plucker(px[..., 4:10])
    return origins, dirs, px[..., :3], px[..., 3]


def vae_step_losses(vae, batch: dict, w: VAELossWeights, gen: torch.Generator, n_views: int,
                    mesh_losses=None):
    """batch: views (B, V, 10, H, W), albedo (B, V, 3, H, W), points (B, N, 3), sdf (B, N),
    rgb (B, N, 3). mesh_losses: optional planes -> (loss, stats), added to the total (the
    FlexiCubes fine-tuning stage)."""
    views = batch["views"]
    z, mean, logvar = vae.encode(views[:, :n_views], generator=gen)
    planes = vae.decoder(z)
    sdf, rgb = vae.field(planes, batch["points"])
    c = w.sdf_clamp
    # clamped L1 focuses on the surface band; the unclamped term keeps a gradient
    # everywhere while the prediction is still far from the target
    l_sdf = F.l1_loss(sdf.clamp(-c, c), batch["sdf"].clamp(-c, c)) \
        + 0.2 * F.l1_loss(sdf, batch["sdf"])
    near = (batch["sdf"].abs() < w.surface_band).float()[..., None]
    l_rgb = ((rgb - batch["rgb"]).abs() * near).sum() / (near.sum() * 3).clamp(min=1)
    targets = torch.cat([batch["albedo"], views[:, :, 3:]], dim=2)          # (B, V, 10, H, W)
    origins, dirs, ray_rgb, ray_alpha = pick_rays(targets, w.rays, gen)
    color, alpha, _ = render_rays(lambda p: vae.field(planes, p), origins, dirs,
                                  samples=w.ray_samples, generator=gen)
    l_render_rgb = F.l1_loss(color, ray_rgb)
    l_render_mask = F.l1_loss(alpha, ray_alpha)
    kl = vae.kl(mean, logvar)
    total = (w.sdf * l_sdf + w.rgb * l_rgb + w.render_rgb * l_render_rgb
             + w.render_mask * l_render_mask + w.kl * kl)
    stats = {"sdf": l_sdf.item(), "rgb": l_rgb.item(), "render_rgb": l_render_rgb.item(),
             "mask": l_render_mask.item(), "kl": kl.item()}
    if mesh_losses is not None:
        extra, extra_stats = mesh_losses(planes)
        total = total + extra
        stats.update(extra_stats)
    return total, {"loss": total.item(), **stats}
