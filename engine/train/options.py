"""The training options, declared once: `TrainArgs` (what `loop.train` takes) with each
option's help, from which `add_arguments` makes the `python -m engine train` flags (same
names with dashes, same defaults). Standard library only, so `--help` stays fast.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

CLI_STAGES = ("all", "data", "fit", "encoder", "vae", "latents", "dit")   # loop: the middle four


def option(default=dataclasses.MISSING, help: str = "", cli: dict | None = None):
    """A TrainArgs field: its default, its help sentence and the add_argument keywords
    beyond those (cli=None: not a command-line flag)."""
    return dataclasses.field(default=default, metadata={"help": help, "cli": cli})


@dataclass
class TrainArgs:
    stage: str = option(help="training stage", cli={"positional": True, "choices": CLI_STAGES})
    data: Path = option(help="store folder to read", cli={"type": Path, "default": None})
    out: Path = option(help="store or model folder to write (at the end and every "
                       "--ckpt-every)", cli={"type": Path, "required": True})
    size: str = option("mini", "model size (REGISTRY entry) when starting fresh", {})
    init: Path | None = option(None, "model folder to start from (the DiT stage needs the "
                               "VAE; all: or a model name)", {"type": Path})
    steps: int = option(1000, "optimiser steps", {})
    batch: int = option(16, "global batch", {})
    lr: float = option(3e-4, "peak learning rate", {})
    seed: int = option(0, "random seed", {})
    device: str = option("auto", "device", {"choices": ("auto", "cpu", "cuda")})
    bf16: bool = option(False, "bfloat16 autocast (GPU)", {})
    compile: bool = option(False, "torch.compile the stage (GPU)", {})
    resume: bool = option(False, "resume from the stage's checkpoint in --out", {})
    ckpt_every: int = option(500, "steps between checkpoints", {})
    max_minutes: float = option(0.0, "stop early (and save) after this wall time; 0: no cap", {})
    warmup: int | None = option(None, "LR warm-up steps (None: min(100, steps // 10); a "
                                "time-capped stage of a few hundred steps wants fewer)")
    fp16_weights: bool = option(False, "ship float16 safetensors", {})
    freeze_encoder: bool = option(False, "vae: fine-tune decoder and field only (a trained "
                                  "DiT stays valid)", {})
    flexi: bool = option(False, "vae: add the field's FlexiCubes head and fine-tune with mesh "
                         "losses", {})
    flexi_res: int = option(32, "FlexiCubes grid for --flexi", {})
    mean_token_prob: float = option(0.0, "dit: share of captions reduced to their mean token "
                                    "state", {})
    cond_noise: float = option(0.0, "dit: Gaussian noise on each text condition, a share drawn "
                               "in [0, this) of its own spread", {})
    fresh_points: int = option(0, "vae/fit: new exact SDF samples per asset each step (0: the "
                               "store's)", {})
    sign_weight: float = option(0.0, "vae/fit: occupancy cross-entropy weight beside the SDF "
                                "L1", {})
    rgb_weight: float = option(1.0, "vae/fit: weight of the colour L1 near the surface", {})
    render_from: float = option(0.0, "vae: rendering losses only after this share of the stage "
                                "(1: never)", {})
    prior: float = option(1e-4, "fit: Gaussian prior weight on the free latents", {})
    table_lr: float = option(30.0, "fit: the latents' learning rate as a multiple of --lr", {})
    table: Path | None = option(None, "fit/encoder/latents: model folder holding the latent "
                                "table (default --init)", {"type": Path})
    freeze_table: bool = option(False, "fit: keep the latent table fixed (decoder fine-tuning "
                                "after the DiT)", {})
    freeze_decoder: bool = option(False, "fit: keep decoder and field fixed and fit only the "
                                  "latent table, started from the encoder's means of each "
                                  "asset's views (a trained model's latents for a store: a "
                                  "lost table re-derived, or new assets added for the DiT)", {})
    encoder_global: bool = option(False, "encoder: add the projection encoder's global path "
                                  "(a pooled code of the object and a position in every cell; "
                                  "starts neutral, so a trained encoder continues)", {})
    encoder_target: str = option("table", "encoder: regress the fit table (latent MSE), learn "
                                 "through the frozen decoder on 3D samples (needs "
                                 "--fresh-points), or both",
                                 {"choices": ("table", "field", "both")})


def _flag(f: dataclasses.Field) -> tuple[str, dict]:
    """(the flag's name, add_argument keywords) of a TrainArgs field."""
    cli = dict(f.metadata["cli"])
    if cli.pop("positional", False):
        return f.name, dict(cli, help=f.metadata["help"])
    if f.default is not dataclasses.MISSING:
        if isinstance(f.default, bool):
            cli.setdefault("action", "store_true")
        else:
            cli.setdefault("default", f.default)
            cli.setdefault("type", type(f.default))
    return "--" + f.name.replace("_", "-"), dict(cli, help=f.metadata["help"])


def add_arguments(p) -> None:
    """Every TrainArgs field that is a flag, with its default and help."""
    for f in dataclasses.fields(TrainArgs):
        if f.metadata["cli"] is not None:
            name, kwargs = _flag(f)
            p.add_argument(name, **kwargs)


def train_args(namespace) -> TrainArgs:
    """The TrainArgs of parsed flags (those that are fields)."""
    names = {f.name for f in dataclasses.fields(TrainArgs)}
    return TrainArgs(**{k: v for k, v in vars(namespace).items() if k in names})
