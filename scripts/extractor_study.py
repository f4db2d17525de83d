"""Which extractor makes the best meshes of a model's fields? Held-out assets (never
trained on) are encoded from their 4 input views and decoded; each extractor meshes the
same field; Chamfer-L1 and normal consistency against the true surface (2048 points),
faces and seconds are printed as JSON (means over the assets).

    .venv/bin/python scripts/extractor_study.py --model weights/kiln-mini [--assets 24]
        [--resolution 64 128]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="kiln-mini")
    p.add_argument("--assets", type=int, default=24)
    p.add_argument("--resolution", type=int, nargs="+", default=[64, 128])
    a = p.parse_args(argv)
    import numpy as np
    from engine.evaluation import metrics as M
    from engine.evaluation.run import EvalSettings, Evaluator, SurfaceCache, default_cache_dir
    from engine.geometry.extract import extract_surface
    from engine.geometry.flexicubes import extract_flexicubes
    from engine.geometry.mesh import Mesh
    from engine.pipeline import Pipeline
    pipe = Pipeline.from_pretrained(a.model, device="cpu")
    ev = Evaluator(pipe, EvalSettings(), lambda *x: None, SurfaceCache(default_cache_dir()))
    rows: dict = {}
    for i in range(a.assets):
        item = ev.view_item(i)
        planes = ev.decode_planes(item["views"][:4])
        sdf_fn, _ = pipe.field_fns(planes)
        head = pipe.flexi_head_fn(planes)
        for res in a.resolution:
            ways = {"mc": lambda: extract_surface(sdf_fn, resolution=res),
                    "flexicubes_sharp": lambda: Mesh(*extract_flexicubes(sdf_fn, res)),
                    "flexicubes_plain": lambda: Mesh(*extract_flexicubes(sdf_fn, res, sharp=False))}
            if head is not None:
                ways["flexicubes_learned"] = lambda: Mesh(*extract_flexicubes(sdf_fn, res, head_fn=head))
            for name, make in ways.items():
                t0 = time.perf_counter()
                mesh = make()
                sec = time.perf_counter() - t0
                got, true = ev.cloud(mesh), item["surface"]
                row = rows.setdefault(f"{name}@{res}", {"chamfer_l1": [], "normal_consistency": [],
                                                        "faces": [], "seconds": []})
                row["chamfer_l1"].append(M.chamfer_l1(got.points_nx3, true.points_nx3))
                row["normal_consistency"].append(M.normal_consistency(
                    got.points_nx3, got.normals_nx3, true.points_nx3, true.normals_nx3))
                row["faces"].append(mesh.num_faces)
                row["seconds"].append(sec)
        print(f"asset {i + 1}/{a.assets}", file=sys.stderr, flush=True)
    out = {k: {m: float(np.mean(v)) for m, v in r.items()} for k, r in rows.items()}
    print(json.dumps({"model": str(a.model), "assets": a.assets, "device": "cpu",
                      "extractors": out}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
