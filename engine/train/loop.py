"""One training loop for every stage: AdamW, cosine LR, grad clipping, resumable
checkpoints (the schedule resumes where it stopped), JSON-lines logs, optional
bf16/torch.compile on GPU, DDP.

Stages: "vae" (encoder + decoder + field end to end), "fit" (auto-decoder: a free latent
per asset through the decoder and field; the latent table is written beside the model),
"encoder" (the encoder regresses that table from the views; decoder and field frozen),
"dit" (flow matching on a latent store)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch

from ..config import REGISTRY, ModelConfig
from ..io.weights import load_state_dict, save_state_dict
from ..models import build_model
from .common import (Logger, autocast, close_distributed, cosine_lr, init_distributed,
                     load_checkpoint, mean_across_ranks, rank_slice, save_checkpoint, wrap_ddp)
from .options import TrainArgs
from .store import Store


def _load_model(a: TrainArgs):
    if not a.init:
        torch.manual_seed(a.seed)
    cfg = ModelConfig.load(Path(a.init) / "config.json") if a.init else REGISTRY[a.size]()
    if a.flexi:                       # a model without the head gets a neutral one
        cfg.vae.flexi, cfg.vae.flexi_res = True, a.flexi_res
    if a.encoder_global:              # ... and an encoder without the global path too
        if cfg.vae.encoder != "projection":
            raise ValueError("--encoder-global is a part of the projection encoder; this "
                             f"model's encoder is {cfg.vae.encoder!r}.")
        cfg.vae.proj_global = True
    model = build_model(cfg)
    if a.init:
        state = {k: v.float() for k, v in load_state_dict(a.init).items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        new_head = [k for k in missing if k.startswith(NEUTRAL_PARTS)]
        if unexpected or len(new_head) != len(missing):
            raise RuntimeError(f"{a.init} does not fit its config: missing "
                               f"{sorted(set(missing) - set(new_head))}, unexpected {unexpected}")
    return cfg, model


# parts that start neutral (no effect) when a config adds them to a trained model: the
# FlexiCubes head, the projection encoder's global path (VAEConfig.proj_global)
NEUTRAL_PARTS = ("vae.field.flexi_mlp.", "vae.encoder.globe.", "vae.encoder.cell_pos")


class StageLoss(torch.nn.Module):
    """The trainable part of one stage with its loss as forward(), so DDP wraps it whole."""

    def __init__(self, stage: str, model, freeze_encoder: bool = False, flexi_res: int = 0,
                 weights=None, table: torch.Tensor | None = None, prior: float = 0.0,
                 freeze_table: bool = False, truth=None, freeze_decoder: bool = False):
        super().__init__()
        self.stage, self.mesh_losses, self.weights, self.prior = stage, None, weights, prior
        if flexi_res:                    # truth: the store's StoreTruth (engine.train.points)
            from .flexi import FlexiLossWeights, flexi_losses
            fw = FlexiLossWeights(res=flexi_res)
            self.mesh_losses = lambda planes, batch, rnd: flexi_losses(
                self.vae.field, planes, rnd["rows"], batch, truth, fw, rnd["gen"])
        if stage in ("vae", "fit", "encoder"):
            self.vae = model.vae
            if freeze_encoder or stage == "fit":  # a trained DiT's latents stay valid
                self.vae.encoder.requires_grad_(False)
            if stage == "encoder" or freeze_decoder:  # the table is the target / the trainee
                self.vae.decoder.requires_grad_(False)
                self.vae.field.requires_grad_(False)
            if table is not None:                  # (N, 3, c, h, w)
                self.table = torch.nn.Parameter(table.clone(),
                                                requires_grad=stage == "fit" and not freeze_table)
        else:
            self.dit, self.image_encoder = model.dit, model.image_encoder

    def train(self, mode: bool = True):
        super().train(mode)
        if self.stage != "dit" and not any(p.requires_grad for p in self.vae.encoder.parameters()):
            self.vae.encoder.eval()   # frozen: its BatchNorm keeps the statistics it has
        return self

    def _table_target(self, idx):
        """idx (B,) -> the table's latents of the rows it covers (K, 3, c, h, w) and those
        rows (B,) bool; (None, None) without a table. A table may cover only the store's
        first rows (`both`: assets added after the fit learn from the field alone)."""
        if not hasattr(self, "table"):
            return None, None
        rows = idx < len(self.table)
        return self.table[idx[rows]].detach(), rows

    def forward(self, batch: dict, rnd: dict):
        from .vae import VAELossWeights, encoder_step_losses, fit_step_losses
        mesh = None if self.mesh_losses is None else (lambda p: self.mesh_losses(p, batch, rnd))
        if self.stage == "fit":
            return fit_step_losses(self.vae, self.table[rnd["idx"]], batch,
                                   self.weights or VAELossWeights(), self.prior, mesh)
        if self.stage == "encoder":
            target, rows = self._table_target(rnd["idx"])
            return encoder_step_losses(self.vae, batch["views"], rnd["n_views"], target, batch,
                                       self.weights, rows)
        if self.stage == "vae":
            from .vae import vae_step_losses
            w = self.weights or VAELossWeights()
            if not rnd.get("render", True):
                w = dataclasses.replace(w, render_rgb=0.0, render_mask=0.0)
            return vae_step_losses(self.vae, batch, w, rnd["gen"], rnd["n_views"],
                                   mesh_losses=mesh)
        from .dit import dit_step_losses
        return dit_step_losses(self.dit, self.image_encoder, batch, rnd)


def _batch_fn(stage: str, store: Store, d, gen, a: TrainArgs, truth=None):
    """Returns make(global_idx) -> (batch, rnd) holding this rank's share of the batch."""
    if stage != "dit":
        return _vae_batch_fn(store, d, gen, a, truth)

    from .dit import draw_noise
    latent_shape = store.tensors["latent"].shape[1:]
    k, *text_shape = store.tensors["text_tokens"].shape[1:]      # captions, (L, D)

    def make(idx):
        rnd = draw_noise(len(idx), latent_shape, gen, image_prob=0.3, drop_prob=0.12,
                         mean_token_prob=a.mean_token_prob, cond_noise=a.cond_noise,
                         text_shape=tuple(text_shape))
        pick = torch.randint(0, k, (len(idx),), generator=gen)
        rnd = {key: rank_slice(v, d) for key, v in rnd.items()}
        mine, cap = rank_slice(idx, d), rank_slice(pick, d)
        batch = store.batch(mine, d.device, ["latent", "image"])
        for key in ("text_tokens", "text_mask", "text_pooled"):
            batch[key] = store.tensors[key][mine, cap].to(d.device)
        return batch, rnd
    return make


