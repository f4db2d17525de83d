"""`python -m engine eval --model kiln-mini [--json] [--quick] [--prompts N]`.

stdout: the figures as JSON (--json) or a readable table; progress goes to stderr.
True asset surfaces are cached in ~/.cache/kiln/eval ($KILN_EVAL_CACHE; set it empty to
disable), so re-runs skip meshing the references.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path


def add_arguments(p) -> None:
    p.add_argument("--model", default="kiln-mini", help="model name, folder or hub repo id")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--quick", action="store_true", help="tiny counts (a smoke test, not figures)")
    p.add_argument("--prompts", type=int, default=None, help="text-faithfulness prompts (200)")
    p.add_argument("--vae", type=int, default=None, help="held-out assets for the VAE section")
    p.add_argument("--per-category", type=int, default=None,
                   help="generated shapes and references per category")
    p.add_argument("--unseen", type=int, default=None, help="prompts in held-out phrasing")
    p.add_argument("--images", type=int, default=None, help="image-to-3D assets")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (model default)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--extractor", choices=("mc", "flexicubes"), default=None,
                   help="mesh extractor of generated shapes (default: the model's)")
    p.add_argument("--refine-steps", type=int, default=None,
                   help="test-time refine steps of the VAE section's refined rows (20; 0: none)")
    p.add_argument("--no-reading", dest="reading", action="store_false",
                   help="prompts exactly as written, without prompt reading (engine/reading.py): "
                        "the DiT's own figures")
    p.add_argument("--library", type=Path, default=None, metavar="STORE",
                   help="an asset store of your meshes (train all: MODEL/work/data): prompts of "
                        "its categories, scored by the nearest library asset")
    p.add_argument("--library-prompts", type=int, default=3, help="prompts (seeds) per library category")
    p.add_argument("--library-only", action="store_true",
                   help="only the library section (skip the procedural figures)")


class StderrProgress:
    """One line per stage change and every few items, on stderr."""

    def __init__(self, every_s: float = 5.0):
        self.stage, self.last, self.every_s, self.t0 = None, 0.0, every_s, time.perf_counter()

    def __call__(self, stage: str, i: int, total: int) -> None:
        now = time.perf_counter()
        if stage != self.stage or now - self.last >= self.every_s:
            print(f"[eval {now - self.t0:6.0f}s] {stage} {i + 1}/{total}", file=sys.stderr,
                  flush=True)
            self.stage, self.last = stage, now


def main(args) -> int:
    from ..errors import KilnError
    from .run import evaluate
    try:
        result = evaluate(args.model, n_vae=args.vae, n_gen_per_category=args.per_category,
                          n_prompts=args.prompts, n_unseen=args.unseen, n_image=args.images,
                          quick=args.quick, device=args.device, steps=args.steps,
                          extractor=args.extractor, refine_steps=args.refine_steps,
                          progress=StderrProgress(),
                          library=args.library, library_prompts=args.library_prompts,
                          library_only=args.library_only, reading=args.reading)
    except KilnError as exc:
        print(f"error ({exc.code}): {exc.message}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as exc:
        print(f"eval: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


def library_table(lib: dict) -> list[str]:
    lines = ["", f"Library: {lib['n']} prompts against {lib['references']} library assets: "
             f"category accuracy {lib['accuracy']:.1f}%"]
    lines += [f"  {cat:<20} {acc:6.1f}%" for cat, acc in lib["per_category"].items()]
    return lines


def refined_rows(v: dict, t: dict) -> list[tuple[str, str]]:
    """The VAE section's rows after test-time refine (none when it was off)."""
    f = v.get("refined")
    if not f:
        return []
    return [(f"  after {f['steps']} refine steps ({f['refine_seconds']:.1f} s each)", ""),
            ("    novel-view PSNR (dB)", f"{f['psnr_novel']:.2f}"),
            ("    Chamfer-L1", f"{f['chamfer_l1']:.4f}"),
            ("    near-surface sign error (%)", f"{100 * f['near_sign_error']:.1f}"),
            ("    category ceiling (%)", f"{t.get('vae_refined_category_accuracy', math.nan):.1f}")]


