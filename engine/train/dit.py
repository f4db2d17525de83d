"""DiT training: rectified flow on cached, normalised latents.

x0 = (z - latent_shift) * latent_scale; t ~ logit-normal; z_t = (1 - t) x0 + t * noise;
the DiT predicts v = noise - x0 (MSE). Conditions: caption token states (text) or a rendered
view through the small image encoder (image); 12% of conditions are replaced by the learned
null condition so classifier-free guidance works at sampling time. With a mean-token
probability p, that share of text conditions is reduced to one token, the mean of the
caption's token states (augmentation toward the caption's gist; sampling keeps all tokens).
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


def mixed_condition(dit, image_encoder, batch: dict, use_image, drop, gist=None):
    """Per example: text or image condition, or the null condition where `drop`; where
    `gist`, the text condition is its mean token."""
    L = dit.cfg.cond_tokens
    txt_t, txt_m = batch["text_tokens"].float(), batch["text_mask"]
    if gist is not None:
        txt_t, txt_m = gist_tokens(txt_t, txt_m, gist)
    txt_t, txt_m = pad_tokens(txt_t, txt_m, L)
    img_t, img_m, img_p = image_encoder(batch["image"].float())
    img_t, img_m = pad_tokens(img_t, img_m, L)
    pick = use_image[:, None, None]
    tokens = torch.where(pick, img_t, txt_t)
    mask = torch.where(pick[..., 0], img_m, txt_m)
    pooled = torch.where(use_image[:, None], img_p, batch["text_pooled"].float())
    null = dit.null_condition(len(drop))
    tokens = torch.where(drop[:, None, None], null.tokens, tokens)
    mask = torch.where(drop[:, None], null.mask, mask)
    pooled = torch.where(drop[:, None], null.pooled, pooled)
    return Condition(tokens, mask, pooled)


def draw_noise(batch_size: int, latent_shape, gen: torch.Generator, image_prob: float,
               drop_prob: float, mean_token_prob: float = 0.0) -> dict:
    """All randomness of one global batch, drawn up front so ranks can slice it."""
    rnd = {"t": torch.sigmoid(torch.randn(batch_size, generator=gen)),
           "noise": torch.randn((batch_size, *latent_shape), generator=gen),
           "use_image": torch.rand(batch_size, generator=gen) < image_prob,
           "drop": torch.rand(batch_size, generator=gen) < drop_prob}
    if mean_token_prob:   # drawn only when used: older recipes keep their random stream
        rnd["mean_token"] = torch.rand(batch_size, generator=gen) < mean_token_prob
    return rnd


def dit_step_losses(dit, image_encoder, batch: dict, rnd: dict):
    """batch: latent (B, 3, c, h, w) normalised, text_tokens/mask/pooled, image (B, 4, S, S)."""
    x0 = batch["latent"].float()
    t = rnd["t"].to(x0)
    noise = rnd["noise"].to(x0)
    tb = t.view(-1, 1, 1, 1, 1)
    xt = (1 - tb) * x0 + tb * noise
    cond = mixed_condition(dit, image_encoder, batch, rnd["use_image"].to(x0.device),
                           rnd["drop"].to(x0.device),
                           rnd["mean_token"].to(x0.device) if "mean_token" in rnd else None)
    loss = F.mse_loss(dit(xt, t, cond), noise - x0)
    return loss, {"loss": loss.item()}