def _vae_batch_fn(store: Store, d, gen, a: TrainArgs, truth):
    """VAE batches: views and targets from the store; with `fresh_points`, new 3D samples
    of each asset every step (truth: engine.train.points.StoreTruth)."""
    from .points import PointDraw
    max_views = store.tensors["views"].shape[1]
    draw = PointDraw(count=a.fresh_points)
    keys = ["views", "albedo"] + ([] if a.fresh_points else ["points", "sdf", "rgb"])
    if a.stage == "encoder":
        keys = ["views"]

    def make(idx, render: bool = True):
        n_views = int(torch.randint(1, max_views + 1, (1,), generator=gen))
        mine = rank_slice(idx, d)
        batch = store.batch(mine, d.device, keys)
        if a.fresh_points and not (a.stage == "encoder" and a.encoder_target == "table"):
            samples = truth.fresh(mine.tolist(), draw, gen)
            batch.update({k: v.to(d.device) for k, v in samples.items()})
        rnd = {"gen": gen, "n_views": n_views, "rows": mine.tolist(), "render": render,
               "idx": mine.to(d.device)}
        return {k: v.float() for k, v in batch.items()}, rnd
    return make


def train(a: TrainArgs, on_step=None) -> dict:
    """Run one stage; on_step(steps_done, total_steps, schedule_progress) after each step
    (a progress bar)."""
    d = init_distributed(a.device)
    cfg, model = _load_model(a)
    store = Store.load(a.data)
    if a.stage == "dit":
        cfg.latent_scale = float(store.info["latent_scale"])
        cfg.latent_shift = float(store.info["latent_shift"])
    model.to(d.device)
    truth = _asset_truth(a, store)
    _check_encoder_target(a)
    _check_freezes(a)
    if a.flexi and a.stage not in ("vae", "fit"):
        raise ValueError("--flexi fine-tunes the decoder: use `train fit|vae --data ASSETS`.")
    from .vae import VAELossWeights
    part = StageLoss(a.stage, model, a.freeze_encoder, a.flexi_res if a.flexi else 0,
                     VAELossWeights(sign=a.sign_weight, rgb=a.rgb_weight),
                     _initial_table(a, cfg, store, model),
                     a.prior, a.freeze_table, truth, a.freeze_decoder).train()
    opt = _optimizer(part, a)
    ckpt = Path(a.out) / "checkpoint"
    meta = load_checkpoint(ckpt, part, opt) if a.resume and ckpt.exists() else {}
    start, spent_s = meta.get("step", 0), meta.get("elapsed_s", 0.0)
    loss_module = wrap_ddp(part, d)
    if a.compile and d.device.type == "cuda":
        loss_module = torch.compile(loss_module)
    gen = torch.Generator().manual_seed(a.seed * 1000 + start)
    make_batch = _batch_fn(a.stage, store, d, gen, a, truth)
    log = Logger(Path(a.out) / f"train_{a.stage}.jsonl", enabled=d.main,
                 every=20 if on_step is None else 0)     # a progress bar replaces the lines
    t0, history, step = time.time() - spent_s, [], start
    if d.main:
        _write_vocabulary(a, store)
    for step in range(start, a.steps):
        progress = _progress(step, a, time.time() - t0, start)
        for g in opt.param_groups:
            g["lr"] = g.get("lr_scale", 1.0) * cosine_lr(step, progress, a.lr, warmup=_warmup(a))
        idx = torch.randint(0, len(store), (a.batch,), generator=gen)
        batch, rnd = make_batch(idx) if a.stage == "dit" else make_batch(idx, progress >= a.render_from)
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
            save_checkpoint(ckpt, part, opt, step + 1, {"elapsed_s": time.time() - t0})
            _ship(model, cfg, a, part)
        if on_step is not None:
            on_step(step + 1, a.steps, _progress(step + 1, a, time.time() - t0, start))
        if out_of_time:
            break
    summary = {"stage": a.stage, "steps_done": step + 1 - start, "first_step": start,
               "wall_s": round(time.time() - t0, 1), "device": str(d.device), "world": d.world,
               "loss_first": history[0] if history else None,
               "loss_last": sum(history[-20:]) / max(1, len(history[-20:])), "history": history}
    if d.main:
        (Path(a.out) / f"summary_{a.stage}.json").write_text(json.dumps(
            {k: v for k, v in summary.items() if k != "history"}, indent=1))
    close_distributed()
    return summary


