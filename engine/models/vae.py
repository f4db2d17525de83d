"""The 3D-aware VAE: multi-view images -> KL tri-plane latent -> high-resolution tri-planes.

Encoder (LN3Diff-style): every view pixel carries RGB, alpha and its camera ray as a
Plücker embedding; a conv stem downsamples each view by 8; learned tri-plane queries,
offset by a pooled summary of the views (tokens and the object's colour statistics),
cross-attend to the tokens of all views and give the mean and log-variance of
z (3, c, h, w). The mean is standardised per element over the data (BatchNorm without
affine) and the posterior std is capped, so the latent carries the object rather than
the queries' input-independent baseline or the prior's noise.
Decoder: transformer blocks alternating self-plane and cross-plane attention (DiT blocks
with adaLN, conditioned on a pooled summary of the latent), then a conv upsampler.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import FLEXI_HEAD_OUTPUTS as FLEXI_OUTPUTS
from ..config import VAEConfig
from .layers import AdaLNBlock, Attention, Mlp, triplane_pos_embed


# ----------------------------------------------------------------------------- encoder

# posterior std at most 0.25: the KL term cannot collapse the posterior into the prior
# (Adam would otherwise let even a tiny KL weight drown the latent in noise)
LOGVAR_MAX = -2.77

def _conv_stage(cin: int, cout: int) -> nn.Sequential:
    """Halves H and W."""
    return nn.Sequential(nn.Conv2d(cin, cout, 4, stride=2, padding=1),
                         nn.SiLU(), nn.Conv2d(cout, cout, 3, padding=1), nn.SiLU())


class FusionBlock(nn.Module):
    """Tri-plane queries: cross-attend to view tokens, then self-attend, then MLP."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm_q, self.norm_kv = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.cross = Attention(dim, heads)
        self.norm_s = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, heads)
        self.norm_m = nn.LayerNorm(dim)
        self.mlp = Mlp(dim)

    def forward(self, q, tokens):
        q = q + self.cross(self.norm_q(q), self.norm_kv(tokens))
        q = q + self.self_attn(self.norm_s(q))
        return q + self.mlp(self.norm_m(q))


def object_colour(views):
    """Alpha-weighted mean colour and its spread over all views: (B, V, C, H, W) -> (B, 6)."""
    rgb, alpha = views[:, :, :3], views[:, :, 3:4]
    w = alpha / alpha.sum(dim=(1, 3, 4), keepdim=True).clamp(min=1.0)
    mean = (rgb * w).sum(dim=(1, 3, 4))                                     # (B, 3)
    spread = ((rgb - mean[:, None, :, None, None]).abs() * w).sum(dim=(1, 3, 4))
    return torch.cat([mean, spread], dim=1)


class TriplaneEncoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.cfg = cfg
        chans = (cfg.in_channels,) + tuple(cfg.enc_channels)
        self.stem = nn.Sequential(*[_conv_stage(a, b) for a, b in zip(chans[:-1], chans[1:])])
        self.to_tokens = nn.Linear(chans[-1], cfg.enc_width)
        n = cfg.latent_size
        self.queries = nn.Parameter(torch.randn(3 * n * n, cfg.enc_width) * 0.02)
        self.register_buffer("pos", triplane_pos_embed(cfg.enc_width, n, n), persistent=False)
        self.blocks = nn.ModuleList(FusionBlock(cfg.enc_width, 4 if cfg.enc_width >= 64 else 2)
                                    for _ in range(cfg.enc_depth))
        # every query also sees a pooled summary of all view tokens: from the first step the
        # latent depends on the object (its colours above all), not only through attention
        self.summary = nn.Sequential(nn.LayerNorm(cfg.enc_width), nn.Linear(cfg.enc_width, cfg.enc_width))
        self.colour = nn.Sequential(nn.Linear(6, cfg.enc_width), nn.SiLU(),
                                    nn.Linear(cfg.enc_width, cfg.enc_width))
        self.norm = nn.LayerNorm(cfg.enc_width)
        # z mean standardised per element over the data (batch statistics in training,
        # running ones after): what differs between objects fills the latent, not the
        # input-independent part that the queries and positions give every object
        self.centre = nn.BatchNorm1d(3 * cfg.latent_size ** 2 * cfg.latent_channels, affine=False)
        self.to_moments = nn.Linear(cfg.enc_width, 2 * cfg.latent_channels)
        # start nearly deterministic (std ~0.02) so the decoder learns to use z before the
        # KL term can pull the posterior to the prior
        nn.init.constant_(self.to_moments.bias[cfg.latent_channels:], -8.0)

    def forward(self, views):
        # views (B, V, C_in, H, W) -> mean, logvar (B, 3, c, h, w)
        B, V = views.shape[:2]
        colour = self.colour(object_colour(views))                           # (B, D)
        # RGB relative to the white background: empty pixels are zero, the object stands out
        views = torch.cat([views[:, :, :3] - 1.0, views[:, :, 3:]], dim=2)
        feats = self.stem(views.flatten(0, 1))                               # (B*V, C, h', w')
        tokens = self.to_tokens(feats.flatten(2).transpose(1, 2))            # (B*V, h'w', D)
        tokens = tokens.reshape(B, -1, tokens.shape[-1])                     # (B, V*h'w', D)
        q0 = self.queries + self.pos                                         # (3hw, D)
        q = q0 + (self.summary(tokens.mean(dim=1)) + colour)[:, None]         # (B, 3hw, D)
        for block in self.blocks:
            q = block(q, tokens)
        # moments from what the views added to the queries: the input-independent query
        # baseline would otherwise dominate z and hide the object from the decoder
        moments = self.to_moments(self.norm(q - q0))                         # (B, 3hw, 2c)
        n, c = self.cfg.latent_size, self.cfg.latent_channels
        moments = moments.view(B, 3, n, n, 2 * c).permute(0, 1, 4, 2, 3)     # (B, 3, 2c, h, w)
        mean, logvar = moments.chunk(2, dim=2)
        return mean, logvar.clamp(-30.0, LOGVAR_MAX)


def view_cameras(plucker_bvx6xhxw):
    """The pinhole camera of each view, recovered from its Plücker rays (d, o x d):
    centre (N, 3) where the rays meet (least squares), axes right/down/forward (N, 3, 3 as
    rows) from the rays' spread, and the tangent of the half field of view per axis (N, 2)
    measured at the border pixel centres. plucker (N, 6, H, W)."""
    d, m = plucker_bvx6xhxw[:, :3], plucker_bvx6xhxw[:, 3:]
    d = d.flatten(2).transpose(1, 2)                                         # (N, HW, 3)
    p = torch.cross(d, m.flatten(2).transpose(1, 2), dim=-1)                 # closest to 0
    eye = torch.eye(3, device=d.device, dtype=d.dtype)
    proj = eye - d[..., :, None] * d[..., None, :]                           # (N, HW, 3, 3)
    centre = torch.linalg.solve(proj.sum(1), (proj @ p[..., None]).sum(1))[..., 0]
    H, W = plucker_bvx6xhxw.shape[-2:]
    grid = d.view(-1, H, W, 3)
    fwd = F.normalize(grid.mean(dim=(1, 2)), dim=-1)
    right = grid[:, :, -1].mean(1) - grid[:, :, 0].mean(1)
    right = F.normalize(right - (right * fwd).sum(-1, keepdim=True) * fwd, dim=-1)
    down = torch.cross(fwd, right, dim=-1)                                   # OpenCV: y down
    edge_x = grid[:, :, -1].mean(1)
    edge_y = grid[:, -1].mean(1)
    tan_x = (edge_x * right).sum(-1) / (edge_x * fwd).sum(-1) / (1 - 1 / W)
    tan_y = (edge_y * down).sum(-1) / (edge_y * fwd).sum(-1) / (1 - 1 / H)
    return centre, torch.stack([right, down, fwd], dim=1), torch.stack([tan_x, tan_y], -1)


