"""`python -m engine train STAGE`:

  all      a folder of meshes -> a model folder, every stage (--meshes DIR --out MODEL_DIR
           [--init kiln-mini] [--minutes N]; engine/train/all.py)
  data     procedural assets (or --meshes DIR) -> an asset store (--out DIR --assets N)
  fit      auto-decoder latents + decoder on an asset store (--data DIR --out MODEL_DIR)
  encoder  the encoder regresses the fit's latents   (--data DIR --init MODEL_DIR --table FIT)
  vae      train the VAE on a store                   (--data DIR --out MODEL_DIR)
  latents  encode a store with a trained VAE          (--data DIR --init MODEL_DIR --out DIR)
  dit      train the DiT on a latent store            (--data DIR --init MODEL_DIR --out MODEL_DIR)

Multi-GPU / multi-process: `torchrun --nproc_per_node N -m engine train vae ...`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TRAIN_SEED_BASE = 0          # training assets use seeds from here up
HELDOUT_SEED_BASE = 10**8    # evaluation never uses seeds below this


def add_arguments(p) -> None:
    p.add_argument("stage", choices=("all", "data", "fit", "encoder", "vae", "latents", "dit"))
    p.add_argument("--data", type=Path, help="store folder to read")
    p.add_argument("--out", type=Path, required=True, help="store or model folder to write")
    p.add_argument("--init", type=Path, help="model folder to start from (all: or a model name)")
    p.add_argument("--size", default="mini", help="model size when starting fresh")
    p.add_argument("--assets", type=int, default=1024)
    p.add_argument("--first-seed", type=int, default=TRAIN_SEED_BASE)
    p.add_argument("--views", type=int, default=4)
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--points", type=int, default=None,
                   help="data: 3D samples per asset (4096; a mesh's pool of fresh samples: 16384)")
    p.add_argument("--workers", type=int, default=2, help="processes that render assets")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=16, help="global batch")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--ckpt-every", type=int, default=500)
    p.add_argument("--max-minutes", type=float, default=0.0)
    p.add_argument("--fp16-weights", action="store_true", help="ship float16 safetensors")
    p.add_argument("--freeze-encoder", action="store_true",
                   help="vae: fine-tune decoder and field only (a trained DiT stays valid)")
    p.add_argument("--flexi", action="store_true",
                   help="vae: add the field's FlexiCubes head and fine-tune with mesh losses")
    p.add_argument("--flexi-res", type=int, default=32, help="FlexiCubes grid for --flexi")
    p.add_argument("--mean-token-prob", type=float, default=0.0,
                   help="dit: share of captions reduced to their mean token state")
    p.add_argument("--fresh-points", type=int, default=0,
                   help="vae/fit: new exact SDF samples per asset each step (0: the store's)")
    p.add_argument("--sign-weight", type=float, default=0.0,
                   help="vae/fit: occupancy cross-entropy weight beside the SDF L1")
    p.add_argument("--rgb-weight", type=float, default=1.0,
                   help="vae/fit: weight of the colour L1 near the surface")
    p.add_argument("--render-from", type=float, default=0.0,
                   help="vae: rendering losses only after this share of the stage (1: never)")
    p.add_argument("--prior", type=float, default=1e-4, help="fit: prior weight on the latents")
    p.add_argument("--table-lr", type=float, default=30.0,
                   help="fit: the latents' learning rate as a multiple of --lr")
    p.add_argument("--table", type=Path,
                   help="fit/encoder/latents: model folder holding the latent table (default --init)")
    p.add_argument("--freeze-table", action="store_true",
                   help="fit: keep the latent table fixed (decoder fine-tuning after the DiT)")
    p.add_argument("--encoder-target", choices=("table", "field", "both"), default="table",
                   help="encoder: regress the fit table (latent MSE), learn through the frozen "
                        "decoder on 3D samples (needs --fresh-points), or both")
    p.add_argument("--from-table", action="store_true",
                   help="latents: take the fit stage's latent table, not the encoder's means")
    p.add_argument("--keep-norm", action="store_true",
                   help="latents: normalise by the --init model's latent shift and scale (a "
                        "fine-tune keeps its DiT valid)")
    from .all import add_arguments as add_all_arguments
    add_all_arguments(p)


def main(args) -> int:
    if args.stage == "data":
        return _data(args)
    if args.stage == "latents":
        return _latents(args)
    if args.stage == "all":
        return _all(args)
    from .loop import TrainArgs, train
    fields = TrainArgs.__dataclass_fields__
    try:
        summary = train(TrainArgs(**{k: v for k, v in vars(args).items() if k in fields}))
    except (ValueError, FileNotFoundError) as exc:   # a wrong option or input: a sentence
        print(f"train {args.stage}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}))
    return 0


def _data(args) -> int:
    from ..data.dataset import build_store, library_sources, procedural_sources
    try:
        if args.meshes:
            sources, points = library_sources(args.meshes, up=args.up), args.points or 16384
        else:
            seeds = range(args.first_seed, args.first_seed + args.assets)
            sources, points = procedural_sources(seeds), args.points or 4096
        store = build_store(sources, args.views, args.res, points, workers=args.workers)
    except ValueError as exc:
        print(f"train data: {exc}", file=sys.stderr)
        return 2
    store.save(args.out)
    print(json.dumps({"assets": len(store), "skipped": len(store.info["skipped"])}))
    return 0


def _all(args) -> int:
    from ..errors import KilnError
    from .all import run_all
    try:
        summary = run_all(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"train all: {exc}", file=sys.stderr)
        return 2
    except KilnError as exc:
        print(f"train all: {exc.message}", file=sys.stderr)
        return 2
    print(json.dumps({k: summary[k] for k in ("model", "total_min", "replay_assets",
                                                "library_categories")}))
    return 0


def _latents(args) -> int:
    from ..config import ModelConfig
    from ..io.weights import load_state_dict
    from ..models import build_model
    from ..models.conditioners import MiniLMText, offline_env
    from .cache import build_latent_store
    from .store import Store
    if not args.init:
        print("train latents needs --init MODEL_DIR (a trained VAE)", file=sys.stderr)
        return 2
    offline_env()
    cfg = ModelConfig.load(args.init / "config.json")
    model = build_model(cfg).eval()
    model.load_state_dict({k: v.float() for k, v in load_state_dict(args.init).items()})
    assets = Store.load(args.data)
    table = None
    if args.from_table:
        from .loop import load_table
        table = load_table(args.table or args.init, len(assets))
    norm = (cfg.latent_shift, cfg.latent_scale) if args.keep_norm else None
    store = build_latent_store(model, MiniLMText(cfg.dit.cond_tokens), assets, table=table,
                               norm=norm)
    store.save(args.out)
    print(json.dumps({"assets": len(store), "latent_scale": store.info["latent_scale"],
                      "latent_shift": store.info["latent_shift"]}))
    return 0
