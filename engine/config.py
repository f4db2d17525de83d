"""Model sizes as dataclass configs, saved as config.json beside the weights.

One dataclass per model part; `ModelConfig` bundles them with the latent
normalisation (scale/shift), which lives here and nowhere else. `REGISTRY` maps
size names to factory functions, which the CLI offers as choices.

Coordinate conventions (shared by data, render, field and export), one home each here:
- object space is right-handed, Z-up, the asset inside the cube [-1, 1]^3; every asset
  (procedural, a user's mesh, a mesh to restyle) is scaled into the ball of radius
  FIT_RADIUS; a mesh file's up axis becomes +Z by UP_ROTATIONS;
- tri-plane order is (xy, xz, yz); plane k is sampled at the two coordinates it spans;
- the field's FlexiCubes head gives FLEXI_HEAD_OUTPUTS raw values a point, laid out as
  FLEXI_HEAD_SLICES (engine.geometry.flexicubes.predicted_weights reads them).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

FIT_RADIUS = 0.9                # every asset is scaled into the ball of this radius

# A mesh file's up axis -> Kiln's +Z (right-handed rotations; glTF and most OBJ are Y-up).
UP_ROTATIONS = {
    "z": ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    "y": ((1, 0, 0), (0, 0, -1), (0, 1, 0)),      # (x, y, z) -> (x, -z, y)
    "x": ((0, 0, -1), (0, 1, 0), (1, 0, 0)),      # (x, y, z) -> (-z, y, x)
    "-z": ((1, 0, 0), (0, -1, 0), (0, 0, -1)),
    "-y": ((1, 0, 0), (0, 0, 1), (0, -1, 0)),
    "-x": ((0, 0, 1), (0, 1, 0), (-1, 0, 0)),
}

# Raw outputs of a field's FlexiCubes head, in this order: deform 3 | beta 12 | alpha 8 | gamma 1.
FLEXI_HEAD_SLICES = {"deform": slice(0, 3), "beta": slice(3, 15), "alpha": slice(15, 23),
                     "gamma": slice(23, 24)}
FLEXI_HEAD_OUTPUTS = 24


@dataclass
class VAEConfig:
    image_size: int = 64          # encoder input resolution (square)
    in_channels: int = 10         # RGB + alpha + Plücker (6)
    max_views: int = 4
    enc_channels: tuple = (32, 64, 128)  # conv stages, each halves H and W -> /8
    enc_width: int = 192          # fusion transformer width
    enc_depth: int = 2
    encoder: str = "attention"    # "attention" (queries attend to view tokens) | "projection"
    proj_res: int = 16            # projection encoder: tri-plane cells per side before pooling
    proj_depth: int = 8           # projection encoder: 3D samples along each cell's column
    proj_channels: int = 28       # projection encoder: feature channels read per view
    proj_global: bool = False     # projection encoder: a pooled code of the whole object and a
                                  # learned position added to every cell (starts at zero)
    latent_channels: int = 8      # c of z (3, c, h, w)
    latent_size: int = 8          # h = w = image_size / 8
    dec_width: int = 192
    dec_depth: int = 4            # alternating self-plane / cross-plane blocks
    dec_heads: int = 4
    up_channels: tuple = (128, 64, 32)  # conv upsampler stages, each doubles H and W
    plane_channels: int = 32      # channels of the high-resolution tri-plane
    field_hidden: int = 64
    field_layers: int = 2
    sphere_radius: float = 0.5    # geometric init: untrained field is this sphere
    flexi: bool = False           # field also predicts FlexiCubes weights + deformation
    flexi_res: int = 0            # grid those were fine-tuned on (0: not fine-tuned)

    @property
    def plane_size(self) -> int:
        return self.latent_size * 2 ** len(self.up_channels)


@dataclass
class DiTConfig:
    width: int = 256
    depth: int = 6
    heads: int = 4
    cond_dim: int = 384           # width of condition tokens fed to cross-attention
    cond_tokens: int = 32         # max condition tokens (text tokens / image patches)
    mlp_ratio: float = 4.0
    patch: int = 2                # latent cells per token side: 3*(h/patch)*(w/patch) tokens


@dataclass
class CondConfig:
    text: str = "minilm"          # frozen text encoder: "minilm" | "clip:<arch>" (open_clip)
    text_weights: str = ""        # clip: its .safetensors, a path (relative: in the model
                                  # folder) or a Hugging Face repo id (local cache only)
    image_size: int = 64          # input resolution of the small image encoder
    image_width: int = 384        # token width of the small image encoder


@dataclass
class SamplingConfig:
    steps: int = 12
    guidance: float = 3.0
    sampler: str = "euler"
    texture: int = 1024           # default texture size (a small field carries less detail)
    extractor: str = "mc"         # default mesh extractor: "mc" | "flexicubes"
    resolution: int = 128         # default extraction grid resolution
    faces: int = 20000            # default face budget; 0 means no limit


@dataclass
class ModelConfig:
    name: str = "kiln-mini"
    vae: VAEConfig = field(default_factory=VAEConfig)
    dit: DiTConfig = field(default_factory=DiTConfig)
    cond: CondConfig = field(default_factory=CondConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    latent_scale: float = 1.0     # z_model = (z - latent_shift) * latent_scale
    latent_shift: float = 0.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        parts = {"vae": VAEConfig, "dit": DiTConfig, "cond": CondConfig,
                 "sampling": SamplingConfig}
        kwargs = {}
        for key, value in d.items():
            if key in parts:
                sub = parts[key]
                names = {f.name for f in dataclasses.fields(sub)}
                value = sub(**{k: tuple(v) if isinstance(v, list) else v
                               for k, v in value.items() if k in names})
            kwargs[key] = value
        return cls(**kwargs)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "ModelConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))


def tiny() -> ModelConfig:
    """A few-thousand-parameter model for unit tests."""
    return ModelConfig(
        name="kiln-tiny",
        vae=VAEConfig(image_size=32, enc_channels=(8, 16, 16), enc_width=32, enc_depth=1,
                      latent_channels=4, latent_size=4, dec_width=32, dec_depth=2,
                      dec_heads=2, up_channels=(16, 8), plane_channels=8,
                      field_hidden=16, field_layers=1),
        dit=DiTConfig(width=32, depth=2, heads=2, cond_dim=384, cond_tokens=16, patch=1),
        cond=CondConfig(image_size=32, image_width=32),
        sampling=SamplingConfig(steps=4, guidance=2.0),
    )


def mini() -> ModelConfig:
    """kiln-mini, the bundled default: a projection encoder and a lean decoder (2 blocks,
    width 128), sized for its recipe to train on a 2-core CPU (scripts/train_kiln_mini.sh,
    whose encoder stage turns on proj_global)."""
    return ModelConfig(vae=VAEConfig(encoder="projection", enc_channels=(32, 64), proj_res=8,
                                     dec_width=128, dec_depth=2, up_channels=(64, 32, 32)),
                       sampling=SamplingConfig(texture=512))


def mini16() -> ModelConfig:
    """kiln-mini with twice the latent channels, z (3, 16, 8, 8): the next recipe's
    candidate (probed on 96 assets at equal steps: fit-table sign error 23.8 -> 22.7%, on
    latents noised by 0.6 of their spread 38.0 -> 35.4%; see the model card)."""
    cfg = mini()
    cfg.vae.latent_channels = 16
    return cfg


REGISTRY = {"tiny": tiny, "mini": mini, "mini16": mini16}
