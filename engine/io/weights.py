"""Model folders: find them, check them (SHA256SUMS), load and save them (safetensors only).

A model folder holds config.json, one or more *.safetensors shards, SHA256SUMS and
optionally MODEL_CARD.md. Resolution order for a name: an existing folder path; the
bundled weights/<name>; a Hugging Face repo id (cache only unless online use is allowed).
SHA256SUMS must list config.json and only files inside the folder; `load_model_folder`
checks every file before it parses any, and every failure is KilnError(WEIGHTS_INVALID)
naming the file and the fix.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path, PurePosixPath, PureWindowsPath

from ..config import ModelConfig
from ..errors import MODEL_NOT_FOUND, WEIGHTS_INVALID, KilnError

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLED = REPO_ROOT / "weights"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
HEX_DIGITS = frozenset("0123456789abcdef")
REFETCH = "Re-download the model, or copy its whole folder again."


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
    """{file name: sha256} from the folder's SHA256SUMS; refuses damaged or unsafe lines."""
    sums = Path(folder) / "SHA256SUMS"
    if not sums.is_file():
        raise KilnError(WEIGHTS_INVALID, f"The model folder {folder} has no SHA256SUMS file, so "
                        "its weights cannot be checked: re-download the model or re-save it "
                        "with `python -m engine train ... --out`.")
    try:
        lines = sums.read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError) as exc:
        raise KilnError(WEIGHTS_INVALID, f"{sums} cannot be read ({_reason(exc)}). "
                        f"{REFETCH}") from exc
    entries = {}
    for number, line in enumerate(lines, 1):
        if line.strip():
            digest, name = _sums_entry(sums, number, line)
            entries[name] = digest
    return entries


def _sums_entry(sums: Path, number: int, line: str) -> tuple[str, str]:
    """(digest, file name) of one SHA256SUMS line: '<64 hex digits>  <name in the folder>'."""
    parts = line.split(maxsplit=1)
    digest = parts[0].lower()
    name = parts[1].strip().lstrip("*") if len(parts) == 2 else ""
    if len(digest) != 64 or set(digest) - HEX_DIGITS or not name:
        raise KilnError(WEIGHTS_INVALID, f"Line {number} of {sums} is not '<sha256>  <file>' "
                        f"({line.strip()[:80]!r}): the checksum list is damaged. {REFETCH}")
    if not _inside_folder(name):
        raise KilnError(WEIGHTS_INVALID, f"Line {number} of {sums} names {name!r}, which is "
                        "outside the model folder: Kiln checks only files inside it, so the "
                        f"checksum list is damaged or was tampered with. {REFETCH}")
    return digest, name


def _inside_folder(name: str) -> bool:
    """True for a relative path with no '..' (by both POSIX and Windows rules)."""
    for pure in (PurePosixPath(name), PureWindowsPath(name)):
        if pure.anchor or ".." in pure.parts:
            return False
    return True


def _reason(exc: Exception) -> str:
    return (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)[:200]


def verify(folder: Path) -> dict[str, str]:
    """Check every listed file against SHA256SUMS; returns {file: 'ok'} or raises."""
    folder = Path(folder)
    entries = read_sha256sums(folder)
    if not any(name.endswith(".safetensors") for name in entries):
        raise KilnError(WEIGHTS_INVALID, f"SHA256SUMS in {folder} lists no .safetensors file.")
    if "config.json" not in entries:
        raise KilnError(WEIGHTS_INVALID, f"SHA256SUMS in {folder} does not list config.json, "
                        f"so the model's settings cannot be checked. {REFETCH}")
    for name, digest in entries.items():
        path = folder / name
        if not path.is_file():
            raise KilnError(WEIGHTS_INVALID, f"{path} is listed in SHA256SUMS but missing: the "
                            "download is incomplete; fetch the model again.")
        if sha256_file(path) != digest:
            raise KilnError(WEIGHTS_INVALID, f"Checksum mismatch for {path}: the file is corrupt "
                            "or was changed. Delete it and fetch the model again.")
    return {name: "ok" for name in entries}


def load_config(path: Path) -> ModelConfig:
    """Parse a config.json (verify its folder first); KilnError(WEIGHTS_INVALID) naming it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError too
        raise KilnError(WEIGHTS_INVALID, f"{path} is not readable JSON ({_reason(exc)}). "
                        f"{REFETCH}") from exc
    if not isinstance(data, dict):
        raise KilnError(WEIGHTS_INVALID, f"{path} holds a JSON {type(data).__name__}, not an "
                        f"object of model settings. {REFETCH}")
    known = [f.name for f in dataclasses.fields(ModelConfig)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise KilnError(WEIGHTS_INVALID, f"{path} has the unknown setting {unknown[0]!r} (this "
                        f"Kiln knows {', '.join(known)}): the file is damaged or from a newer "
                        f"Kiln. {REFETCH}")
    try:
        return ModelConfig.from_dict(data)
    except (TypeError, ValueError, AttributeError) as exc:
        raise KilnError(WEIGHTS_INVALID, f"{path} has settings this Kiln cannot use "
                        f"({_reason(exc)}). {REFETCH}") from exc


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


def load_model_folder(folder: Path) -> tuple[ModelConfig, dict]:
    """(config, tensors) of a model folder, every file checked before anything is parsed."""
    folder = Path(folder)
    shards = _shards(folder)
    verify(folder)
    return load_config(folder / "config.json"), _read_shards(shards)


def load_state_dict(folder: Path) -> dict:
    """Verified tensors from every safetensors shard of a model folder (never pickle)."""
    folder = Path(folder)
    shards = _shards(folder)
    verify(folder)
    return _read_shards(shards)


def _shards(folder: Path) -> list[Path]:
    pickles = [p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES]
    shards = sorted(folder.glob("*.safetensors"))
    if not shards:
        extra = f" (found {', '.join(pickles)}: pickle files are never loaded)" if pickles else ""
        raise KilnError(WEIGHTS_INVALID, f"No .safetensors weights in {folder}{extra}. Convert "
                        "the checkpoint to safetensors.")
    return shards


def _read_shards(shards: list[Path]) -> dict:
    from safetensors.torch import load_file
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
