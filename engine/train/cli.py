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

TRAIN_SEED_BASE = 0          # training assets use seeds from here up
HELDOUT_SEED_BASE = 10**8    # evaluation never uses seeds below this


def add_arguments(p) -> None:
    """The TrainArgs flags (engine/train/options.py, declared there once), then those of
    the stages that are not a training loop (data, latents, all)."""
    from .options import add_arguments as add_train_arguments
    add_train_arguments(p)
    p.add_argument("--assets", type=int, default=1024, help="data: procedural assets")
    p.add_argument("--first-seed", type=int, default=TRAIN_SEED_BASE,
                   help="data: the first procedural seed")
    p.add_argument("--views", type=int, default=4, help="data: views per asset")
    p.add_argument("--res", type=int, default=64, help="data: view resolution")
    p.add_argument("--points", type=int, default=None,
                   help="data: 3D samples per asset (4096; a mesh's pool of fresh samples: 16384)")
    p.add_argument("--workers", type=int, default=2, help="processes that render assets")
    p.add_argument("--from-table", action="store_true",
                   help="latents: take the fit stage's latent table, not the encoder's means")
    p.add_argument("--keep-norm", action="store_true",
                   help="latents: normalise by the --init model's latent shift and scale (a "
                        "fine-tune keeps its DiT valid)")
    p.add_argument("--neighbour-captions", type=int, default=0,
                   help="latents: this many more captions per asset, the category word "
                        "swapped for a word the text encoder places near it")
    from .all import add_arguments as add_all_arguments
    add_all_arguments(p)


def main(args) -> int:
    if args.stage == "data":
        return _data(args)
    if args.stage == "latents":
        return _latents(args)
    if args.stage == "all":
        return _all(args)
    from .loop import train
    from .options import train_args
    try:
        summary = train(train_args(args))
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
    from ..models.conditioners import offline_env, text_encoder
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
    try:
        store = build_latent_store(model, text_encoder(cfg, args.init), assets, table=table,
                                   norm=norm, neighbour_captions=args.neighbour_captions)
    except ValueError as exc:
        print(f"train latents: {exc}", file=sys.stderr)
        return 2
    store.save(args.out)
    print(json.dumps({"assets": len(store), "latent_scale": store.info["latent_scale"],
                      "latent_shift": store.info["latent_shift"]}))
    return 0
