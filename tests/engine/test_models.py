"""Shapes through every module and the plane-mixing property of the decoder's attention."""

import torch

from engine.config import ModelConfig, tiny
from engine.models import Condition, build_model
from engine.models.layers import AdaLNBlock
from engine.models.vae import sample_triplane


def _model():
    torch.manual_seed(0)
    cfg = tiny()
    return cfg, build_model(cfg).eval()


def _cond(batch, tokens=5, dim=384):
    return Condition(torch.randn(batch, tokens, dim), torch.ones(batch, tokens, dtype=torch.bool),
                     torch.randn(batch, dim))


def test_shapes_through_every_module():
    cfg, m = _model()
    v = cfg.vae
    views = torch.randn(2, 3, v.in_channels, v.image_size, v.image_size)    # (B, V, C, H, W)
    z, mean, logvar = m.vae.encode(views)
    assert z.shape == mean.shape == logvar.shape == (2, 3, v.latent_channels, v.latent_size,
                                                     v.latent_size)
    assert v.latent_size == v.image_size // 8
    planes = m.vae.decoder(z)
    assert planes.shape == (2, 3, v.plane_channels, v.plane_size, v.plane_size)
    sdf, rgb = m.vae.field(planes, torch.rand(2, 50, 3) * 2 - 1)
    assert sdf.shape == (2, 50) and rgb.shape == (2, 50, 3)
    assert rgb.min() >= 0 and rgb.max() <= 1
    vel = m.dit(z, torch.rand(2), _cond(2))
    assert vel.shape == z.shape
    tokens, mask, pooled = m.image_encoder(torch.rand(2, 4, cfg.cond.image_size, cfg.cond.image_size))
    assert tokens.shape == (2, 16, cfg.dit.cond_dim) and pooled.shape == (2, cfg.dit.cond_dim)
    assert m.vae.kl(mean, logvar).ndim == 0


def test_mini16_is_kiln_mini_with_sixteen_latent_channels_end_to_end():
    """The recipe's SIZE=mini16: z (3, 16, 8, 8) from the encoder, through the decoder,
    and the DiT's velocity of the same shape; everything else is mini's."""
    from engine.config import mini, mini16
    cfg, base = mini16(), mini()
    assert cfg.vae.latent_channels == 16 and base.vae.latent_channels == 8
    assert {k: v for k, v in vars(cfg.vae).items() if k != "latent_channels"} == \
        {k: v for k, v in vars(base.vae).items() if k != "latent_channels"}
    torch.manual_seed(0)
    m = build_model(cfg).eval()
    v = cfg.vae
    with torch.no_grad():
        z, _, _ = m.vae.encode(torch.randn(1, 2, v.in_channels, v.image_size, v.image_size))
        assert z.shape == (1, 3, 16, 8, 8)
        assert m.vae.decoder(z).shape == (1, 3, v.plane_channels, v.plane_size, v.plane_size)
        assert m.dit(z, torch.rand(1), _cond(1)).shape == z.shape


def test_encoder_uses_every_view():
    cfg, m = _model()
    v = cfg.vae
    views = torch.randn(1, 2, v.in_channels, v.image_size, v.image_size)
    mean = m.vae.encoder(views)[0]
    views2 = views.clone()
    views2[:, 1] += 1.0
    assert not torch.allclose(mean, m.vae.encoder(views2)[0])


