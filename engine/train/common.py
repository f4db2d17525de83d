"""What both trainers share: devices, distributed setup, checkpoints, logging.

Distributed: the same script runs alone or under torchrun (DistributedDataParallel; gloo on
CPU, nccl on CUDA). The global batch is split across ranks; each rank draws its own slice
of the same global batch indices, so N processes train like one on the same global batch.
Checkpoints are safetensors (model + optimizer tensors) plus a JSON with the step and
scalars: resumable, never pickled.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> Dist:
    want_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if "RANK" not in os.environ:
        return Dist(device=torch.device("cuda" if want_cuda else "cpu"))
    dist.init_process_group("nccl" if want_cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    if want_cuda:
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        return Dist(rank, world, torch.device("cuda", local))
    return Dist(rank, world, torch.device("cpu"))


def close_distributed() -> None:
    """Leave the process group together (a barrier, then destroy): a rank that exits while
    the group's threads still run aborts ("terminate called without an active exception")."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def wrap_ddp(module: torch.nn.Module, d: Dist):
    if d.world == 1:
        return module
    from torch.nn.parallel import DistributedDataParallel
    ids = [d.device.index] if d.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def rank_slice(items, d: Dist):
    """This rank's share of a global batch (contiguous, equal sizes)."""
    n = len(items) // d.world
    return items[d.rank * n:(d.rank + 1) * n]


def mean_across_ranks(value: float, d: Dist) -> float:
    if d.world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return t.item() / d.world


def autocast(d: Dist, bf16: bool):
    if bf16 and d.device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def save_checkpoint(folder: Path, model: torch.nn.Module, opt: torch.optim.Optimizer,
                    step: int, extra: dict | None = None) -> None:
    from safetensors.torch import save_file
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
              str(folder / "model.safetensors"))
    opt_state = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in opt_state["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{k}"] = v
    save_file(tensors or {"_empty": torch.zeros(1)}, str(folder / "optimizer.safetensors"))
    meta = {"step": step, "opt_scalars": scalars, "param_groups": opt_state["param_groups"],
            **(extra or {})}
    (folder / "trainer.json").write_text(json.dumps(meta, indent=1))


def load_checkpoint(folder: Path, model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict:
    from safetensors.torch import load_file
    folder = Path(folder)
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    meta = json.loads((folder / "trainer.json").read_text())
    tensors = load_file(str(folder / "optimizer.safetensors"))
    state: dict = {}
    for key, v in tensors.items():
        if key != "_empty":
            pid, name = key.split(".", 1)
            state.setdefault(int(pid), {})[name] = v
    for key, v in meta["opt_scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return meta


class Logger:
    """JSON-lines log of losses (and evals) plus a short stderr line."""

    def __init__(self, path: Path, enabled: bool = True, every: int = 20):
        self.path, self.enabled, self.every = Path(path), enabled, every
        self.t0 = time.time()
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def log(self, step: int, **values) -> None:
        if not self.enabled:
            return
        rec = {"step": step, "time": round(time.time() - self.t0, 2),
               **{k: round(float(v), 6) for k, v in values.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        if self.every and step % self.every == 0:     # every=0: the file only
            parts = " ".join(f"{k}={v:.4g}" for k, v in rec.items() if k not in ("step", "time"))
            print(f"step {step} ({rec['time']:.0f}s) {parts}", flush=True,
                  file=__import__("sys").stderr)


def cosine_lr(step: int, progress: float, base: float, warmup: int = 100) -> float:
    """Linear warm-up for `warmup` steps, then cosine decay over progress in [0, 1]."""
    import math
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