def format_table(r: dict) -> str:
    if "vae" not in r:                      # --library-only
        return "\n".join([f"Kiln evaluation: model {r['model']} on {r['device']}"]
                         + library_table(r["library"]))
    v, g, t, im, tm = r["vae"], r["generation"], r["text"], r["image"], r["timings"]
    lines = [f"Kiln evaluation: model {r['model']} on {r['device']}"
             f"{' (quick: smoke counts, not figures)' if r['quick'] else ''}", ""]
    rows = [
        ("VAE", f"{v['n']} held-out assets, 4 input views"),
        ("  novel-view PSNR (dB)", f"{v['psnr_novel']:.2f}"),
        ("  novel-view PSNR, volume (dB)", f"{v['psnr_novel_volume']:.2f}"),
        ("  Chamfer-L1", f"{v['chamfer_l1']:.4f}"),
        ("  normal consistency", f"{v['normal_consistency']:.3f}"),
        ("  Chamfer-L1, 1 view", f"{v['chamfer_l1_1view']:.4f}"),
        ("  near-surface sign error (4 views, %)", f"{100 * v['near_sign_error']:.1f}"),
        *refined_rows(v, t),
        ("Generation", f"{g['k']} shapes vs {g['k']} references per category"),
        ("  COV (%)", f"{g['cov']:.1f}"),
        ("  MMD (CD)", f"{g['mmd_cd']:.5f}"),
        ("  1-NNA (%)", f"{g['one_nna']:.1f}"),
        ("Text", f"{t['n']} prompts ({t['color_n']} naming a colour)"),
        ("  category accuracy (%)", f"{t['category_accuracy']:.1f}"),
        ("  colour accuracy (%)", f"{t['color_accuracy']:.1f}"),
        ("  colour accuracy, clear prompts (%)", f"{t['color_accuracy_clear']:.1f}"
                                                f"  ({t['clear_n']} prompts)"),
        ("  unseen phrasing: category (%)", f"{t['unseen_category_accuracy']:.1f}"
                                          f"  ({t['unseen_n']} prompts, "
                                          f"{t['unseen_read_n']} read anew)"),
        ("  unseen phrasing: colour (%)", f"{t['unseen_color_accuracy']:.1f}"),
        ("  category ceiling (VAE reconstructions, %)", f"{t['vae_category_accuracy']:.1f}"
                                                       f"  ({v['n']} assets)"),
        ("  colour ceiling (true assets, %)", f"{t['reference_color_accuracy']:.1f}"
                                             "  (main colour = dominant colour)"),
        ("Image to 3D", f"{im['n']} held-out views"),
        ("  Chamfer-L1", f"{im['chamfer_l1']:.4f}"),
        ("Time", f"{tm['total']:.0f} s total, {tm['generations']} generations, "
                 f"median {tm['per_generation_median']:.2f} s each"),
    ]
    width = max(len(a) for a, _ in rows)
    lines += [f"{a:<{width}}  {b}" for a, b in rows]
    lines += ["", "Per category    COV %   MMD (CD)   1-NNA %   category %   colour %"]
    for cat, m in g["per_category"].items():
        acc = t.get("per_category", {}).get(cat, {})
        color = f"{acc['color']:8.1f}" if "color" in acc else "       -"
        lines.append(f"  {cat:<12} {m['cov']:6.1f}   {m['mmd_cd']:.5f}   {m['one_nna']:7.1f}"
                     f"   {acc.get('category', float('nan')):10.1f}   {color}")
    if "library" in r:
        lines += library_table(r["library"])
    lines += ["", "Targets (issue 3):"]
    for name, item in r["targets"].items():
        lines.append(f"  {'met ' if item['met'] else 'MISS'}  {name}  (got {item['value']:.2f})")
    if r.get("empty_meshes"):
        lines.append(f"\n{r['empty_meshes']} generated/decoded meshes were empty "
                     "(scored as a point at the origin).")
    return "\n".join(lines)