def test_untrained_field_is_a_closed_blob():
    """Geometric initialisation: inside at the centre, outside at the corners."""
    cfg, m = _model()
    planes = torch.randn(1, 3, cfg.vae.plane_channels, cfg.vae.plane_size, cfg.vae.plane_size)
    corners = torch.tensor([[[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]],
                           dtype=torch.float32)
    sdf_center, _ = m.vae.field(planes, torch.zeros(1, 1, 3))
    sdf_corners, _ = m.vae.field(planes, corners)
    assert sdf_center.item() < 0 and (sdf_corners > 0).all()


def _block_moves(group: str):
    """Perturb plane 0 of the input, return which planes' outputs move."""
    torch.manual_seed(1)
    block = AdaLNBlock(16, 2, 16, group=group)
    for p in block.ada.parameters():          # adaLN-Zero starts as identity; open the gates
        torch.nn.init.normal_(p, std=0.5)
    x = torch.randn(1, 3 * 9, 16)               # (B, 3 planes * 3x3 tokens, D)
    c = torch.randn(1, 16)
    x2 = x.clone()
    x2[:, :9] += torch.randn(1, 9, 16)
    delta = (block(x2, c) - block(x, c)).abs().view(3, 9, 16).amax(dim=(1, 2))
    return delta > 1e-6


def test_self_plane_attention_never_mixes_planes():
    assert _block_moves("plane").tolist() == [True, False, False]


def test_cross_plane_attention_mixes_planes():
    assert _block_moves("all").tolist() == [True, True, True]


def test_decoder_alternates_self_and_cross_plane_blocks():
    cfg, m = _model()
    groups = [b.group for b in m.vae.decoder.blocks]
    assert groups[0] == "plane" and groups[1] == "all"


def test_triplane_sampling_reads_the_right_planes():
    """A feature only in the xy plane varies with x and y but not with z."""
    planes = torch.zeros(1, 3, 1, 8, 8)
    planes[0, 0, 0] = torch.arange(64, dtype=torch.float32).view(8, 8)
    p = torch.tensor([[[0.3, -0.2, -0.9], [0.3, -0.2, 0.8], [-0.5, -0.2, 0.8]]])
    f = sample_triplane(planes, p)[0, :, 0]
    assert torch.isclose(f[0], f[1]) and not torch.isclose(f[1], f[2])


def test_dit_condition_matters_and_null_condition_has_right_shape():
    cfg, m = _model()
    torch.nn.init.normal_(m.dit.final.linear.weight, std=0.1)
    x = torch.randn(1, 3, cfg.vae.latent_channels, cfg.vae.latent_size, cfg.vae.latent_size)
    t = torch.full((1,), 0.5)
    v1, v2 = m.dit(x, t, _cond(1)), m.dit(x, t, _cond(1))
    assert not torch.allclose(v1, v2)
    null = m.dit.null_condition(3)
    assert null.tokens.shape == (3, cfg.dit.cond_tokens, cfg.dit.cond_dim)


def test_config_round_trip(tmp_path):
    cfg = tiny()
    cfg.latent_scale = 0.7
    cfg.save(tmp_path / "config.json")
    assert ModelConfig.load(tmp_path / "config.json") == cfg


def test_dit_patchify_round_trip():
    from engine.config import DiTConfig
    from engine.models.dit import DiT
    dit = DiT(DiTConfig(width=32, depth=1, heads=2, patch=2), latent_channels=3, latent_size=4)
    x = torch.randn(2, 3, 3, 4, 4)
    tokens = dit.patchify(x)
    assert tokens.shape == (2, 3 * 2 * 2, 3 * 4)
    assert torch.equal(dit.unpatchify(tokens, 3, 4, 4), x)
    assert dit(x, torch.rand(2), _cond(2)).shape == x.shape


def test_mean_token_is_the_mean_of_the_real_tokens_only():
    from engine.models.dit import mean_token
    tokens = torch.randn(2, 5, 384)
    mask = torch.tensor([[True, True, True, False, False], [True] * 5])
    gist = mean_token(tokens, mask)
    assert gist.shape == (2, 1, 384)
    assert torch.allclose(gist[0, 0], tokens[0, :3].mean(0), atol=1e-6)
    assert torch.allclose(gist[1, 0], tokens[1].mean(0), atol=1e-6)
    padded = tokens.clone()
    padded[0, 3:] = 100.0                       # padding never leaks into the mean
    assert torch.allclose(mean_token(padded, mask)[0], gist[0])


def test_training_reduces_the_drawn_share_of_captions_to_their_mean_token():
    from engine.train.dit import draw_noise, mixed_condition
    cfg, m = _model()
    B, L = 64, 6
    gen = torch.Generator().manual_seed(0)
    rnd = draw_noise(B, (3, 4, 4, 4), gen, image_prob=0.0, drop_prob=0.0, mean_token_prob=0.5)
    assert 16 < int(rnd["mean_token"].sum()) < 48
    S = cfg.cond.image_size
    batch = {"text_tokens": torch.randn(B, L, 384), "text_mask": torch.ones(B, L, dtype=torch.bool),
             "text_pooled": torch.randn(B, 384), "image": torch.rand(B, 4, S, S)}
    cond = mixed_condition(m.dit, m.image_encoder, batch, rnd["use_image"], rnd["drop"],
                           rnd["mean_token"])
    real = cond.mask.sum(1)
    assert torch.equal(real == 1, rnd["mean_token"]) and (real[~rnd["mean_token"]] == L).all()
    pick = rnd["mean_token"].nonzero()[0, 0]
    assert torch.allclose(cond.tokens[pick, 0], batch["text_tokens"][pick].mean(0), atol=1e-5)
    # without the option the random stream is the one older recipes drew
    plain = draw_noise(B, (3, 4, 4, 4), torch.Generator().manual_seed(0), 0.0, 0.0)
    assert "mean_token" not in plain and torch.equal(plain["noise"], rnd["noise"])


def test_condition_noise_moves_text_conditions_by_their_own_spread_and_spares_padding():
    from engine.train.dit import TEXT_NOISE_KEYS, draw_noise, mixed_condition
    cfg, m = _model()
    B, L, D = 32, cfg.dit.cond_tokens, 384
    rnd = draw_noise(B, (3, 4, 4, 4), torch.Generator().manual_seed(0), image_prob=0.0,
                     drop_prob=0.0, cond_noise=0.5, text_shape=(L, D))
    assert (rnd["cond_scale"] >= 0).all() and (rnd["cond_scale"] < 0.5).all()
    S = cfg.cond.image_size
    mask = torch.zeros(B, L, dtype=torch.bool)
    mask[:, :3] = True
    batch = {"text_tokens": 3.0 * torch.randn(B, L, D) * mask[..., None],
             "text_mask": mask, "text_pooled": torch.randn(B, D), "image": torch.rand(B, 4, S, S)}
    noise = {k: rnd[k] for k in TEXT_NOISE_KEYS}
    clean = mixed_condition(m.dit, m.image_encoder, batch, rnd["use_image"], rnd["drop"])
    noisy = mixed_condition(m.dit, m.image_encoder, batch, rnd["use_image"], rnd["drop"],
                            text_noise=noise)
    moved = (noisy.tokens - clean.tokens)[:, :3].pow(2).mean((1, 2)).sqrt()      # (B,)
    assert torch.allclose(moved, 3.0 * rnd["cond_scale"], rtol=0.15, atol=0.02)
    assert torch.equal(noisy.tokens[:, 3:], clean.tokens[:, 3:])               # padding
    assert not torch.equal(noisy.pooled, clean.pooled)
    # image conditions take none of it
    use_image = torch.ones(B, dtype=torch.bool)
    assert torch.equal(mixed_condition(m.dit, m.image_encoder, batch, use_image, rnd["drop"],
                                       text_noise=noise).tokens,
                       mixed_condition(m.dit, m.image_encoder, batch, use_image, rnd["drop"]).tokens)
    plain = draw_noise(B, (3, 4, 4, 4), torch.Generator().manual_seed(0), 0.0, 0.0)
    assert "cond_scale" not in plain and torch.equal(plain["noise"], rnd["noise"])
