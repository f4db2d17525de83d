"""Model folders: find them, check them (SHA256SUMS), load and save them (safetensors only).

A model folder holds config.json, one or more *.safetensors shards, SHA256SUMS and
optionally MODEL_CARD.md. Resolution order for a name: an existing folder path; the
bundled weights/<name>; a Hugging Face repo id (cache only unless online use is allowed).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import MODEL_NOT_FOUND, WEIGHTS_INVALID, KilnError

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLED = REPO_ROOT / "weights"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_sha256sums(folder: Path) -> None:
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir()
                   if p.suffix in (".safetensors", ".json") and p.is_file())
    lines = [f"{sha256_file(p)}  {p.name}" for p in files]
    (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def read_sha256sums(folder: Path) -> dict[str, str]:
    sums = Path(folder) / "SHA256SUMS"
    if not sums.is_file():
        raise KilnError(WEIGHTS_INVALID, f"The model folder {folder} has no SHA256SUMS file, so "
                        "its weights cannot be checked: re-download the model or re-save it "
                        "with `python -m engine train ... --out`.")
    entries = {}
    for line in sums.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            entries[name.strip().lstrip("*")] = digest
    return entries


def verify(folder: Path) -> dict[str, str]:
    """Check every listed file against SHA256SUMS; returns {file: 'ok'} or raises."""
    folder = Path(folder)
    entries = read_sha256sums(folder)
    if not any(name.endswith(".safetensors") for name in entries):
        raise KilnError(WEIGHTS_INVALID, f"SHA256SUMS in {folder} lists no .safetensors file.")
    for name, digest in entries.items():
        path = folder / name
        if not path.is_file():
            raise KilnError(WEIGHTS_INVALID, f"{path} is listed in SHA256SUMS but missing: the "
                            "download is incomplete; fetch the model again.")
        if sha256_file(path) != digest:
            raise KilnError(WEIGHTS_INVALID, f"Checksum mismatch for {path}: the file is corrupt "
                            "or was changed. Delete it and fetch the model again.")
    return {name: "ok" for name in entries}


def _hub_snapshot(repo_id: str, allow_online: bool) -> Path | None:
    try:
        from huggingface_hub import snapshot_download
        return Path(snapshot_download(repo_id, local_files_only=not allow_online,
                                      allow_patterns=["*.json", "*.safetensors", "SHA256SUMS",
                                                      "*.md"]))
    except Exception:
        return None


def resolve(name_or_path: str, allow_online: bool = False) -> Path:
    """Find a model folder; raises KilnError(MODEL_NOT_FOUND) with where it looked."""
    candidates = [Path(name_or_path).expanduser(), BUNDLED / name_or_path]
    for folder in candidates:
        if (folder / "config.json").is_file():
            return folder
    if "/" in name_or_path and not Path(name_or_path).is_absolute():
        folder = _hub_snapshot(name_or_path, allow_online)
        if folder is not None and (folder / "config.json").is_file():
            return folder
    hint = "" if allow_online else " (downloads are off: allow online access to fetch hub models)"
    raise KilnError(MODEL_NOT_FOUND, f"No model '{name_or_path}': looked for a folder with "
                    f"config.json at that path, in {BUNDLED}, and in the Hugging Face cache"
                    f"{hint}. Pick 'kiln-mini' or the folder of a trained model.")


def load_state_dict(folder: Path) -> dict:
    """Verified tensors from every safetensors shard of a model folder (never pickle)."""
    from safetensors.torch import load_file
    folder = Path(folder)
    pickles = [p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES]
    shards = sorted(folder.glob("*.safetensors"))
    if not shards:
        extra = f" (found {', '.join(pickles)}: pickle files are never loaded)" if pickles else ""
        raise KilnError(WEIGHTS_INVALID, f"No .safetensors weights in {folder}{extra}. Convert "
                        "the checkpoint to safetensors.")
    verify(folder)
    state = {}
    for shard in shards:
        try:
            state.update(load_file(str(shard)))
        except Exception as exc:
            raise KilnError(WEIGHTS_INVALID, f"{shard} is not a readable safetensors file "
                            f"({exc}); fetch the model again.") from exc
    return state


def save_state_dict(folder: Path, state: dict, config_dict: dict, dtype=None,
                    max_shard_bytes: int = 15 * 2**20) -> list[Path]:
    """Write config.json, safetensors shards (each under max_shard_bytes) and SHA256SUMS."""
    import json
    from safetensors.torch import save_file
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.safetensors"):
        old.unlink()
    (folder / "config.json").write_text(json.dumps(config_dict, indent=2) + "\n")
    shards, current, size = [], {}, 0
    for key, tensor in state.items():
        t = tensor.detach().to("cpu").contiguous()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        nbytes = t.numel() * t.element_size()
        if current and size + nbytes > max_shard_bytes:
            shards.append(current)
            current, size = {}, 0
        current[key], size = t, size + nbytes
    shards.append(current)
    paths = []
    for i, shard in enumerate(shards):
        name = "model.safetensors" if len(shards) == 1 else \
            f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(folder / name))
        paths.append(folder / name)
    write_sha256sums(folder)
    return paths