def _asset_truth(a: TrainArgs, store: Store):
    """The store's StoreTruth for every stage but the DiT's (an asset store is checked)."""
    if a.stage == "dit":
        return None
    from .points import StoreTruth
    from .store import check_assets
    return StoreTruth(check_assets(store, a.data))


ENCODER_TARGETS = ("table", "field", "both")


def _check_encoder_target(a: TrainArgs) -> None:
    if a.encoder_target not in ENCODER_TARGETS:
        raise ValueError(f"--encoder-target {a.encoder_target!r}: use one of {ENCODER_TARGETS}.")
    if a.stage == "encoder" and a.encoder_target != "table" and not a.fresh_points:
        raise ValueError(f"--encoder-target {a.encoder_target} trains through the decoder on "
                         "3D samples: add --fresh-points N (for example 2048).")


def _check_freezes(a: TrainArgs) -> None:
    if a.freeze_decoder and (a.stage != "fit" or a.freeze_table or not a.init):
        raise ValueError("--freeze-decoder fits only the latent table of a trained model: use "
                         "`train fit --init MODEL` without --freeze-table.")


def _warmup(a: TrainArgs) -> int:
    return min(100, a.steps // 10) if a.warmup is None else a.warmup


def _progress(step: int, a: TrainArgs, elapsed_s: float, start: int) -> float:
    """Schedule position in [0, 1]: by steps, or by wall time when a time cap is set and
    comes first (so the learning rate is annealed however fast the machine is)."""
    by_steps = step / max(1, a.steps)
    if not a.max_minutes:
        return by_steps
    return max(by_steps, elapsed_s / (a.max_minutes * 60))


def _ship(model, cfg, a: TrainArgs, part: StageLoss) -> None:
    """Write the whole model as a loadable folder (config.json, safetensors, SHA256SUMS,
    with the vocabulary.json written at the start), and after the fit stage its latent
    table (TABLE_DIR, one latent per store asset)."""
    save_state_dict(a.out, model.state_dict(), cfg.to_dict(),
                    dtype=torch.float16 if a.fp16_weights else None)
    if a.stage == "fit":
        from safetensors.torch import save_file
        folder = Path(a.out) / TABLE_DIR
        folder.mkdir(exist_ok=True)
        save_file({"latents": part.table.detach().cpu().contiguous()},
                  str(folder / "latents.safetensors"))


def _write_vocabulary(a: TrainArgs, store: Store) -> None:
    """The DiT's caption vocabulary (engine/reading.py): a DiT stage's from its latent
    store's captions; other stages keep their --init model's, whose DiT they carry."""
    import shutil
    from ..data.captions import reading_names
    from ..reading import VOCABULARY_FILE, write_vocabulary
    Path(a.out).mkdir(parents=True, exist_ok=True)
    if a.stage == "dit" and store.info.get("captions"):
        captions = [c for caps in store.info["captions"] for c in caps]
        names = dict(reading_names(), **{c: c for c in store.info.get("categories", [])
                                         if isinstance(c, str)})
        write_vocabulary(a.out, captions, names)
    elif a.init and (Path(a.init) / VOCABULARY_FILE).is_file():
        shutil.copyfile(Path(a.init) / VOCABULARY_FILE, Path(a.out) / VOCABULARY_FILE)


TABLE_DIR = "latent_table"      # beside a fit-stage model: latents.safetensors (N, 3, c, h, w)


def load_table(model_dir: Path, expected: int, prefix: bool = False) -> torch.Tensor:
    """The latent table a fit stage wrote into model_dir, checked against the store size
    (with `prefix`, a table of the store's first rows is enough: a store grown with
    `train data --first-seed 0 --assets N` past the one the fit saw)."""
    from safetensors.torch import load_file
    path = Path(model_dir) / TABLE_DIR / "latents.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `train fit` first and pass its output "
                                "folder as --table (or --init).")
    table = load_file(str(path))["latents"]
    if len(table) > expected or (len(table) < expected and not prefix):
        raise ValueError(f"{path} holds {len(table)} latents but the store has {expected} "
                         "assets: use the store the fit stage trained on"
                         + ("." if prefix else " (or `--encoder-target both`, for a store "
                            "that begins with it)."))
    return table


