"""Build the training stores.

`build_asset_store`: procedural seeds -> an asset store (engine.data.dataset, the one
format every trainer reads; `engine dataset --meshes` writes the same from mesh files).
`build_latent_store`: a trained VAE encodes every asset (all views) to its latent mean,
or a fit stage's latent table is taken as is; the assets' captions (store.json) are
encoded by the frozen text encoder; one view per asset becomes the image condition
(cropped and centred exactly like a user's reference picture).
"""

from __future__ import annotations

import torch

from .store import Store, asset_captions


def build_asset_store(seeds, n_views: int = 4, res: int = 64, n_points: int = 4096,
                      workers: int = 2, progress=None) -> Store:
    from ..data.dataset import build_store, procedural_sources
    return build_store(procedural_sources(seeds), n_views, res, n_points, workers=workers,
                       progress=progress)


def reference_view(view_10xhxw: torch.Tensor, size: int) -> torch.Tensor:
    """A rendered view as the image encoder sees a user's picture: (4, size, size)."""
    from ..imaging import load_reference
    rgba = view_10xhxw[:4].float().permute(1, 2, 0).numpy()                 # (H, W, 4)
    return load_reference(rgba, size)


@torch.no_grad()
def encoder_means(model, assets: Store, batch: int = 32) -> torch.Tensor:
    """The VAE encoder's posterior means of every asset from all its views, in eval mode
    (BatchNorm's running statistics): (N, 3, c, h, w)."""
    encoder, was_training = model.vae.encoder, model.vae.encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    means = [encoder(assets.tensors["views"][start:start + batch].float().to(device))[0]
             for start in range(0, len(assets), batch)]
    encoder.train(was_training)
    return torch.cat(means)


@torch.no_grad()
def build_latent_store(model, text_encoder, assets: Store, batch: int = 32,
                       image_view: int = 0, captions_per_asset: int = 4,
                       table: torch.Tensor | None = None,
                       norm: tuple[float, float] | None = None,
                       neighbour_captions: int = 0) -> Store:
    """Latents of every asset (the encoder's means, or a fit stage's latent `table`
    (N, 3, c, h, w)) + caption token states + an image-condition view. The latents are
    normalised by their own mean and spread, or by `norm` = (shift, scale) (a fine-tune
    keeps its init model's, so that model's DiT stays valid). With neighbour_captions n,
    each asset gets n more captions: its own with the category word swapped for a word
    near it in the text encoder's space (engine/data/neighbours.py)."""
    cfg = model.cfg
    images = [reference_view(v[image_view], cfg.cond.image_size)
              for v in assets.tensors["views"]]
    latent = table.float() if table is not None else encoder_means(model, assets, batch)
    shift, scale = norm or (latent.mean().item(), 1.0 / latent.std().item())
    k = captions_per_asset
    per_asset, info = asset_captions(assets, k), dict(assets.info)
    if neighbour_captions:
        extra, info["neighbours"] = with_neighbours(text_encoder, assets, per_asset,
                                                    neighbour_captions)
        per_asset = [own + more for own, more in zip(per_asset, extra)]
        k += neighbour_captions
    flat = [c for caps in per_asset for c in caps]
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
    info.update(latent_shift=shift, latent_scale=scale)
    return Store(tensors, info)


def with_neighbours(text_encoder, assets: Store, per_asset: list[list[str]], n: int):
    """(n neighbour-word captions per asset, the neighbour table {category: [words]})."""
    from ..data.neighbours import category_neighbours, neighbour_captions, vocabulary
    vocab_file = getattr(text_encoder, "vocabulary_file", None)
    if vocab_file is None:
        raise ValueError("neighbour captions need a text encoder with a WordPiece vocabulary "
                         "(MiniLM); this model's has none: drop --neighbour-captions")
    table = category_neighbours(text_encoder, vocabulary(vocab_file))
    names = assets.info["categories"]
    cats = [names[i] if i >= 0 else None for i in assets.tensors["category"].tolist()]
    return neighbour_captions(per_asset, cats, table, n), table