def project_to_views(points_nx3, centre, axes, tan):
    """World points into each view as grid_sample coordinates in [-1, 1] (align_corners
    False) and a mask of points in front of the camera. points (P, 3); camera of N views
    -> (N, P, 2), (N, P)."""
    rel = points_nx3[None] - centre[:, None]                                 # (N, P, 3)
    cam = rel @ axes.transpose(1, 2)                                         # (N, P, 3)
    z = cam[..., 2:].clamp(min=1e-4)
    return cam[..., :2] / z / tan[:, None], cam[..., 2] > 1e-4


def plane_samples(res: int, depth: int, device=None):
    """3D sample points of the tri-plane cells: for each plane (xy, xz, yz) and cell of a
    res x res grid, `depth` points along the plane's normal axis. -> (3, res, res, depth, 3)"""
    t = (torch.arange(res, device=device) + 0.5) / res * 2 - 1                 # cell centres
    s = (torch.arange(depth, device=device) + 0.5) / depth * 2 - 1
    a, b, c = torch.meshgrid(t, t, s, indexing="ij")                         # (res, res, depth)
    xy = torch.stack([a, b, c], -1)          # plane xy spans (x, y), normal z
    xz = torch.stack([a, c, b], -1)          # plane xz spans (x, z), normal y
    yz = torch.stack([c, a, b], -1)          # plane yz spans (y, z), normal x
    return torch.stack([xy, xz, yz])


class ProjectionEncoder(nn.Module):
    """Tri-plane latent by projection (the cameras are known from the Plücker rays): a conv
    stem makes a feature map per view; each tri-plane cell's column of 3D points is
    projected into every view and reads the features there; mean, max and min over the
    views (min of the alpha is the visual hull: one view that sees background there says
    outside) are mixed along the column by an MLP, and a conv stage per plane brings the
    cells down to the latent grid. The lifting from pixels to 3D is geometry, not learned,
    so the latent is spatially aligned with the object from the first step."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.cfg = cfg
        C = cfg.proj_channels
        chans = (cfg.in_channels,) + tuple(cfg.enc_channels)
        self.stem = nn.Sequential(*[_conv_stage(a, b) for a, b in zip(chans[:-1], chans[1:])],
                                  nn.Conv2d(chans[-1], C, 1))
        self.register_buffer("samples", plane_samples(cfg.proj_res, cfg.proj_depth), persistent=False)
        per_point = 3 * (C + 4)                          # mean, max, min of features + RGBA
        self.column = nn.Sequential(nn.Linear(cfg.proj_depth * per_point, cfg.enc_width), nn.SiLU(),
                                    nn.Linear(cfg.enc_width, cfg.enc_width))
        stages = []
        res, width = cfg.proj_res, cfg.enc_width
        while res > cfg.latent_size:
            stages += [nn.Conv2d(width, width, 4, stride=2, padding=1), nn.SiLU()]
            res //= 2
        self.down = nn.Sequential(*stages, nn.Conv2d(width, width, 3, padding=1), nn.SiLU())
        self.to_moments = nn.Conv2d(width, 2 * cfg.latent_channels, 1)
        nn.init.constant_(self.to_moments.bias[cfg.latent_channels:], -8.0)
        if cfg.proj_global:   # cells whose column sees only background still learn the object
            W, r = cfg.enc_width, cfg.proj_res
            self.globe = nn.Sequential(nn.Linear(W, W), nn.SiLU(), nn.Linear(W, W))
            nn.init.zeros_(self.globe[2].weight)
            nn.init.zeros_(self.globe[2].bias)
            self.cell_pos = nn.Parameter(torch.zeros(3, W, r, r))

    def lift(self, views):
        """views (B, V, C_in, H, W) -> per-cell features (B, 3, D, r, r)."""
        B, V = views.shape[:2]
        flat = views.flatten(0, 1)                                           # (BV, C_in, H, W)
        centre, axes, tan = view_cameras(flat[:, 4:10].float())
        feats = self.stem(torch.cat([flat[:, :3] - 1.0, flat[:, 3:]], dim=1))
        feats = torch.cat([feats, F.interpolate(flat[:, :4], size=feats.shape[-2:],
                                                mode="area")], dim=1)       # (BV, C+4, h, w)
        pts = self.samples.reshape(-1, 3)                                    # (P, 3)
        uv, front = project_to_views(pts, centre, axes, tan)                 # (BV, P, 2)
        got = F.grid_sample(feats, uv[:, None], mode="bilinear", padding_mode="border",
                            align_corners=False)[:, :, 0]                    # (BV, C+4, P)
        got = got * front[:, None]
        got = got.view(B, V, *got.shape[1:])
        agg = torch.cat([got.mean(1), got.amax(1), got.amin(1)], dim=1)      # (B, 3(C+4), P)
        r, D = self.cfg.proj_res, self.cfg.proj_depth
        agg = agg.view(B, -1, 3, r, r, D).permute(0, 2, 3, 4, 5, 1)          # (B, 3, r, r, D, F)
        col = self.column(agg.reshape(B, 3, r, r, -1))                       # (B, 3, r, r, W)
        return col.permute(0, 1, 4, 2, 3)                                    # (B, 3, W, r, r)

    def forward(self, views):
        # views (B, V, C_in, H, W) -> mean, logvar (B, 3, c, h, w)
        B = views.shape[0]
        col = self.lift(views)                                               # (B, 3, W, r, r)
        if self.cfg.proj_global:
            code = self.globe(col.mean(dim=(1, 3, 4)))                       # (B, W)
            col = col + code[:, None, :, None, None] + self.cell_pos
        x = self.down(col.flatten(0, 1))                                     # (3B, W, h, w)
        moments = self.to_moments(x).view(B, 3, -1, *x.shape[-2:])
        mean, logvar = moments.chunk(2, dim=2)
        return mean, logvar.clamp(-30.0, LOGVAR_MAX)


# ----------------------------------------------------------------------------- decoder

def _up_stage(cin: int, cout: int) -> nn.Sequential:
    """Doubles H and W."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                         nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU())


class TriplaneDecoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.cfg = cfg
        D, n = cfg.dec_width, cfg.latent_size
        self.embed = nn.Linear(cfg.latent_channels, D)
        self.register_buffer("pos", triplane_pos_embed(D, n, n), persistent=False)
        self.summary = nn.Sequential(nn.Linear(cfg.latent_channels, D), nn.SiLU(), nn.Linear(D, D))
        self.blocks = nn.ModuleList(
            AdaLNBlock(D, cfg.dec_heads, D, group="plane" if i % 2 == 0 else "all")
            for i in range(cfg.dec_depth))
        self.norm = nn.LayerNorm(D)
        chans = (D,) + tuple(cfg.up_channels)
        self.up = nn.Sequential(*[_up_stage(a, b) for a, b in zip(chans[:-1], chans[1:])])
        self.to_planes = nn.Conv2d(chans[-1], cfg.plane_channels, 3, padding=1)

    def forward(self, z):
        # z (B, 3, c, h, w) -> planes (B, 3, C, H, W)
        B, _, c, h, w = z.shape
        tokens = z.permute(0, 1, 3, 4, 2).reshape(B, 3 * h * w, c)           # (B, 3hw, c)
        x = self.embed(tokens) + self.pos
        g = self.summary(tokens.mean(dim=1))                                 # (B, D)
        for block in self.blocks:
            x = block(x, g)
        x = self.norm(x).view(B * 3, h, w, -1).permute(0, 3, 1, 2)           # (B*3, D, h, w)
        planes = self.to_planes(self.up(x))                                  # (B*3, C, H, W)
        return planes.view(B, 3, *planes.shape[1:])


# ----------------------------------------------------------------------------- field

