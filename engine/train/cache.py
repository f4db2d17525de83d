"""Build the training stores.

`build_asset_store`: procedural assets -> multi-view renders (RGB, alpha, Plücker rays)
and 3D samples (points, SDF, colour), plus captions and labels.
`build_latent_store`: a trained VAE encodes every asset (all views) to its latent mean;
captions are encoded by the frozen text encoder; one view per asset becomes the image
condition (cropped and centred exactly like a user's reference picture).
"""

from __future__ import annotations

import sys
import time

import torch

from .store import Store


SURFACE_BANK = 4096        # points on each asset's zero level set (fresh samples start there)


def make_training_asset(seed: int, n_views: int = 4, res: int = 64,
                        n_points: int = 4096) -> dict:
    """One procedural asset as training tensors.

    views (V, 10, H, W): shaded RGB on white, alpha, Plücker rays (what the encoder sees);
    albedo (V, 3, H, W): unshaded colour on white (the rendering-loss target);
    points (P, 3) half near the surface, half uniform in the cube, with sdf (P,), rgb (P, 3);
    surface (S, 3): points on the zero level set, spread over the whole surface area.
    """
    import numpy as np
    from ..data.dataset import surface_points
    from ..data.shapes import make_asset
    from ..render.cameras import orbit_cameras, plucker
    from ..render.tracer import render, shade
    asset = make_asset(seed)
    rng = np.random.default_rng([seed, 7])
    c2w = orbit_cameras(n_views, elevation_deg=list(rng.uniform(5, 40, n_views)),
                        azimuth_deg=float(rng.uniform(0, 360)))
    out = render(asset.sdf, asset.rgb, c2w, 40.0, res)
    origins, dirs = out["rays"]                                              # (V, H, W, 3)
    shaded = shade(out["rgb"], out["normal"], out["alpha"], dirs)
    views = torch.cat([shaded, out["alpha"][..., None], plucker(origins, dirs)], -1)
    hit = out["alpha"] > 0.5
    surface = (origins + out["depth"][..., None] * dirs)[hit]                # (S, 3)
    gen = torch.Generator().manual_seed(seed)
    half = n_points // 2
    pick = torch.randint(0, max(1, len(surface)), (half,), generator=gen)
    near = surface[pick] + 0.02 * torch.randn(half, 3, generator=gen)
    points = torch.cat([near, torch.rand(n_points - half, 3, generator=gen) * 2 - 1])
    bank = surface_points(asset.sdf, SURFACE_BANK, gen)
    if len(bank) < SURFACE_BANK:        # a tiny surface: repeat what was found
        src = bank if len(bank) else points
        bank = src[torch.arange(SURFACE_BANK) % len(src)]
    return {"views": views.permute(0, 3, 1, 2), "albedo": out["rgb"].permute(0, 3, 1, 2),
            "points": points, "sdf": asset.sdf(points), "rgb": asset.rgb(points), "surface": bank,
            "category": asset.category_index, "color": asset.color_index}


def asset_captions(seed: int, n: int, split: str = "train") -> list[str]:
    """n captions of the asset of `seed` (deterministic)."""
    import numpy as np
    from ..data import captions
    from ..data.shapes import make_asset
    rng = np.random.default_rng([seed, 11])
    asset = make_asset(seed)
    return [captions.captions(asset, rng, split=split)[0] for _ in range(n)]


def _one_asset(job):
    torch.set_num_threads(1)   # small ops: threads cost more than they give; use processes
    return make_training_asset(*job)


def build_asset_store(seeds, n_views: int = 4, res: int = 64, n_points: int = 4096,
                      workers: int = 2, log_every: int = 100) -> Store:
    import multiprocessing as mp
    cols: dict[str, list] = {k: [] for k in ("views", "albedo", "points", "sdf", "rgb",
                                             "surface", "category", "color")}
    jobs = [(int(s), n_views, res, n_points) for s in seeds]
    t0 = time.time()
    with mp.get_context("fork").Pool(workers) as pool:
        for i, ex in enumerate(pool.imap(_one_asset, jobs, chunksize=4)):
            for key in cols:
                value = ex[key]
                cols[key].append(value.half() if key in ("views", "albedo", "rgb") else value)
            if log_every and (i + 1) % log_every == 0:
                print(f"assets {i + 1}/{len(jobs)} ({time.time() - t0:.0f}s)",
                      file=sys.stderr, flush=True)
    tensors = {k: torch.stack(v) if torch.is_tensor(v[0]) else torch.tensor(v)
               for k, v in cols.items()}
    return Store(tensors, {"seeds": [int(s) for s in seeds]})


def reference_view(view_10xhxw: torch.Tensor, size: int) -> torch.Tensor:
    """A rendered view as the image encoder sees a user's picture: (4, size, size)."""
    from ..imaging import load_reference
    rgba = view_10xhxw[:4].float().permute(1, 2, 0).numpy()                 # (H, W, 4)
    return load_reference(rgba, size)


@torch.no_grad()
def build_latent_store(model, text_encoder, assets: Store, batch: int = 32,
                       image_view: int = 0, captions_per_asset: int = 4,
                       table: torch.Tensor | None = None) -> Store:
    """Latents of every asset (the encoder's means, or a fit stage's latent `table`
    (N, 3, c, h, w)) + caption token states + an image-condition view."""
    cfg = model.cfg
    latents, images = [], []
    for start in range(0, len(assets), batch):
        idx = torch.arange(start, min(start + batch, len(assets)))
        views = assets.tensors["views"][idx].float()
        if table is None:
            latents.append(model.vae.encoder(views)[0])                     # (b, 3, c, h, w)
        images += [reference_view(v[image_view], cfg.cond.image_size) for v in views]
    latent = table.float() if table is not None else torch.cat(latents)
    shift, scale = latent.mean().item(), 1.0 / latent.std().item()
    k = captions_per_asset
    flat = [c for seed in assets.info["seeds"] for c in asset_captions(seed, k)]
    toks, masks, pooled = [], [], []
    for start in range(0, len(flat), 256):
        t, m, p = text_encoder(flat[start:start + 256])
        L = cfg.dit.cond_tokens
        toks.append(torch.nn.functional.pad(t, (0, 0, 0, L - t.shape[1])).half())
        masks.append(torch.nn.functional.pad(m, (0, L - m.shape[1])))
        pooled.append(p.half())
    n = len(assets)
    tensors = {
        "latent": ((latent - shift) * scale).half(),
        "image": torch.stack(images).half(),
        "text_tokens": torch.cat(toks).view(n, k, cfg.dit.cond_tokens, -1),
        "text_mask": torch.cat(masks).view(n, k, cfg.dit.cond_tokens),
        "text_pooled": torch.cat(pooled).view(n, k, -1),
        "category": assets.tensors["category"], "color": assets.tensors["color"],
    }
    info = dict(assets.info, latent_shift=shift, latent_scale=scale)
    return Store(tensors, info)
