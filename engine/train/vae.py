"""VAE training: multi-view renders in, tri-plane field out.

Losses per batch (input views: a random 1..4 of the rendered views, so single-image
reconstruction works):
- 3D: L1 on the (clamped) SDF at sampled points, and an inside/outside cross-entropy on
  its sign (occupancy BCE on -sdf / sign_temp: a wrong sign near the surface costs most,
  a right one far from it nothing); L1 on colour near the surface;
- rendering: VolSDF volume rendering of rays from all views (input and novel): colour and
  mask L1; skipped when both weights are 0 (geometry first: 3D losses alone until the
  shape is right);
- KL of the latent, small weight (the latent stays smooth for the DiT).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..evaluation.metrics import near_sign_error
from ..render.cameras import rays_from_plucker
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
    sign: float = 0.0           # occupancy BCE weight (0: SDF L1 only, the first recipe)
    sign_temp: float = 0.01     # SDF distance that makes a logit of 1

    @property
    def renders(self) -> bool:
        return bool(self.render_rgb or self.render_mask)


def geometry_loss(sdf_pred, sdf_true, w: VAELossWeights):
    """SDF L1 clamped to the band (focus on the surface) + a small unclamped term (a
    gradient everywhere) + the sign cross-entropy. sdf (B, N) -> scalar."""
    c = w.sdf_clamp
    l1 = F.l1_loss(sdf_pred.clamp(-c, c), sdf_true.clamp(-c, c)) + 0.2 * F.l1_loss(sdf_pred, sdf_true)
    total = w.sdf * l1
    if w.sign:
        inside = (sdf_true < 0).float()
        total = total + w.sign * F.binary_cross_entropy_with_logits(-sdf_pred / w.sign_temp, inside)
    return total, l1


def field_losses(field, planes, batch: dict, w: VAELossWeights):
    """3D losses of decoded tri-planes at the batch's sample points: geometry (SDF L1 +
    sign) everywhere, colour L1 within `surface_band` of the surface -> (total, stats)."""
    sdf, rgb = field(planes, batch["points"])
    l_geo, l_sdf = geometry_loss(sdf, batch["sdf"], w)
    near = (batch["sdf"].abs() < w.surface_band).float()[..., None]
    l_rgb = ((rgb - batch["rgb"]).abs() * near).sum() / (near.sum() * 3).clamp(min=1)
    return l_geo + w.rgb * l_rgb, {"sdf": l_sdf.item(), "rgb": l_rgb.item(),
                                   "sign_err": near_sign_error(sdf, batch["sdf"])}



def fit_step_losses(vae, table_z, batch: dict, w: VAELossWeights, prior: float,
                    mesh_losses=None):
    """Auto-decoder step (DeepSDF-style, fit-then-encode): free per-asset latents
    table_z (B, 3, c, h, w) through the decoder and field; a Gaussian prior on the latents
    (weight `prior`) keeps them compact for the DiT. mesh_losses as in vae_step_losses."""
    planes = vae.decoder(table_z)
    total, stats = field_losses(vae.field, planes, batch, w)
    l_prior = table_z.pow(2).mean()
    stats["prior"] = l_prior.item()
    total = total + prior * l_prior
    if mesh_losses is not None:
        extra, extra_stats = mesh_losses(planes)
        total = total + extra
        stats.update(extra_stats)
    return total, {"loss": total.item(), **stats}


def encoder_step_losses(vae, views, n_views: int, target_z=None, batch: dict | None = None,
                        w: VAELossWeights | None = None, target_rows=None):
    """The encoder learns from 1..4 of an asset's views, the decoder and field frozen:
    - target_z (B, 3, c, h, w): MSE of the posterior mean against the auto-decoded latents,
      relative to their variance (a target in latent space: cheap, no decoder pass); with
      target_rows (B,) bool, target_z (K, 3, c, h, w) holds only those rows' latents;
    - batch with points/sdf/rgb: the field losses of the decoded mean (a target in 3D:
      what the latent is for, through the frozen decoder; about 4x the cost per asset).
    Either or both; the total is their sum."""
    mean, _ = vae.encoder(views[:, :n_views])
    total, stats = mean.new_zeros(()), {}
    if target_z is not None and len(target_z):
        covered = mean if target_rows is None else mean[target_rows]
        l_table = F.mse_loss(covered, target_z) / target_z.var().clamp(min=1e-8)
        total, stats["table"] = total + l_table, l_table.item()
    if batch is not None and "points" in batch:
        l_field, field_stats = field_losses(vae.field, vae.decoder(mean), batch,
                                            w or VAELossWeights())
        total = total + l_field
        stats.update(field_stats)
    return total, {"loss": total.item(), **stats}


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
    total, stats = field_losses(vae.field, planes, batch, w)
    kl = vae.kl(mean, logvar)
    total = total + w.kl * kl
    stats["kl"] = kl.item()
    if w.renders:
        l_render_rgb, l_render_mask = render_losses(vae, planes, views, batch["albedo"], w, gen)
        total = total + w.render_rgb * l_render_rgb + w.render_mask * l_render_mask
        stats.update(render_rgb=l_render_rgb.item(), mask=l_render_mask.item())
    if mesh_losses is not None:
        extra, extra_stats = mesh_losses(planes)
        total = total + extra
        stats.update(extra_stats)
    return total, {"loss": total.item(), **stats}


def render_losses(vae, planes, views, albedo, w: VAELossWeights, gen: torch.Generator):
    """Colour and mask L1 of volume-rendered random rays from all views."""
    targets = torch.cat([albedo, views[:, :, 3:]], dim=2)                   # (B, V, 10, H, W)
    origins, dirs, ray_rgb, ray_alpha = pick_rays(targets, w.rays, gen)
    color, alpha, _ = render_rays(lambda p: vae.field(planes, p), origins, dirs,
                                  samples=w.ray_samples, generator=gen)
    return F.l1_loss(color, ray_rgb), F.l1_loss(alpha, ray_alpha)
