"""Near-surface sign error of a model's VAE on training and held-out assets.

    .venv/bin/python scripts/sign_error_study.py --model weights/kiln-mini --store WORK/assets
        [--table WORK/fit] [--n 96] [--heldout 96] [--table-noise 0.3 0.6] [--psnr 24]
        [--json out.json]

For each asset: its 4 views through the encoder (posterior mean) -> decoder -> field, and
the share of points within 0.05 of the true surface where the decoded SDF has the wrong
sign. Points: the training store's own sample points (training assets), and for held-out
assets (eval seeds, rendered as the training data is) the true surface jittered by
N(0, 0.02). The training assets are also measured from their first view alone. With
--table, the fit stage's latents of the training assets are measured too (what the decoder
itself can hold, before the encoder's error), with the encoder's error against them
relative to their variance, and with --table-noise, the same latents plus Gaussian noise
of each given fraction of their spread (how the decoder copes with latents off its table),
and the held-out protocol (jittered true surface) on the training assets for the table's
latents and the encoder's: what this decoder can reach on that protocol at best. With
--table and --psnr K, the eval's novel-view PSNR of the table's latents and the encoder's
on the first K training assets: whether the decoder or the encoder limits PSNR.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def decoded_error(vae, latents, points, sdf_true) -> float:
    from engine.evaluation.metrics import near_sign_error
    with torch.inference_mode():
        sdf, _ = vae.field(vae.decoder(latents), points)
    return near_sign_error(sdf, sdf_true)


def encoded(vae, views_bxvx3xhxw) -> torch.Tensor:
    """Posterior means (B, 3, C, R, R), 16 assets at a time."""
    with torch.inference_mode():
        return torch.cat([vae.encoder(views_bxvx3xhxw[a:a + 16])[0]
                          for a in range(0, len(views_bxvx3xhxw), 16)])


def training_errors(vae, store, n: int, table=None, noise=()) -> dict:
    idx = torch.arange(min(n, len(store)))
    views, pts, sdf = (store.tensors[k][idx].float() for k in ("views", "points", "sdf"))
    means = encoded(vae, views)
    out = {"train_encoder": decoded_error(vae, means, pts, sdf),
           "train_encoder_1view": decoded_error(vae, encoded(vae, views[:, :1]), pts, sdf)}
    if table is not None:
        fitted = table[idx].float()
        out["train_table"] = decoded_error(vae, fitted, pts, sdf)
        out["encoder_rel_mse"] = float(((means - fitted) ** 2).mean() / fitted.var())
        g = torch.Generator().manual_seed(0)
        for scale in noise:
            noisy = fitted + scale * fitted.std() * torch.randn(fitted.shape, generator=g)
            out[f"train_table_noise{scale}"] = decoded_error(vae, noisy, pts, sdf)
        out.update(training_jittered(vae, store, means, fitted))
    return out


def jittered(asset, i: int):
    """2,048 true-surface points of `asset` jittered by N(0, 0.02): (1, P, 3), true SDF (P,)."""
    from engine.evaluation.metrics import asset_surface
    surface = torch.as_tensor(asset_surface(asset, 2048, seed=i).points_nx3, dtype=torch.float32)
    pts = surface + 0.02 * torch.randn(surface.shape, generator=torch.Generator().manual_seed(i))
    return pts[None], asset.sdf(pts)


def jittered_error(vae, latent, asset, i: int) -> float:
    pts, sdf_true = jittered(asset, i)
    return decoded_error(vae, latent, pts, sdf_true[None])


def heldout_error(vae, n: int) -> float:
    from engine.evaluation.run import heldout_asset, render_views, training_cameras
    errors = []
    for i in range(n):
        asset = heldout_asset("vae", 10_000 + i)
        views, _ = render_views(asset.sdf, asset.rgb, training_cameras(asset.seed),
                                vae.cfg.image_size)
        errors.append(jittered_error(vae, encoded(vae, views[None]), asset, i))
    return sum(errors) / len(errors)


def procedural_rows(store, n: int) -> list[tuple[int, int]]:
    """(row, seed) of the procedural assets among the store's first n rows."""
    from engine.train.store import asset_seeds
    return [(i, s) for i, s in enumerate(asset_seeds(store)[:n]) if s is not None]