def sample_triplane(planes, points):
    """Bilinear tri-plane features summed over the planes.

    planes (B, 3, C, H, W) in order (xy, xz, yz); points (B, N, 3) in [-1, 1] -> (B, N, C).
    """
    B, _, C, H, W = planes.shape
    coords = torch.stack([points[..., [0, 1]], points[..., [0, 2]], points[..., [1, 2]]], dim=1)
    grid = coords.reshape(B * 3, 1, -1, 2)                                   # (B*3, 1, N, 2)
    feats = F.grid_sample(planes.reshape(B * 3, C, H, W), grid, mode="bilinear",
                          padding_mode="border", align_corners=False)        # (B*3, C, 1, N)
    return feats.view(B, 3, C, -1).sum(dim=1).transpose(1, 2)                # (B, N, C)


def _mlp(width_in: int, hidden: int, layers: int, width_out: int) -> nn.Sequential:
    mods, width = [], width_in
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), nn.SiLU()]
        width = hidden
    return nn.Sequential(*mods, nn.Linear(width, width_out))


class TriplaneField(nn.Module):
    """MLP heads for SDF and RGB at any point (separate MLPs: colour gradients do not
    fight geometry gradients in a shared trunk), and with `cfg.flexi` a third head for
    FlexiCubes: raw [deformation 3 | beta 12 | alpha 8 | gamma 1] at any point (read at
    grid vertices for the deformation, at cube centres for the weights).

    Geometric initialisation: the SDF is a learned residual on top of a sphere of radius
    `sphere_radius`, and the residual head starts at zero, so an untrained model already
    gives a closed blob. The FlexiCubes head starts at zero too: neutral weights, no
    deformation, so adding it to a trained model changes nothing until it is fine-tuned.
    """

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.radius = cfg.sphere_radius
        C, H, L = cfg.plane_channels, cfg.field_hidden, cfg.field_layers
        self.sdf_mlp = _mlp(C, H, L, 1)
        self.rgb_mlp = _mlp(C, H, L, 3)
        nn.init.zeros_(self.sdf_mlp[-1].weight)
        nn.init.zeros_(self.sdf_mlp[-1].bias)
        self.flexi_mlp = _mlp(C, H, 1, FLEXI_OUTPUTS) if cfg.flexi else None
        if self.flexi_mlp is not None:
            nn.init.zeros_(self.flexi_mlp[-1].weight)
            nn.init.zeros_(self.flexi_mlp[-1].bias)

    def flexi(self, planes, points):
        """planes (B, 3, C, H, W); points (B, N, 3) -> raw FlexiCubes outputs (B, N, 24)."""
        if self.flexi_mlp is None:
            raise ValueError("This model's field has no FlexiCubes head (config vae.flexi).")
        return self.flexi_mlp(sample_triplane(planes, points))

    @property
    def sdf_head(self) -> nn.Linear:
        return self.sdf_mlp[-1]

    def forward(self, planes, points):
        # planes (B, 3, C, H, W); points (B, N, 3) -> sdf (B, N), rgb (B, N, 3)
        feats = sample_triplane(planes, points)                              # (B, N, C)
        sdf = self.sdf_mlp(feats)[..., 0] + points.norm(dim=-1) - self.radius
        return sdf, torch.sigmoid(self.rgb_mlp(feats))


class TriplaneVAE(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = ProjectionEncoder(cfg) if cfg.encoder == "projection" else TriplaneEncoder(cfg)
        self.decoder = TriplaneDecoder(cfg)
        self.field = TriplaneField(cfg)

    def encode(self, views, generator=None):
        """views (B, V, C_in, H, W) -> z sample, mean, logvar, each (B, 3, c, h, w)."""
        mean, logvar = self.encoder(views)
        noise = torch.randn(mean.shape, generator=generator, device="cpu").to(mean)
        return mean + torch.exp(0.5 * logvar) * noise, mean, logvar

    @staticmethod
    def kl(mean, logvar):
        """KL(q(z|x) || N(0, I)), mean over the batch."""
        return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).flatten(1).sum(1).mean()