def _initial_table(a: TrainArgs, cfg, store: Store, model) -> torch.Tensor | None:
    """fit: small random latents (or the table of --table / --init when it has one; with
    --freeze-decoder and no table, the encoder's means); encoder: that table."""
    source = a.table or a.init
    if (a.stage == "encoder" and a.encoder_target != "field") or (a.stage == "fit" and source
                                and (Path(source) / TABLE_DIR).exists()):
        return load_table(source, len(store), prefix=a.encoder_target == "both")
    if a.stage != "fit":
        return None
    if a.freeze_decoder:
        from .cache import encoder_means
        return encoder_means(model, store).cpu()
    v = cfg.vae
    g = torch.Generator().manual_seed(a.seed)
    return 0.1 * torch.randn(len(store), 3, v.latent_channels, v.latent_size, v.latent_size,
                             generator=g)


def _optimizer(part: StageLoss, a: TrainArgs) -> torch.optim.Optimizer:
    """AdamW; the fit stage's latent table learns `table_lr` times faster (DeepSDF)."""
    table = [p for n, p in part.named_parameters() if n == "table" and p.requires_grad]
    rest = [p for n, p in part.named_parameters() if n != "table" and p.requires_grad]
    groups = [{"params": rest, "lr_scale": 1.0}]
    if table:
        groups.append({"params": table, "lr_scale": a.table_lr})
    return torch.optim.AdamW(groups, lr=a.lr, weight_decay=0.0, betas=(0.9, 0.99))
