"""`python -m engine train all --meshes DIR --out runs/mine [--init kiln-mini] [--minutes N]`:
a folder of meshes -> a model folder, every stage in order, resumable.

  replay   (with --init) the init model's own generations for captions of its training
           world, so it keeps what it knew (engine.train.replay)
  data     library (+ replay) meshes -> an asset store (engine.data.dataset)
  table    (with --init) the fit's starting latents: the init encoder's means of every
           asset's views, a replay mesh's own latent
  fit      auto-decoder: a latent per asset through decoder and field, fresh samples
  latents  the fitted table + caption tokens + image conditions -> the DiT's store
  dit      text / image condition -> latent
  encoder  1-4 posed views -> the fitted latents
  flexi    (with --flexi) the FlexiCubes head and mesh losses on the fixed latents
OUT ends as a model folder (config.json, safetensors, SHA256SUMS, MODEL_CARD.md) that
`generate --model OUT`, `doctor --model OUT` and Blender's Preferences (model: folder)
load; OUT/train_all.json is the summary, OUT/work/ holds every stage. The stages after
`data` share the time left of --minutes in fixed proportions (STAGE_SHARES); each is
skipped when done and resumed from its checkpoint when started, so running the same
command again after a kill continues where it stopped.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

STAGE_SHARES = {"fit": 0.46, "dit": 0.34, "encoder": 0.12, "flexi": 0.08}
WARMUP = 20             # LR warm-up steps of every stage (a capped stage runs a few hundred)
# (batch, lr, extra) per stage; a fine-tune from --init learns slower than a fresh model,
# except the latents of the new assets (table_lr is a multiple of lr).
FRESH = {"fit": (16, 3e-4, {"table_lr": 30.0}), "dit": (32, 5e-4, {}),
         "encoder": (32, 1e-3, {}), "flexi": (4, 1e-4, {})}
TUNE = {"fit": (16, 1.5e-4, {"table_lr": 60.0}), "dit": (32, 2.5e-4, {}),
        "encoder": (32, 3e-4, {}), "flexi": (4, 5e-5, {})}
REPLAY_PER_CATEGORY = 2


def add_arguments(p) -> None:
    """Options only `train all` reads (the rest are train's own)."""
    p.add_argument("--meshes", type=Path, help="all/data: the folder of your mesh files")
    p.add_argument("--minutes", type=float, default=60.0,
                   help="all: wall-time budget of the whole run (stages share what data leaves)")
    p.add_argument("--replay", type=int, default=None,
                   help=f"all: init-model generations kept in the data ({REPLAY_PER_CATEGORY} "
                        "per procedural category with --init; 0: none)")
    p.add_argument("--max-steps", type=int, default=0, help="all: cap every stage's steps (smoke runs)")
    from ..config import UP_ROTATIONS
    p.add_argument("--up", choices=tuple(UP_ROTATIONS), default="y",
                   help="all/data: up axis of the mesh files (glTF and most OBJ are Y-up)")


# ----------------------------------------------------------------------------- progress

class Bar:
    """One progress bar per stage on stderr: redrawn in place on a terminal, a line per
    tenth otherwise (logs)."""

    def __init__(self, name: str, width: int = 28):
        self.name, self.width, self.t0, self.shown = name, width, time.time(), -1
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int, total: int, fraction: float | None = None) -> None:
        f = min(1.0, done / max(1, total) if fraction is None else fraction)
        k = int(f * self.width)
        line = (f"{self.name:>8} [{'#' * k}{'.' * (self.width - k)}] {100 * f:3.0f}%  "
                f"{time.time() - self.t0:5.0f}s")
        if self.tty:
            print("\r" + line, end="", file=sys.stderr, flush=True)
        elif int(f * 10) > self.shown:
            self.shown = int(f * 10)
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty:
            print(file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- the run

class Run:
    def __init__(self, args):
        from ..config import REGISTRY, ModelConfig
        from ..io.weights import resolve
        self.args, self.out = args, Path(args.out)
        self.work = self.out / "work"
        self.work.mkdir(parents=True, exist_ok=True)
        self.init = resolve(str(args.init)) if args.init else None
        self.cfg = ModelConfig.load(self.init / "config.json") if self.init else REGISTRY[args.size]()
        self.recipe = TUNE if self.init else FRESH
        self.state_path = self.work / "state.json"
        self.state = json.loads(self.state_path.read_text()) if self.state_path.exists() else {
            "started": time.time(), "spent_s": 0.0, "stages": {}}
        self.t0 = time.time() - self.state["spent_s"]

    def save_state(self) -> None:
        self.state["spent_s"] = time.time() - self.t0
        self.state_path.write_text(json.dumps(self.state, indent=1))

    def stage_done(self, name: str, summary: dict) -> None:
        self.state["stages"][name] = summary
        self.save_state()

    # ---- stages before training
    def replay(self) -> Path | None:
        from .replay import write_replay
        count = self.args.replay
        if count is None:
            from ..data.shapes import CATEGORIES
            count = REPLAY_PER_CATEGORY * len(CATEGORIES) if self.init else 0
        if not count or not self.init:
            return None
        folder = self.work / "replay"
        bar = Bar("replay")
        self.stage_done("replay", write_replay(self.init, folder, count, self.args.device, bar))
        bar.close()
        return folder

    def data(self, replay: Path | None) -> Path:
        from ..data.dataset import build_store, library_sources
        folder = self.work / "data"
        if (folder / "store.json").exists():
            return folder
        t0 = time.time()
        sources = library_sources(self.args.meshes, up=self.args.up)
        if replay is not None and list(replay.glob("*.ply")):
            sources += library_sources(replay, up="z", first_key=len(sources), kiln_space=True,
                                       extra={"replay": True})
        bar = Bar("data")
        store = build_store(sources, self.cfg.vae.max_views, self.cfg.vae.image_size,
                            self.args.points or 16384, self.args.workers, bar)
        bar.close()
        store.save(folder)
        skipped = store.info["skipped"]
        self.stage_done("data", {"assets": len(store), "skipped": skipped,
                                 "wall_s": round(time.time() - t0, 1)})
        return folder

    def caps(self) -> dict:
        """Minutes per training stage, fixed once the data exist (a resumed run keeps them)."""
        if "caps" not in self.state:
            left = max(0.0, self.args.minutes - (time.time() - self.t0) / 60)
            stages = [s for s in STAGE_SHARES if s != "flexi" or self.args.flexi]
            total = sum(STAGE_SHARES[s] for s in stages)
            self.state["caps"] = {s: max(0.05, left * STAGE_SHARES[s] / total) for s in stages}
            if left < 1.0:
                print(f"train all: only {left:.1f} of --minutes {self.args.minutes} are left "
                      "after the data stage: the model will be barely trained; give more "
                      "minutes.", file=sys.stderr)
            self.save_state()
        return self.state["caps"]

    def table(self, data: Path, replay: Path | None) -> Path | None:
        """(--init) the fit's starting latent table (see the module docstring)."""
        if not self.init:
            return None
        folder = self.work / "table"
        from .loop import TABLE_DIR
        if (folder / TABLE_DIR / "latents.safetensors").exists():
            return folder
        from safetensors.torch import save_file
        table = starting_table(self.init, data, replay)
        (folder / TABLE_DIR).mkdir(parents=True, exist_ok=True)
        save_file({"latents": table.contiguous()}, str(folder / TABLE_DIR / "latents.safetensors"))
        return folder

    # ---- training stages
    def train(self, name: str, stage: str, **fields) -> Path:
        from .loop import train
        from .options import TrainArgs
        out = self.work / name
        if (out / f"summary_{stage}.json").exists():
            return out
        batch, lr, extra = self.recipe[name]
        a = TrainArgs(stage=stage, out=out, device=self.args.device, batch=batch, lr=lr,
                      steps=self.args.max_steps or 10**7, max_minutes=self.caps()[name],
                      resume=True, ckpt_every=100, seed=self.args.seed, size=self.args.size,
                      warmup=WARMUP,
                      **{**extra, **fields})
        bar = Bar(name)
        summary = train(a, on_step=bar)
        bar.close()
        self.stage_done(name, {k: v for k, v in summary.items() if k != "history"}
                        | {"cap_min": round(self.caps()[name], 2)})
        return out

    def latents(self, data: Path, fit: Path) -> Path:
        out = self.work / "latents"
        if (out / "store.json").exists():
            return out
        t0 = time.time()
        summary = encode_latents(data, fit, out, keep_norm=self.init is not None)
        self.stage_done("latents", dict(summary, wall_s=round(time.time() - t0, 1)))
        return out


def starting_table(init_dir: Path, data: Path, replay: Path | None):
    """(N, 3, c, h, w): the init encoder's latent means of every asset's views; a replay
    mesh's row is the latent it was generated from."""
    import torch
    from .replay import replay_latents
    from .store import Store
    model = _load(init_dir)
    store = Store.load(data)
    with torch.no_grad():
        views = store.tensors["views"]
        table = torch.cat([model.vae.encoder(views[a:a + 16].float())[0]
                           for a in range(0, len(store), 16)])
    saved = replay_latents(replay) if replay is not None else {}
    for row, rec in enumerate(store.info["assets"]):
        name = Path(rec.get("source", "")).name
        if rec.get("replay") and name in saved:
            table[row] = saved[name]
    return table


def _load(model_dir: Path):
    from ..config import ModelConfig
    from ..io.weights import load_state_dict
    from ..models import build_model
    model = build_model(ModelConfig.load(Path(model_dir) / "config.json")).eval()
    model.load_state_dict({k: v.float() for k, v in load_state_dict(model_dir).items()})
    return model


def encode_latents(data: Path, fit: Path, out: Path, keep_norm: bool) -> dict:
    """`train latents --from-table` of the fit stage (keep_norm: the fit model's latent
    normalisation, i.e. its init's, so an init DiT stays valid)."""
    from ..models.conditioners import offline_env, text_encoder
    from .cache import build_latent_store
    from .loop import load_table
    from .store import Store
    offline_env()
    model = _load(fit)
    assets = Store.load(data)
    cfg = model.cfg
    norm = (cfg.latent_shift, cfg.latent_scale) if keep_norm else None
    store = build_latent_store(model, text_encoder(cfg, fit), assets,
                               table=load_table(fit, len(assets)), norm=norm)
    store.save(out)
    return {"assets": len(store), "latent_scale": store.info["latent_scale"],
            "latent_shift": store.info["latent_shift"]}


def publish(stage_dir: Path, out: Path, name: str) -> None:
    """Copy the last stage's model into OUT under `name`, with fresh SHA256SUMS."""
    from ..config import ModelConfig
    from ..io.weights import sha256_file
    for old in out.glob("*.safetensors"):
        old.unlink()
    files = sorted(stage_dir.glob("*.safetensors"))
    for f in files:
        shutil.copy2(f, out / f.name)
    cfg = ModelConfig.load(stage_dir / "config.json")
    cfg.name = name
    cfg.save(out / "config.json")
    listed = [out / "config.json"] + [out / f.name for f in files]
    from ..reading import VOCABULARY_FILE
    if (stage_dir / VOCABULARY_FILE).is_file():       # the DiT's, for prompt reading
        shutil.copy2(stage_dir / VOCABULARY_FILE, out / VOCABULARY_FILE)
        listed.insert(1, out / VOCABULARY_FILE)
    (out / "SHA256SUMS").write_text("".join(f"{sha256_file(p)}  {p.name}\n" for p in listed))


def model_card(run: Run, summary: dict) -> str:
    s = summary["stages"]
    data = s.get("data", {})
    lines = [f"# {run.out.name}", "",
             f"Trained by `python -m engine train all` on the meshes in `{run.args.meshes}`"
             + (f", fine-tuned from `{run.init.name}`" if run.init else " from scratch")
             + f" ({summary['total_min']} minutes on {summary['device']}).", "",
             f"- assets: {data.get('assets')} ({summary['replay_assets']} of them replayed "
             "generations of the init model), "
             f"{len(data.get('skipped', []))} files skipped",
             f"- categories: {', '.join(summary['library_categories']) or 'none given'}"]
    for name in ("fit", "dit", "encoder", "flexi"):
        if name in s:
            lines.append(f"- {name}: {s[name]['steps_done']} steps in {s[name]['wall_s']} s, "
                         f"loss {s[name]['loss_first']:.4g} -> {s[name]['loss_last']:.4g}")
    lines += ["", "Figures: run `python -m engine eval --model THIS_FOLDER --library "
              "THIS_FOLDER/work/data` (the library section scores prompts of your categories)."]
    return "\n".join(lines) + "\n"


def run_all(args) -> dict:
    if args.meshes is None:
        raise ValueError("train all needs --meshes DIR, the folder of your mesh files.")
    run = Run(args)
    replay = run.replay()
    data = run.data(replay)
    run.caps()
    table = run.table(data, replay)
    common = dict(data=data, fresh_points=2048, sign_weight=1.0, rgb_weight=20.0, prior=1e-4)
    fit = run.train("fit", "fit", init=run.init, table=table, **common)
    latents = run.latents(data, fit)
    dit = run.train("dit", "dit", data=latents, init=fit)
    last = run.train("encoder", "encoder", data=data, init=dit, table=fit,
                     fp16_weights=not args.flexi)
    if args.flexi:
        last = run.train("flexi", "fit", init=last, table=fit, freeze_table=True, flexi=True,
                         flexi_res=args.flexi_res, fp16_weights=True, **common)
    publish(last, run.out, run.out.name)
    return finish(run)


def finish(run: Run) -> dict:
    from .store import Store
    store = Store.load(run.work / "data")
    names, rows = store.info["categories"], store.tensors["category"].tolist()
    used = {names[c] for c, rec in zip(rows, store.info["assets"]) if c >= 0 and not rec.get("replay")}
    summary = {"model": str(run.out), "meshes": str(run.args.meshes),
               "init": str(run.init) if run.init else None, "device": _device(run.args.device),
               "minutes": run.args.minutes, "total_min": round((time.time() - run.t0) / 60, 2),
               "replay_assets": sum(bool(r.get("replay")) for r in store.info["assets"]),
               "library_categories": sorted(used),
               "stages": run.state["stages"]}
    (run.out / "train_all.json").write_text(json.dumps(summary, indent=1))
    (run.out / "MODEL_CARD.md").write_text(model_card(run, summary))
    run.save_state()
    return summary


def _device(device: str) -> str:
    import torch
    return "cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu"
