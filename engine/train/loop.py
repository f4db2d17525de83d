"""One training loop for both stages (VAE, DiT): AdamW, cosine LR, grad clipping,
resumable checkpoints, JSON-lines logs, optional bf16/torch.compile on GPU, DDP."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import REGISTRY, ModelConfig
from ..io.weights import load_state_dict, save_state_dict
from ..models import build_model
from .common import (Logger, autocast, cosine_lr, init_distributed, load_checkpoint,
                     mean_across_ranks, rank_slice, save_checkpoint, wrap_ddp)
from .store import Store


@dataclass
class TrainArgs:
    stage: str                  # "vae" | "dit"
    data: Path                  # Store folder
    out: Path                   # model folder written at the end (and every ckpt_every)
    size: str = "mini"          # REGISTRY entry when starting fresh
    init: Path | None = None    # model folder to start from (the DiT stage needs the VAE)
    steps: int = 1000
    batch: int = 16             # global batch
    lr: float = 3e-4
    seed: int = 0
    device: str = "auto"
    bf16: bool = False
    compile: bool = False
    resume: bool = False
    ckpt_every: int = 500
    max_minutes: float = 0.0    # stop early (and save) after this wall time; 0 = no cap
    fp16_weights: bool = False  # store the shipped safetensors in float16
    freeze_encoder: bool = False  # VAE stage: train decoder + field only (latents stay valid)
    flexi: bool = False         # VAE stage: add the FlexiCubes head and its mesh losses
    flexi_res: int = 32         # FlexiCubes grid of that stage
    mean_token_prob: float = 0.0  # DiT stage: share of captions reduced to their mean token


def _load_model(a: TrainArgs):
    if not a.init:
        torch.manual_seed(a.seed)
    cfg = ModelConfig.load(Path(a.init) / "config.json") if a.init else REGISTRY[a.size]()
    if a.flexi:                       # a model without the head gets a neutral one
        cfg.vae.flexi, cfg.vae.flexi_res = True, a.flexi_res
    model = build_model(cfg)
    if a.init:
        state = {k: v.float() for k, v in load_state_dict(a.init).items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        new_head = [k for k in missing if k.startswith("vae.field.flexi_mlp.")]
        if unexpected or len(new_head) != len(missing):
            raise RuntimeError(f"{a.init} does not fit its config: missing "
                               f"{sorted(set(missing) - set(new_head))}, unexpected {unexpected}")
    return cfg, model


class StageLoss(torch.nn.Module):
    """The trainable part of one stage with its loss as forward(), so DDP wraps it whole."""

    def __init__(self, stage: str, model, freeze_encoder: bool = False, flexi_res: int = 0):
        super().__init__()
        self.stage, self.mesh_losses = stage, None
        if flexi_res:
            from .flexi import FlexiLossWeights, TrueSDF, flexi_losses
            fw, truth = FlexiLossWeights(res=flexi_res), TrueSDF()
            self.mesh_losses = lambda planes, batch, rnd: flexi_losses(
                self.vae.field, planes, rnd["seeds"], batch, truth, fw, rnd["gen"])
        if stage == "vae":
            self.vae = model.vae
            if freeze_encoder:   # decoder fine-tuning: a trained DiT's latents stay valid
                self.vae.encoder.requires_grad_(False)
        else:
            self.dit, self.image_encoder = model.dit, model.image_encoder

    def train(self, mode: bool = True):
        super().train(mode)
        if self.stage == "vae" and not any(p.requires_grad for p in self.vae.encoder.parameters()):
            self.vae.encoder.eval()   # frozen: its BatchNorm keeps the statistics it has
        return self

    def forward(self, batch: dict, rnd: dict):
        if self.stage == "vae":
            from .vae import VAELossWeights, vae_step_losses
            mesh = None if self.mesh_losses is None else (
                lambda p: self.mesh_losses(p, batch, rnd))
            return vae_step_losses(self.vae, batch, VAELossWeights(), rnd["gen"],
                                   rnd["n_views"], mesh_losses=mesh)
        from .dit import dit_step_losses
        return dit_step_losses(self.dit, self.image_encoder, batch, rnd)


def _batch_fn(stage: str, store: Store, d, gen, mean_token_prob: float = 0.0):
    """Returns make(global_idx) -> (batch, rnd) holding this rank's share of the batch."""
    if stage == "vae":
        max_views = store.tensors["views"].shape[1]

        seeds = store.info.get("seeds")

        def make(idx):
            n_views = int(torch.randint(1, max_views + 1, (1,), generator=gen))
            mine = rank_slice(idx, d)
            batch = store.batch(mine, d.device, ["views", "albedo", "points", "sdf", "rgb"])
            rnd = {"gen": gen, "n_views": n_views,
                   "seeds": [seeds[i] for i in mine.tolist()] if seeds else None}
            return {k: v.float() for k, v in batch.items()}, rnd
        return make

    from .dit import draw_noise
    latent_shape = store.tensors["latent"].shape[1:]
    k = store.tensors["text_tokens"].shape[1]

    def make(idx):
        rnd = draw_noise(len(idx), latent_shape, gen, image_prob=0.3, drop_prob=0.12,
                         mean_token_prob=mean_token_prob)
        pick = torch.randint(0, k, (len(idx),), generator=gen)
        rnd = {key: rank_slice(v, d) for key, v in rnd.items()}
        mine, cap = rank_slice(idx, d), rank_slice(pick, d)
        batch = store.batch(mine, d.device, ["latent", "image"])
        for key in ("text_tokens", "text_mask", "text_pooled"):
            batch[key] = store.tensors[key][mine, cap].to(d.device)
        return batch, rnd
    return make


