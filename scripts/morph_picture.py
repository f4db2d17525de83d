"""README picture of Morph (docs/morph.png) and the figures that choose its default path.

Two kiln-mini results are made and exported as the add-on makes them; then both morph
paths (engine/morph.py) run from one to the other: a row of thumbnails each, the two
sources at the ends. Printed, per path: seconds per in-between, the mesh's connected
pieces (1 is one object; a cross-fade of two shapes tends to leave loose pieces), the
Chamfer-L1 step between neighbouring frames (an even morph has no big jump) and each
frame's distance to the two sources.

    .venv/bin/python scripts/morph_picture.py [--sources "a red chair:1" "a blue mug:1"]
        [--steps 5] [--out out/morph] [--picture docs/morph.png]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sources", nargs=2, default=["a red chair:1", "a blue mug:1"],
                   metavar="PROMPT:SEED")
    p.add_argument("--steps", type=int, default=5, help="in-betweens")
    p.add_argument("--model", default="kiln-mini")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "out" / "morph")
    p.add_argument("--picture", type=Path, default=ROOT / "docs" / "morph.png")
    return p.parse_args(argv)


def frame_figures(meshes, seconds) -> dict:
    """Pieces, neighbour steps and distances to the ends of one row of meshes."""
    from engine.evaluation.metrics import chamfer_l1, sample_surface
    import trimesh
    clouds = [sample_surface(m, 4096).points_nx3 for m in meshes]
    steps = [chamfer_l1(a, b) for a, b in zip(clouds, clouds[1:])]
    return {"seconds_each": [round(s, 2) for s in seconds],
            "pieces": [pieces(trimesh, m) for m in meshes],
            "step_chamfer": [round(s, 4) for s in steps],
            "largest_step_share": round(max(steps) / sum(steps), 3),
            "to_first": [round(chamfer_l1(c, clouds[0]), 4) for c in clouds],
            "to_second": [round(chamfer_l1(c, clouds[-1]), 4) for c in clouds]}


def pieces(trimesh, mesh) -> int:
    """Connected pieces of a result, its UV seams closed (vertices merged by position)."""
    return int(trimesh.Trimesh(mesh.vertices_nx3, mesh.faces_fx3).body_count)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    from engine import morph, protocol
    from engine.pipeline import Pipeline
    from engine.render.contact_sheet import contact_sheet_png
    from engine.render.thumbnail import thumbnail_rgba
    pipe = Pipeline.from_pretrained(args.model, device="cpu")
    metas = []
    for i, spec in enumerate(args.sources):
        prompt, _, seed = spec.rpartition(":")
        result = pipe.text_to_3d(prompt, seed=int(seed))
        _, sidecar = pipe.export(result, args.out / f"source-{i}.glb")
        metas.append(morph.read_sidecar(str(sidecar)))
    fractions = [0.0, *protocol.morph_fractions(args.steps), 1.0]
    tiles, captions, figures = [], [], {}
    for path in morph.PATHS:
        meshes, seconds = [], []
        for f in fractions:
            t0 = time.perf_counter()
            meshes.append(morph.morph(pipe, metas[0], metas[1], f, path).mesh)
            seconds.append(time.perf_counter() - t0)
        figures[path] = frame_figures(meshes, seconds[1:-1])
        tiles += [thumbnail_rgba(m) for m in meshes]
        captions += [f"{path} {f:.2f}" for f in fractions]
    args.picture.parent.mkdir(parents=True, exist_ok=True)
    args.picture.write_bytes(contact_sheet_png(tiles, captions, columns=len(fractions)))
    report = {"sources": args.sources, "fractions": fractions, "paths": figures}
    (args.out / "morph.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
