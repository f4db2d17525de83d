"""Training data held as tensors with the example index first, saved as safetensors
shards plus a JSON of the strings (captions) — never pickled. Asset stores (what
engine.data.dataset writes) and latent stores (engine.train.cache) share this format."""

from __future__ import annotations

import json
from pathlib import Path

import torch

FORMAT, VERSION = "kiln-assets", 2      # what an asset store's store.json says it is


class Store:
    def __init__(self, tensors: dict[str, torch.Tensor], info: dict | None = None):
        self.tensors = tensors
        self.info = info or {}
        sizes = {len(v) for v in tensors.values()}
        assert len(sizes) == 1, f"tensors disagree on the example count: {sizes}"
        self.size = sizes.pop()

    def __len__(self):
        return self.size

    def batch(self, idx: torch.Tensor, device, keys=None) -> dict:
        keys = keys or self.tensors.keys()
        return {k: self.tensors[k][idx].to(device) for k in keys}

    def save(self, folder: Path, max_shard_bytes: int = 1 << 30) -> None:
        from safetensors.torch import save_file
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("store-*.safetensors"):
            old.unlink()
        shard, size, n = {}, 0, 0
        for key, t in self.tensors.items():
            shard[key] = t.contiguous()
            size += t.numel() * t.element_size()
            if size > max_shard_bytes:
                save_file(shard, str(folder / f"store-{n:03d}.safetensors"))
                shard, size, n = {}, 0, n + 1
        if shard:
            save_file(shard, str(folder / f"store-{n:03d}.safetensors"))
        (folder / "store.json").write_text(json.dumps(self.info))

    @classmethod
    def load(cls, folder: Path) -> "Store":
        from safetensors.torch import load_file
        folder = Path(folder)
        tensors = {}
        for shard in sorted(folder.glob("store-*.safetensors")):
            tensors.update(load_file(str(shard)))
        if not tensors:
            raise FileNotFoundError(f"No training store in {folder}: build one with "
                                    "`python -m engine train data --out DIR` (procedural) or "
                                    "`python -m engine dataset --meshes DIR --out DIR`.")
        return cls(tensors, json.loads((folder / "store.json").read_text()))


def check_assets(store: Store, folder) -> Store:
    """The store, if it is an asset store of this Kiln's format; else a ValueError naming
    the fix (stores of older Kilns kept only seeds and lack the surface normals)."""
    info = store.info
    if info.get("format") != FORMAT or info.get("version") != VERSION:
        raise ValueError(f"{folder} is not an asset store of this Kiln (format {FORMAT} "
                         f"version {VERSION}): rebuild it with `python -m engine train data "
                         "--out DIR` or `python -m engine dataset --meshes DIR --out DIR`.")
    return store


def asset_seeds(store: Store) -> list:
    """Per row: the procedural seed, or None for a mesh asset."""
    return [r.get("seed") if r.get("kind") == "procedural" else None
            for r in store.info["assets"]]


def asset_captions(store: Store, k: int) -> list[list[str]]:
    """Per row: k captions (an asset's own list repeated in turn when it has fewer)."""
    return [[caps[j % len(caps)] for j in range(k)] for caps in store.info["captions"]]