def train(a: TrainArgs) -> dict:
    d = init_distributed(a.device)
    cfg, model = _load_model(a)
    store = Store.load(a.data)
    if a.stage == "dit":
        cfg.latent_scale = float(store.info["latent_scale"])
        cfg.latent_shift = float(store.info["latent_shift"])
    model.to(d.device)
    if a.flexi and not (a.stage == "vae" and store.info.get("seeds")):
        raise ValueError("--flexi fine-tunes the VAE on a procedural asset store (it needs the "
                         "assets' seeds for their exact SDF): use `train vae --data ASSETS`.")
    part = StageLoss(a.stage, model, a.freeze_encoder,
                     a.flexi_res if a.flexi else 0).train()
    opt = torch.optim.AdamW([p for p in part.parameters() if p.requires_grad], lr=a.lr, weight_decay=0.0, betas=(0.9, 0.99))
    ckpt = Path(a.out) / "checkpoint"
    start = load_checkpoint(ckpt, part, opt)["step"] if a.resume and ckpt.exists() else 0
    loss_module = wrap_ddp(part, d)
    if a.compile and d.device.type == "cuda":
        loss_module = torch.compile(loss_module)
    gen = torch.Generator().manual_seed(a.seed * 1000 + start)
    make_batch = _batch_fn(a.stage, store, d, gen, a.mean_token_prob)
    log = Logger(Path(a.out) / f"train_{a.stage}.jsonl", enabled=d.main)
    t0, history, step = time.time(), [], start
    for step in range(start, a.steps):
        progress = _progress(step, a, time.time() - t0, start)
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, progress, a.lr, warmup=min(100, a.steps // 10))
        idx = torch.randint(0, len(store), (a.batch,), generator=gen)
        batch, rnd = make_batch(idx)
        with autocast(d, a.bf16):
            loss, stats = loss_module(batch, rnd)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(part.parameters(), 1.0)
        opt.step()
        stats["loss"] = mean_across_ranks(stats["loss"], d)
        history.append(stats["loss"])
        log.log(step + 1, lr=opt.param_groups[0]["lr"], **stats)
        out_of_time = bool(a.max_minutes) and time.time() - t0 > a.max_minutes * 60
        if d.main and ((step + 1) % a.ckpt_every == 0 or step + 1 == a.steps or out_of_time):
            save_checkpoint(ckpt, part, opt, step + 1)
            _ship(model, cfg, a)
        if out_of_time:
            break
    summary = {"stage": a.stage, "steps_done": step + 1 - start, "first_step": start,
               "wall_s": round(time.time() - t0, 1), "device": str(d.device), "world": d.world,
               "loss_first": history[0] if history else None,
               "loss_last": sum(history[-20:]) / max(1, len(history[-20:])), "history": history}
    if d.main:
        (Path(a.out) / f"summary_{a.stage}.json").write_text(json.dumps(
            {k: v for k, v in summary.items() if k != "history"}, indent=1))
    return summary


def _progress(step: int, a: TrainArgs, elapsed_s: float, start: int) -> float:
    """Schedule position in [0, 1]: by steps, or by wall time when a time cap is set and
    comes first (so the learning rate is annealed however fast the machine is)."""
    by_steps = step / max(1, a.steps)
    if not a.max_minutes:
        return by_steps
    return max(by_steps, elapsed_s / (a.max_minutes * 60))


def _ship(model, cfg, a: TrainArgs) -> None:
    """Write the whole model as a loadable folder (config.json, safetensors, SHA256SUMS)."""
    save_state_dict(a.out, model.state_dict(), cfg.to_dict(),
                    dtype=torch.float16 if a.fp16_weights else None)
