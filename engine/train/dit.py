"""DiT training: rectified flow on cached, normalised latents.

x0 = (z - latent_shift) * latent_scale; t ~ logit-normal; z_t = (1 - t) x0 + t * noise;
the DiT predicts v = noise - x0 (MSE). Conditions: caption token states (text) or a rendered
view through the small image encoder (image); 12% of conditions are replaced by the learned
null condition so classifier-free guidance works at sampling time. With a mean-token
probability p, that share of text conditions is reduced to one token, the mean of the
caption's token states (augmentation toward the caption's gist; sampling keeps all tokens).
With a condition-noise spread s, each text condition gets Gaussian noise of a share drawn
in [0, s) of its own spread on its token states and pooled vector (a smoother map from
the text encoder's space, toward phrasings near but not among the training captions).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.dit import Condition, mean_token


def pad_tokens(tokens, mask, length: int):
    """(B, L, D), (B, L) -> (B, length, D), (B, length)."""
    extra = length - tokens.shape[1]
    return F.pad(tokens, (0, 0, 0, extra)), F.pad(mask, (0, extra))


def gist_tokens(tokens, mask, gist):
    """Where gist (B,) is True, a caption's tokens (B, L, D) become one: their mean."""
    first = torch.zeros_like(mask)
    first[:, 0] = True
    tokens = torch.where(gist[:, None, None], mean_token(tokens, mask).expand_as(tokens), tokens)
    return tokens, torch.where(gist[:, None], first, mask)


def noised_text(tokens, mask, pooled, noise: dict):
    """tokens (B, L, D), mask (B, L), pooled (B, D) plus noise["token_noise"] (B, L, D) and
    noise["pooled_noise"] (B, D) scaled by noise["cond_scale"] (B,) times each caption's
    own spread (over its real tokens; padding stays zero)."""
    m = mask[..., None].float()
    count = (m.sum((1, 2)) * tokens.shape[-1]).clamp(min=1)
    mean = (tokens * m).sum((1, 2)) / count
    spread = (((tokens - mean[:, None, None]) * m).pow(2).sum((1, 2)) / count).sqrt()  # (B,)
    scale = noise["cond_scale"].to(tokens)
    tokens = tokens + (scale * spread)[:, None, None] * noise["token_noise"].to(tokens) * m
    pooled = pooled + (scale[:, None] * pooled.std(-1, keepdim=True)) * noise["pooled_noise"].to(pooled)
    return tokens, pooled


def mixed_condition(dit, image_encoder, batch: dict, use_image, drop, gist=None,
                    text_noise: dict | None = None):
    """Per example: text or image condition, or the null condition where `drop`; where
    `gist`, the text condition is its mean token; with `text_noise` (draw_noise's
    cond_scale / token_noise / pooled_noise), the text condition is noised."""
    L = dit.cfg.cond_tokens
    txt_t, txt_m = batch["text_tokens"].float(), batch["text_mask"]
    txt_p = batch["text_pooled"].float()
    if text_noise is not None:
        txt_t, txt_p = noised_text(txt_t, txt_m, txt_p, text_noise)
    if gist is not None:
        txt_t, txt_m = gist_tokens(txt_t, txt_m, gist)
    txt_t, txt_m = pad_tokens(txt_t, txt_m, L)
    img_t, img_m, img_p = image_encoder(batch["image"].float())
    img_t, img_m = pad_tokens(img_t, img_m, L)
    pick = use_image[:, None, None]
    tokens = torch.where(pick, img_t, txt_t)
    mask = torch.where(pick[..., 0], img_m, txt_m)
    pooled = torch.where(use_image[:, None], img_p, txt_p)
    null = dit.null_condition(len(drop))
    tokens = torch.where(drop[:, None, None], null.tokens, tokens)
    mask = torch.where(drop[:, None], null.mask, mask)
    pooled = torch.where(drop[:, None], null.pooled, pooled)
    return Condition(tokens, mask, pooled)


def draw_noise(batch_size: int, latent_shape, gen: torch.Generator, image_prob: float,
               drop_prob: float, mean_token_prob: float = 0.0, cond_noise: float = 0.0,
               text_shape: tuple[int, int] | None = None) -> dict:
    """All randomness of one global batch, drawn up front so ranks can slice it
    (text_shape (L, D): the text condition's, for cond_noise)."""
    rnd = {"t": torch.sigmoid(torch.randn(batch_size, generator=gen)),
           "noise": torch.randn((batch_size, *latent_shape), generator=gen),
           "use_image": torch.rand(batch_size, generator=gen) < image_prob,
           "drop": torch.rand(batch_size, generator=gen) < drop_prob}
    if mean_token_prob:   # drawn only when used: older recipes keep their random stream
        rnd["mean_token"] = torch.rand(batch_size, generator=gen) < mean_token_prob
    if cond_noise:        # likewise
        L, D = text_shape
        rnd["cond_scale"] = cond_noise * torch.rand(batch_size, generator=gen)
        rnd["token_noise"] = torch.randn((batch_size, L, D), generator=gen)
        rnd["pooled_noise"] = torch.randn((batch_size, D), generator=gen)
    return rnd


TEXT_NOISE_KEYS = ("cond_scale", "token_noise", "pooled_noise")


def dit_step_losses(dit, image_encoder, batch: dict, rnd: dict):
    """batch: latent (B, 3, c, h, w) normalised, text_tokens/mask/pooled, image (B, 4, S, S)."""
    x0 = batch["latent"].float()
    t = rnd["t"].to(x0)
    noise = rnd["noise"].to(x0)
    tb = t.view(-1, 1, 1, 1, 1)
    xt = (1 - tb) * x0 + tb * noise
    cond = mixed_condition(dit, image_encoder, batch, rnd["use_image"].to(x0.device),
                           rnd["drop"].to(x0.device),
                           rnd["mean_token"].to(x0.device) if "mean_token" in rnd else None,
                           {k: rnd[k] for k in TEXT_NOISE_KEYS} if "cond_scale" in rnd else None)
    loss = F.mse_loss(dit(xt, t, cond), noise - x0)
    return loss, {"loss": loss.item()}
