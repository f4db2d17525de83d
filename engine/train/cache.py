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


def build_asset_store(seeds, n_views: int = 4, res: int = 64, n_points: int = 4096,
                      captions_per_asset: int = 4, log_every: int = 100) -> Store:
    from ..data.dataset import make_example
    cols: dict[str, list] = {k: [] for k in ("views", "points", "sdf", "rgb", "category",
                                             "color")}
    captions, t0 = [], time.time()
    for i, seed in enumerate(seeds):
        ex = make_example(int(seed), n_views=n_views, res=res, n_points=n_points,
                          n_captions=captions_per_asset)
        cols["views"].append(ex["views"].half())                            # (V, 10, H, W)
        cols["points"].append(ex["points"].float())                         # (P, 3)
        cols["sdf"].append(ex["sdf"].float())                               # (P,)
        cols["rgb"].append(ex["rgb"].half())                                # (P, 3)
        cols["category"].append(int(ex["category"]))
        cols["color"].append(int(ex["color"]))
        captions.append(list(ex["captions"]))
        if log_every and (i + 1) % log_every == 0:
            print(f"assets {i + 1}/{len(seeds)} ({time.time() - t0:.0f}s)", file=sys.stderr,
                  flush=True)
    tensors = {k: torch.stack(v) if torch.is_tensor(v[0]) else torch.tensor(v)
               for k, v in cols.items()}
    return Store(tensors, {"seeds": [int(s) for s in seeds], "captions": captions})


def reference_view(view_10xhxw: torch.Tensor, size: int) -> torch.Tensor:
    """A rendered view as the image encoder sees a user's picture: (4, size, size)."""
    from ..imaging import load_reference
    rgba = view_10xhxw[:4].float().permute(1, 2, 0).numpy()                 # (H, W, 4)
    return load_reference(rgba, size)


@torch.no_grad()
def build_latent_store(model, text_encoder, assets: Store, batch: int = 32,
                       image_view: int = 0) -> Store:
    """Encoder means of every asset + caption token states + an image-condition view."""
    cfg = model.cfg
    latents, images = [], []
    for start in range(0, len(assets), batch):
        idx = torch.arange(start, min(start + batch, len(assets)))
        views = assets.tensors["views"][idx].float()
        latents.append(model.vae.encoder(views)[0])                         # (b, 3, c, h, w)
        images += [reference_view(v[image_view], cfg.cond.image_size) for v in views]
    latent = torch.cat(latents)
    shift, scale = latent.mean().item(), 1.0 / latent.std().item()
    caps = assets.info["captions"]
    k = min(len(c) for c in caps)
    flat = [c[j] for c in caps for j in range(k)]
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
