"""Recent results in the output folder (GLB + JSON sidecar + optional PNG thumbnail).

`entries()` is cheap enough for a panel's draw(): it rescans only when the folder's
modification time changes (or after `forget()`). It never raises: a sidecar is any
JSON a user may have edited, so every field is checked before it is shown or used.
The thumbnail is the picture the sidecar names ("thumbnail"), which the engine writes
beside each result, never just any NAME.png.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import bpy.utils.previews

from . import paths

LIMIT = 8


@dataclass
class Entry:
    glb: str
    meta: dict
    thumb: str          # "" when the engine wrote no thumbnail
    mtime: float

    @property
    def title(self) -> str:
        prompt, image = text_field(self.meta, "prompt"), text_field(self.meta, "image")
        what = prompt or os.path.basename(image) or os.path.basename(self.glb)
        seed = self.meta.get("seed")
        return f"{what} · seed {seed if is_whole(seed) else '?'}"


def text_field(meta: dict, key: str) -> str:
    """meta[key] when it is a string, else "" (a sidecar may hold anything)."""
    value = meta.get(key)
    return value.strip() if isinstance(value, str) else ""


def is_whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_CACHE = {"key": None, "entries": []}
_PREVIEWS = {"collection": None}


def forget() -> None:
    _CACHE["key"] = None


def listing(limit: int = LIMIT) -> tuple[list[Entry], str]:
    """(the newest results, "") or ([], the sentence saying why the output folder in the
    preferences cannot be used)."""
    try:
        out_dir = paths.output_dir()
    except paths.UserError as exc:
        return [], str(exc)
    return entries(out_dir, limit), ""


def entries(out_dir: str | None = None, limit: int = LIMIT) -> list[Entry]:
    if out_dir is None:
        return listing(limit)[0]
    try:
        key = (out_dir, os.stat(out_dir).st_mtime_ns, limit)
    except OSError:
        return []
    if _CACHE["key"] != key:
        _CACHE["entries"], _CACHE["key"] = scan(out_dir, limit), key
    return _CACHE["entries"]


def scan(out_dir: str, limit: int = LIMIT) -> list[Entry]:
    """The newest `limit` results that have both a GLB and its JSON sidecar."""
    try:
        names = os.listdir(out_dir)
    except OSError:
        return []
    found = []
    for name in names:
        glb = os.path.join(out_dir, name)
        stem = glb[:-4]
        try:
            if name.endswith(".glb") and os.path.isfile(stem + ".json"):
                found.append((os.path.getmtime(glb), glb, stem))
        except OSError:                     # removed while we looked
            continue
    found.sort(reverse=True)
    result = []
    for mtime, glb, stem in found[:limit]:
        meta = read_meta(stem + ".json")
        result.append(Entry(glb=glb, meta=meta, thumb=thumbnail(out_dir, meta), mtime=mtime))
    return result


def thumbnail(out_dir: str, meta: dict) -> str:
    """The thumbnail the sidecar names, when it is a PNG beside it; else ""."""
    name = text_field(meta, "thumbnail")
    if not name or os.path.basename(name) != name or not name.lower().endswith(".png"):
        return ""
    path = os.path.join(out_dir, name)
    return path if os.path.isfile(path) else ""


MAX_SIDECAR_BYTES = 1 << 20      # Kiln's sidecars are a few kB (engine/io/outputs.py)


def read_meta(json_path: str) -> dict:
    """The sidecar as a dict; {} when it is missing, too big, not JSON or not an object."""
    try:
        if os.path.getsize(json_path) > MAX_SIDECAR_BYTES:
            return {}
        with open(json_path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def icon_id(entry: Entry) -> int:
    """A preview icon for the thumbnail, or 0 (re-exporting a seed rewrites its
    thumbnail, so the file's time is part of the key)."""
    previews = _PREVIEWS["collection"]
    if not entry.thumb or previews is None:
        return 0
    try:
        key = f"{entry.thumb}:{os.stat(entry.thumb).st_mtime_ns}"
        if key not in previews:
            previews.load(key, entry.thumb, 'IMAGE')
        return previews[key].icon_id
    except (OSError, RuntimeError, KeyError):
        return 0


PARAM_TYPES = {"mode": str, "prompt": str, "image": str, "seed": int, "steps": int,
               "guidance": (int, float), "resolution": int, "faces": int, "texture": int,
               "texture_mode": str}


def sidecar_params(meta: dict) -> dict:
    """The generate settings in a sidecar, keeping only values of the right type."""
    return {key: meta[key] for key, kind in PARAM_TYPES.items()
            if isinstance(meta.get(key), kind) and not isinstance(meta.get(key), bool)}


def register():
    _PREVIEWS["collection"] = bpy.utils.previews.new()


def unregister():
    if _PREVIEWS["collection"] is not None:
        bpy.utils.previews.remove(_PREVIEWS["collection"])
    _PREVIEWS["collection"] = None
    forget()
