"""The library section of the evaluation: does a model trained on a user's meshes make the
category asked for?

For every category of the library's own assets (an asset store, engine.data.dataset;
replayed generations of an init model are left out), `per_category` prompts "a CATEGORY"
(seeds 0, 1, ...) are generated; a hit is a generated shape whose nearest library asset
by Chamfer distance (PointFlow CD, the asset's surface bank as its reference cloud) is of
that category. This is the text section's category accuracy with the user's library as
the references.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def library_references(store) -> tuple[list[np.ndarray], list[str], list[str]]:
    """(reference clouds (S, 3), their categories, their source names) of a store's own
    assets with a category."""
    names, rows = store.info["categories"], store.tensors["category"].tolist()
    clouds, cats, sources = [], [], []
    for i, (c, rec) in enumerate(zip(rows, store.info["assets"])):
        if c >= 0 and not rec.get("replay"):
            clouds.append(store.tensors["surface"][i].float().numpy())
            cats.append(names[c])
            sources.append(rec.get("source") or f"seed {rec.get('seed')}")
    return clouds, cats, sources


def category_prompt(category: str) -> str:
    return f"{'an' if category[:1].lower() in 'aeiou' else 'a'} {category}"


def library_section(pipe, store_dir: Path, per_category: int = 3, points: int = 1024,
                    resolution: int = 64, steps: int | None = None,
                    extractor: str | None = None, report=None) -> dict:
    """{"accuracy": %, "per_category": {cat: %}, "n", "generations": [...]} (see above)."""
    from ..train.store import Store, check_assets
    from . import metrics as M
    report = report or (lambda stage, i, total: None)
    store = check_assets(Store.load(store_dir), store_dir)
    refs, ref_cats, sources = library_references(store)
    if not refs:
        raise ValueError(f"{store_dir} has no assets with a category: give the library a "
                         "captions.csv with a category column.")
    refs = [r[np.random.default_rng(0).permutation(len(r))[:points]] for r in refs]
    jobs = [(cat, k) for cat in sorted(set(ref_cats)) for k in range(per_category)]
    clouds, rows = [], []
    for i, (cat, seed) in enumerate(jobs):
        report("library", i, len(jobs))
        prompt = category_prompt(cat)
        mesh = pipe.text_to_3d(prompt, seed=seed, steps=steps, extractor=extractor,
                               resolution=resolution, texture_mode="vertex").mesh
        try:
            clouds.append(M.sample_surface(mesh, points, seed).points_nx3)
        except ValueError:                      # an empty mesh: a point at the origin
            clouds.append(np.zeros((points, 3), np.float32))
        rows.append({"prompt": prompt, "seed": seed, "category": cat})
    hits = M.category_hits(clouds, [r["category"] for r in rows], refs, ref_cats)
    nearest, _ = M.nearest_reference(clouds, refs)
    for row, hit, j in zip(rows, hits, nearest):
        row.update(hit=bool(hit), nearest=sources[j], nearest_category=ref_cats[j])
    per_cat = {c: 100.0 * float(np.mean([h for h, r in zip(hits, rows) if r["category"] == c]))
               for c in sorted(set(ref_cats))}
    return {"accuracy": 100.0 * float(np.mean(hits)), "per_category": per_cat,
            "n": len(rows), "references": len(refs), "generations": rows}
