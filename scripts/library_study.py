"""Issue 11's measurement in one command: kiln-mini fine-tuned on a library of 60 meshes of
3 categories it does not know, within a time budget, then scored.

    .venv/bin/python scripts/library_study.py WORKDIR [--minutes 20] [--no-baseline]

1. scripts/make_library.py WORKDIR/library (dumbbells, traffic cones, stars; + a broken file)
2. `engine train all --meshes WORKDIR/library --out WORKDIR/mine --init kiln-mini
   --minutes M` (wall time measured; run the script again after a kill: it resumes)
3. `engine eval --library`: prompts "a dumbbell" / "a traffic cone" / "a star", 3 seeds
   each, scored by the nearest library mesh (Chamfer); kiln-mini itself as the baseline
4. `engine eval` on the 24 procedural categories (small counts) for both models
Writes WORKDIR/library_study.json and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROCEDURAL = ["--prompts", "96", "--per-category", "2", "--vae", "4", "--unseen", "24",
              "--images", "2"]


def engine(*args) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "engine", *map(str, args)]
    print("$", " ".join(cmd[2:]), file=sys.stderr, flush=True)
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if done.returncode != 0:
        raise SystemExit(f"`{' '.join(cmd[2:])}` failed (exit {done.returncode}); see above.")
    return done


def scores(model, store: Path, procedural: list) -> dict:
    lib = json.loads(engine("eval", "--model", model, "--library", store, "--library-only",
                            "--library-prompts", "3", "--json").stdout)["library"]
    full = json.loads(engine("eval", "--model", model, "--json", *procedural).stdout)
    text = full["text"]
    return {"library_accuracy": lib["accuracy"], "library_per_category": lib["per_category"],
            "library_generations": lib["generations"],
            "procedural_category_accuracy": text["category_accuracy"],
            "procedural_color_accuracy": text["color_accuracy"],
            "procedural_per_category": {c: v.get("category") for c, v in text["per_category"].items()},
            "procedural_prompts": text["n"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("workdir", type=Path)
    p.add_argument("--minutes", type=float, default=20.0)
    p.add_argument("--no-baseline", action="store_true", help="skip scoring the init model itself")
    p.add_argument("--init", default="kiln-mini")
    p.add_argument("--per-category", type=int, default=20, help="library meshes per category")
    p.add_argument("--smoke", action="store_true", help="tiny caps and eval counts (a dry run)")
    a = p.parse_args(argv)
    w = a.workdir.resolve()
    sys.path.insert(0, str(ROOT / "scripts"))
    import make_library
    if not (w / "library" / "captions.csv").exists():
        make_library.make(w / "library", a.per_category)
    smoke = ["--max-steps", "2", "--replay", "3"] if a.smoke else []
    procedural = ["--quick"] if a.smoke else PROCEDURAL
    t0 = time.time()
    summary = json.loads(engine("train", "all", "--meshes", w / "library", "--out", w / "mine",
                                "--init", a.init, "--minutes", a.minutes, *smoke).stdout)
    train_s = time.time() - t0
    store = w / "mine" / "work" / "data"
    result = {"train_all_wall_min_this_call": round(train_s / 60, 2),
              "train_all_total_min": summary["total_min"], "minutes": a.minutes,
              "threads": os.cpu_count(), "stages": json.loads((w / "mine" / "train_all.json")
                                                              .read_text())["stages"],
              "mine": scores(w / "mine", store, procedural)}
    if not a.no_baseline:
        result[a.init] = scores(a.init, store, procedural)
    (w / "library_study.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
