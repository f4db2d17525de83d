"""Replay: an init model's own generations, kept in a fine-tune's training data so that
what it knew survives what it learns (self-distillation).

Fine-tuning kiln-mini on a user's library alone would let its DiT forget the 24
procedural categories (its training latents are not shipped). So before the data stage,
the init model generates `count` meshes from captions of its own training world (the
captions of procedural training seeds 0..count-1, every category in turn), each with the
latent it was decoded from. They join the library as ordinary mesh assets (written in
Kiln's object space, captions and category in captions.csv), every stage trains on them,
and the fit stage starts each one's latent from the latent that made it, so its decoded
shape is the init decoder's and the DiT's old answer for that caption stays valid.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch

LATENTS_FILE = "latents.safetensors"     # {mesh file name: latent (3, c, h, w)}
DONE_FILE = "replay.json"


def replay_captions(seed: int, n: int = 4) -> tuple[list[str], str]:
    """The training captions and category of procedural asset `seed` (as the store has them)."""
    from ..data.captions import captions
    from ..data.shapes import make_asset
    asset = make_asset(seed)
    rng = np.random.default_rng([seed, 11])
    return [captions(asset, rng)[0] for _ in range(n)], asset.category


@torch.no_grad()
def generate_one(pipe, prompt: str, seed: int, resolution: int = 64, faces: int = 6000):
    """(latent (1, 3, c, h, w), engine.geometry.mesh.Mesh with vertex colours) or (z, None)
    when the field has no surface."""
    s = pipe.config.sampling
    settings = {"seed": seed, "steps": s.steps, "guidance": s.guidance, "sampler": s.sampler}
    with torch.inference_mode():
        z = pipe.sample_latent(pipe.encode_text([prompt]), settings, lambda *a: None)
        planes = pipe.model.vae.decoder(z)
        mesh = pipe.extract(planes, resolution, faces, "mc")
        if mesh.num_faces == 0:
            return z, None
        return z, pipe.paint(planes, mesh, 0, "vertex")


def write_replay(init_dir: Path, folder: Path, count: int, device: str = "auto",
                 progress=None) -> dict:
    """Generate `count` replay meshes into folder (PLY, captions.csv, latents); resumable:
    a finished folder (DONE_FILE) is kept as it is. -> the summary."""
    folder = Path(folder)
    done = folder / DONE_FILE
    if done.is_file():
        return json.loads(done.read_text())
    import trimesh
    from safetensors.torch import save_file
    from ..pipeline import Pipeline
    folder.mkdir(parents=True, exist_ok=True)
    pipe = Pipeline.from_pretrained(str(init_dir), device=device)
    rows, latents, empty = [], {}, 0
    for i in range(count):
        caps, category = replay_captions(i)
        z, mesh = generate_one(pipe, caps[0], seed=i)
        if mesh is not None:
            name = f"replay-{i:04d}.ply"
            trimesh.Trimesh(mesh.vertices_nx3, mesh.faces_fx3, process=False,
                            vertex_colors=mesh.vertex_colors_nx3).export(folder / name)
            latents[name] = z[0].float().cpu().contiguous()
            rows += [(name, c, category) for c in caps]
        else:
            empty += 1
        if progress:
            progress(i + 1, count)
    with open(folder / "captions.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("file", "caption", "category"), *rows])
    if latents:
        save_file(latents, str(folder / LATENTS_FILE))
    summary = {"generated": len(latents), "no_surface": empty, "model": str(init_dir)}
    done.write_text(json.dumps(summary, indent=1))
    return summary


def replay_latents(folder: Path) -> dict:
    """{mesh file name: latent (3, c, h, w)} of a replay folder ({} when it has none)."""
    from safetensors.torch import load_file
    path = Path(folder) / LATENTS_FILE
    return load_file(str(path)) if path.is_file() else {}
