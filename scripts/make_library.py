"""A mesh library of 3 categories kiln-mini does not know, made from trimesh primitives:
dumbbells, traffic cones and five-pointed stars (issue 11's measurement).

    .venv/bin/python scripts/make_library.py OUT_DIR [--per-category 20] [--seed 0]

Writes OUT_DIR/*.glb|*.obj (Y-up, as glTF), a few textured, a few not watertight (open
cones), plus OUT_DIR/captions.csv (file, caption, category; two captions per file) and
OUT_DIR/broken.glb (a damaged file that `train all` must skip). The measurement:

    .venv/bin/python scripts/make_library.py runs/library
    .venv/bin/python -m engine train all --meshes runs/library --out runs/mine \\
        --init kiln-mini --minutes 20
    .venv/bin/python -m engine eval --model runs/mine --library runs/mine/work/data \\
        --library-prompts 3 --prompts 96 --per-category 2 --vae 8 --unseen 24 --images 4
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

PALETTE = {"red": (205, 25, 25), "orange": (242, 128, 25), "yellow": (242, 217, 38),
           "blue": (38, 77, 217), "black": (20, 20, 20), "grey": (128, 128, 128),
           "green": (46, 153, 51), "white": (237, 237, 237), "purple": (128, 51, 166)}


def _rotate(mesh, angle: float, axis):
    import trimesh
    return mesh.apply_transform(trimesh.transformations.rotation_matrix(angle, axis))


def dumbbell(rng):
    """Two weights (balls, discs or hexagonal plates) on a bar along x; resting on y = 0."""
    import trimesh
    length, r = rng.uniform(0.9, 1.5), rng.uniform(0.18, 0.34)
    kind = rng.choice(["ball", "disc", "hex"])
    bar = _rotate(trimesh.creation.cylinder(rng.uniform(0.035, 0.06), length + 0.2, sections=16),
                  np.pi / 2, [0, 1, 0])
    parts = [bar]
    for side in (-1, 1):
        if kind == "ball":
            w = trimesh.creation.icosphere(2, r)
        else:
            w = _rotate(trimesh.creation.cylinder(r, rng.uniform(0.12, 0.3),
                                                  sections=6 if kind == "hex" else 24),
                        np.pi / 2, [0, 1, 0])
        parts.append(w.apply_translation([side * length / 2, 0, 0]))
    return trimesh.util.concatenate(parts).apply_translation([0, r, 0]), kind


def traffic_cone(rng, open_bottom: bool):
    """A cone on a square base plate, upright along y; open_bottom drops the cone's cap."""
    import trimesh
    h, r = rng.uniform(0.8, 1.4), rng.uniform(0.22, 0.34)
    cone = _rotate(trimesh.creation.cone(r, h, sections=24), -np.pi / 2, [1, 0, 0])
    if open_bottom:                               # the cap faces lie in y = 0: drop them
        centre_y = cone.triangles_center[:, 1]
        cone.update_faces(centre_y > 1e-4)
        cone.remove_unreferenced_vertices()
    side = rng.uniform(2.2, 3.0) * r
    base = trimesh.creation.box((side, 0.06, side)).apply_translation([0, -0.03, 0])
    return trimesh.util.concatenate([cone, base])


def star(rng):
    """A five-pointed star prism standing upright (in the x-y plane, thickness along z)."""
    import trimesh
    outer, inner = 0.8, rng.uniform(0.3, 0.45)
    depth = rng.uniform(0.12, 0.3)
    ang = np.pi / 2 + np.arange(10) * np.pi / 5
    rad = np.where(np.arange(10) % 2 == 0, outer, inner)
    ring = np.stack([rad * np.cos(ang), rad * np.sin(ang)], 1)              # (10, 2)
    front = np.c_[ring, np.full(10, depth / 2)]
    back = np.c_[ring, np.full(10, -depth / 2)]
    verts = np.vstack([front, back, [[0, 0, depth / 2], [0, 0, -depth / 2]]])
    faces = []
    for i in range(10):
        j = (i + 1) % 10
        faces += [[20, i, j], [21, 10 + j, 10 + i], [i, 10 + i, 10 + j], [i, 10 + j, j]]
    return trimesh.Trimesh(verts, faces, process=True).apply_translation([0, outer, 0])


def _stripes(mesh, rgb, rng):
    """A texture of white bands across the height (UV v = height)."""
    import trimesh
    from PIL import Image
    img = np.tile(np.asarray(rgb, np.uint8), (32, 4, 1))
    for lo in rng.choice(np.arange(4, 28, 6), size=2, replace=False):
        img[lo:lo + 3] = 240
    y = mesh.vertices[:, 1]
    uv = np.stack([np.arctan2(mesh.vertices[:, 2], mesh.vertices[:, 0]) / (2 * np.pi) + 0.5,
                   (y - y.min()) / max(np.ptp(y), 1e-9)], 1)
    material = trimesh.visual.material.PBRMaterial(baseColorTexture=Image.fromarray(img),
                                                   baseColorFactor=[255, 255, 255, 255])
    mesh.visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    return mesh


def make(out: Path, per_category: int = 20, seed: int = 0) -> list[tuple]:
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(per_category):
        color = rng.choice(["black", "grey", "red", "blue"])
        mesh, kind = dumbbell(rng)
        mesh.visual.vertex_colors = (*PALETTE[color], 255)
        name = f"dumbbell_{i:02d}.{'glb' if i % 2 else 'obj'}"
        mesh.export(out / name)
        plates = {"ball": "round weights", "disc": "disc weights", "hex": "hexagonal weights"}[kind]
        rows += [(name, f"a {color} dumbbell", "dumbbell"),
                 (name, f"a dumbbell with {plates}", "dumbbell")]
    for i in range(per_category):
        color = rng.choice(["orange", "red", "yellow"])
        mesh = traffic_cone(rng, open_bottom=i % 4 == 1)
        if i % 3 == 0:
            mesh = _stripes(mesh, PALETTE[color], rng)
        else:
            mesh.visual.face_colors = (*PALETTE[color], 255)
        name = f"traffic_cone_{i:02d}.{'obj' if i % 2 else 'glb'}"
        mesh.export(out / name)
        rows += [(name, f"an {color} traffic cone" if color == "orange" else
                  f"a {color} traffic cone", "traffic cone"),
                 (name, "a traffic cone on a square base", "traffic cone")]
    for i in range(per_category):
        color = rng.choice(["yellow", "green", "white", "purple"])
        mesh = star(rng)
        mesh.visual.face_colors = (*PALETTE[color], 255)
        name = f"star_{i:02d}.{'glb' if i % 2 else 'obj'}"
        mesh.export(out / name)
        rows += [(name, f"a {color} star", "star"), (name, "a five-pointed star", "star")]
    (out / "broken.glb").write_bytes(b"glTF\x02\x00\x00\x00 not really")
    with open(out / "captions.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("file", "caption", "category"), *rows])
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--per-category", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    rows = make(a.out, a.per_category, a.seed)
    print(f"{len(rows) // 2} meshes of 3 categories (+ broken.glb) in {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