def training_jittered(vae, store, means, fitted) -> dict:
    """The held-out protocol on the store's first len(means) training assets (the
    procedural ones): the encoder's means and the fitted latents, (n, 3, C, R, R) each."""
    from engine.data import make_asset
    rows = procedural_rows(store, len(means))
    table_err, enc_err = [], []
    for i, seed in rows:
        asset = make_asset(seed)
        table_err.append(jittered_error(vae, fitted[i:i + 1], asset, i))
        enc_err.append(jittered_error(vae, means[i:i + 1], asset, i))
    return {"train_table_jittered": sum(table_err) / len(rows),
            "train_encoder_jittered": sum(enc_err) / len(rows)}


def novel_psnr(pipe, latent, asset) -> float:
    """Sphere-traced novel-view PSNR (the eval's cameras and renderer) of one latent
    (1, 3, C, R, R) against asset's own albedo from those cameras."""
    from engine.evaluation import metrics as M
    from engine.evaluation.run import capped, novel_cameras, render_views
    cams, res = novel_cameras(asset.seed), pipe.model.vae.cfg.image_size
    _, truth = render_views(asset.sdf, asset.rgb, cams, res)
    with torch.inference_mode():
        sdf_fn, rgb_fn = pipe.field_fns(pipe.model.vae.decoder(latent))
        _, pred = render_views(capped(sdf_fn), rgb_fn, cams, res)
    return M.psnr(pred["rgb"], truth["rgb"])


def psnr_split(pipe, store, table, n: int) -> dict:
    """Novel-view PSNR on the first n training assets from the fit table's latents (what
    the decoder itself holds) and from the encoder's means of the 4 views: which of the two
    limits the eval's PSNR."""
    from engine.data import make_asset
    rows = procedural_rows(store, n)
    means = encoded(pipe.model.vae, store.tensors["views"][[i for i, _ in rows]].float())
    table_db, enc_db = [], []
    for k, (i, seed) in enumerate(rows):
        asset = make_asset(seed)
        table_db.append(novel_psnr(pipe, table[i:i + 1].float(), asset))
        enc_db.append(novel_psnr(pipe, means[k:k + 1], asset))
    return {"psnr_n": len(rows), "train_table_psnr": sum(table_db) / len(rows),
            "train_encoder_psnr": sum(enc_db) / len(rows)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--store", type=Path, required=True, help="the training asset store")
    p.add_argument("--table", type=Path, help="fit-stage folder with the latent table")
    p.add_argument("--n", type=int, default=96, help="training assets")
    p.add_argument("--heldout", type=int, help="held-out assets (default: --n)")
    p.add_argument("--table-noise", type=float, nargs="*", default=[],
                   help="with --table: also decode the fitted latents plus this much noise")
    p.add_argument("--psnr", type=int, default=0,
                   help="with --table: novel-view PSNR of the table's and the encoder's latents "
                        "on this many training assets")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    from engine.pipeline import Pipeline
    from engine.train.loop import load_table
    from engine.train.store import Store
    pipe = Pipeline.from_pretrained(a.model, device="cpu")
    vae = pipe.model.vae.eval()
    store = Store.load(a.store)
    table = load_table(a.table, len(store)) if a.table else None
    heldout = a.heldout or a.n
    result = {"model": a.model, "n": a.n, "heldout": heldout,
              **training_errors(vae, store, a.n, table, a.table_noise),
              "heldout_encoder": heldout_error(vae, heldout)}
    if a.psnr and table is not None:
        result.update(psnr_split(pipe, store, table, a.psnr))
    print(json.dumps(result, indent=1))
    if a.json:
        a.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
