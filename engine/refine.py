"""Refine (LATTE3D's test-time optimisation): a few Adam steps on the latent z so that
the decoded field, rendered from the input pictures' cameras, looks like those pictures.

One step: decode z -> tri-planes (1, 3, C, H, W); volume-render RAYS random pixels of the
target views with the training renderer (engine.render.volume.render_rays, VolSDF
density); light the rendered albedo as the training views are lit (render.tracer.shade,
normals by central differences of the SDF at the expected surface point), since the
pictures the encoder reads are lit; then
    loss = L1(colour) + MASK_WEIGHT * L1(alpha) + PULL * mean((z - z_start)^2)
(the pull keeps z near where it started: the decoder knows latents like its training
set's and ripples far from them). The latent is optimised, not the decoded tri-planes:
8,000 times fewer unknowns, and every step stays a shape the decoder can make.

A single picture (image mode) comes without a camera: `find_camera` renders the start
from orbit cameras all around and keeps the one whose silhouette and colour match best.
Every step reports through `report(step, total)`, which may raise to cancel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .geometry.surface import sdf_normals
from .render.cameras import camera_rays, orbit_cameras, rays_from_plucker
from .render.tracer import shade
from .render.views import FOV_DEG
from .render.volume import render_rays


@dataclass
class RefineSettings:
    rays: int = 1024                 # random pixels of the target views per step
    samples: int = 32                # volume-rendering samples per ray (as in training)
    lr: float = 0.05                 # Adam step on the raw latent (its std is about 0.5)
    mask_weight: float = 1.0
    pull: float = 0.1                # weight of the pull towards the starting latent
    normal_step: float = 0.01        # central-difference step of the SDF normals
    pose_res: int = 24               # find_camera: render size of each candidate
    pose_azimuths: int = 12          # find_camera: candidates around the object ...
    pose_elevations: tuple = (10.0, 25.0, 40.0)   # ... at these elevations (degrees)


DEFAULT = RefineSettings()


# ----------------------------------------------------------------------------- rendering

def rays_of(views_vx10xSxS: torch.Tensor):
    """Per-pixel targets of encoder views: rgb (N, 3), alpha (N,), origins (N, 3) on each
    ray closest to the world origin, unit dirs (N, 3); N = V * S * S."""
    flat = views_vx10xSxS.permute(0, 2, 3, 1).reshape(-1, views_vx10xSxS.shape[1])
    origins, dirs = rays_from_plucker(flat[:, 4:10])
    return flat[:, :3], flat[:, 3], origins, dirs


def _sdf_normals(field, planes, points_bxrx3, step: float):
    """Unit SDF gradients (B, R, 3) of the field of `planes` by central differences
    (geometry.surface.sdf_normals; differentiable, the refine loss reaches z through them)."""
    B, R, _ = points_bxrx3.shape

    def sdf_fn(probes_mx3):                      # (6 blocks of B*R) -> each row's own planes
        per_row = probes_mx3.reshape(6, B, R, 3).transpose(0, 1).reshape(B, 6 * R, 3)
        sdf_bx6r = field(planes, per_row)[0]
        return sdf_bx6r.reshape(B, 6, R).transpose(0, 1).reshape(-1)
    return sdf_normals(sdf_fn, points_bxrx3.reshape(-1, 3), step).view_as(points_bxrx3)


def render_lit(field, planes, origins_bxrx3, dirs_bxrx3, s: RefineSettings = DEFAULT,
               generator=None):
    """Volume-rendered colour lit like the training views (on white) (B, R, 3) and
    alpha (B, R) of rays through the field of `planes` (B, 3, C, H, W)."""
    colour, alpha, depth = render_rays(lambda p: field(planes, p), origins_bxrx3, dirs_bxrx3,
                                       samples=s.samples, generator=generator)
    surface = origins_bxrx3 + depth[..., None] * dirs_bxrx3
    normals = _sdf_normals(field, planes, surface, s.normal_step)
    albedo = (colour - (1 - alpha)[..., None]) / alpha.clamp(min=1e-4)[..., None]
    return shade(albedo.clamp(0, 1), normals, alpha, dirs_bxrx3), alpha


# ----------------------------------------------------------------------------- refine

def refine_latent(vae, z_1x3xcxhxw: torch.Tensor, views_vx10xSxS: torch.Tensor, steps: int,
                  seed: int = 0, report=None, s: RefineSettings = DEFAULT) -> torch.Tensor:
    """z after `steps` Adam steps towards the target views (see the module docstring).
    Needs autograd on (call it outside torch.inference_mode); returns a detached z."""
    report = report or (lambda step, total: None)
    rgb_n, alpha_n, origins_n, dirs_n = rays_of(views_vx10xSxS.to(z_1x3xcxhxw.device).float())
    gen = torch.Generator().manual_seed(int(seed))
    start = z_1x3xcxhxw.detach().clone()          # a normal tensor, even from inference mode
    z = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=s.lr)
    for step in range(steps):
        pick = torch.randint(0, len(rgb_n), (s.rays,), generator=gen).to(rgb_n.device)
        colour, alpha = render_lit(vae.field, vae.decoder(z), origins_n[pick][None],
                                   dirs_n[pick][None], s, gen)
        loss = (F.l1_loss(colour[0], rgb_n[pick]) + s.mask_weight * F.l1_loss(alpha[0], alpha_n[pick])
                + s.pull * (z - start).pow(2).mean())
        z.grad, = torch.autograd.grad(loss, [z])  # the model's weights gather no gradients
        opt.step()
        report(step + 1, steps)
    return z.detach()


@torch.no_grad()
def find_camera(vae, planes, target_4xSxS: torch.Tensor, s: RefineSettings = DEFAULT,
                tick=None) -> torch.Tensor:
    """The orbit camera c2w (4, 4) from which the field of `planes` (1, 3, C, H, W) looks
    most like the picture `target` (RGB on white + alpha, framed as a training view):
    the least L1 of colour and alpha over pose_azimuths x pose_elevations candidates."""
    tick = tick or (lambda: None)
    n, res = s.pose_azimuths, s.pose_res
    azimuths = [360.0 * k / n for k in range(n)] * len(s.pose_elevations)
    elevations = [e for e in s.pose_elevations for _ in range(n)]
    cams = orbit_cameras(len(azimuths), azimuth_deg=azimuths, elevation_deg=elevations,
                         fov_deg=FOV_DEG)
    small = F.interpolate(target_4xSxS[None].float(), size=(res, res), mode="area")[0]
    want = small.permute(1, 2, 0).reshape(1, -1, 4).to(planes.device)       # (1, r*r, 4)
    gen = torch.Generator().manual_seed(0)
    scores = []
    for cam in cams:
        tick()
        origins, dirs = camera_rays(cam, FOV_DEG, res)
        colour, alpha = render_lit(vae.field, planes, origins.reshape(1, -1, 3).to(planes.device),
                                   dirs.reshape(1, -1, 3).to(planes.device), s, gen)
        scores.append(float((colour - want[..., :3]).abs().mean()
                            + s.mask_weight * (alpha - want[..., 3]).abs().mean()))
    return cams[min(range(len(scores)), key=scores.__getitem__)]
