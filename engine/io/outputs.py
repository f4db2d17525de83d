"""Result files on disk: Kiln replaces only files it wrote itself. Standard library only.

A result is a pair, NAME.glb (or NAME.ply, Gaussian splats) and its sidecar NAME.json.
Kiln's sidecar carries {"generator": "kiln"}; a pair whose sidecar has it may be written
over (re-running a seed updates its own files). Anything else at either path -- a
user's notes.json, a model folder's config.json, a lone .glb -- is refused with a
sentence naming the file.

Beside the pair goes a small picture, NAME.png, marked as Kiln's by a PNG text chunk.
A NAME.png without that mark (the user's reference picture chair.png beside chair.glb)
is left alone: the result is written without a thumbnail, and its sidecar says which
picture, if any, is its thumbnail ("thumbnail": "NAME.png").

A restyle's result is a texture, NAME.png marked the same way, with its sidecar NAME.json:
a NAME.png without the mark is never written over.

Each file is written to NAME.part beside it and renamed into place, so no reader sees
half a file, and a failed write leaves no .part behind.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from ..errors import BAD_REQUEST, KilnError

GENERATOR = "kiln"               # the sidecar's "generator" value: Kiln wrote this pair
# what every sidecar of Kiln 0.x held before the marker existed (results made before it
# can still be regenerated in place)
LEGACY_KEYS = frozenset({"engine_version", "model", "timings", "counts"})
MAX_SIDECAR_BYTES = 1 << 20      # Kiln's sidecars are a few kB; a bigger JSON is not ours
FIX = "choose another output name or folder, or move that file away"
PART = ".part"                   # suffix of a file while it is being written
NAME_MAX = 255                   # bytes in one file name (ext4, APFS, NTFS, ...)
THUMB_KEY, THUMB_VALUE = "generator", GENERATOR    # the PNG text chunk of Kiln's thumbnails
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def sidecar_path(out_glb: Path) -> Path:
    return Path(out_glb).with_suffix(".json")


def thumbnail_path(out_glb: Path) -> Path:
    return Path(out_glb).with_suffix(".png")


def check_writable(out_glb: Path, suffix: str = ".glb") -> Path:
    """The sidecar path for `out_glb`; KilnError(BAD_REQUEST) naming the path and the fix
    if Kiln could not write the pair there: a name no file can have (NUL, too long), a
    folder that cannot be made or written in, or files that are not Kiln's. Cheap (a few
    stats), so callers run it before any generation work. `suffix`: the result's, ".glb"
    or ".ply" for Gaussian splats (protocol.FORMAT_SUFFIXES)."""
    out_glb = Path(out_glb)
    sidecar = _check_pair(out_glb, suffix, "chair", "result")
    if _occupied(out_glb) and not _occupied(sidecar):
        raise KilnError(BAD_REQUEST, f"Kiln will not overwrite {out_glb}: it has no Kiln "
                        f"sidecar {sidecar.name} beside it, so it may not be Kiln's; {FIX}.")
    return sidecar


def _check_pair(out: Path, suffix: str, example: str, what: str) -> Path:
    """The sidecar path for `out` (a result .glb or a texture .png, called `what` in the
    sentences) after the checks both share: it ends in `suffix` (a refusal names
    `example` + suffix as a good name), a name a file can have, a folder Kiln may write
    in, no folder or special file at either path, and no sidecar there not Kiln's."""
    if out.suffix.lower() != suffix:
        raise KilnError(BAD_REQUEST, f"The output {out} does not end in {suffix}: name it "
                        f"like '{example}{suffix}' (its sidecar becomes '{example}.json').")
    _check_name(out)
    _check_folder(out.parent)
    sidecar = sidecar_path(out)
    for path in (out, sidecar):
        if _occupied(path) and not path.is_file():
            raise KilnError(BAD_REQUEST, f"Kiln will not write over {path}: it is a folder "
                            f"or a special file, not a result Kiln wrote; {FIX}.")
    if _occupied(sidecar) and not is_kiln_sidecar(sidecar):
        raise KilnError(BAD_REQUEST, f"Kiln will not overwrite {sidecar}: the {what} "
                        f"{out.name} would put its sidecar there, and that file was not "
                        f"written by Kiln; {FIX}.")
    return sidecar


def _check_name(out: Path) -> None:
    """Every part of the path must be a name a file can have, the longest one written
    (NAME.json.part) included."""
    text = str(out)
    if "\x00" in text:
        raise KilnError(BAD_REQUEST, f"The output path {text[:80]!r} contains a NUL "
                        "character, which no file name can hold: choose another name.")
    names = [*out.parent.parts, sidecar_path(out).name + PART]
    try:
        sizes = [len(os.fsencode(name)) for name in names]
    except UnicodeError:
        raise KilnError(BAD_REQUEST, f"The output path {text[:80]!r} has characters no "
                        "file name can hold: choose another name.") from None
    if max(sizes) > NAME_MAX:
        name = names[sizes.index(max(sizes))]
        raise KilnError(BAD_REQUEST, f"The output name {name[:40]!r}... is too long "
                        f"({max(sizes)} bytes, counting the file Kiln writes beside the "
                        f"result; a file name holds at most {NAME_MAX}): choose a shorter "
                        "name.")


def _check_folder(folder: Path) -> None:
    """The nearest existing folder above the result must be a folder Kiln may write in
    (the missing ones below it are made when the result is written)."""
    existing = folder
    while not _occupied(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise KilnError(BAD_REQUEST, f"Kiln cannot make the output folder {folder}: "
                        f"{existing} is a file, not a folder; choose another output folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise KilnError(BAD_REQUEST, f"Kiln may not write in the folder {existing} (it is "
                        "read-only for this user): choose another output folder, or allow "
                        "writing there.")


def _occupied(path: Path) -> bool:
    """Whether anything (even a broken link) is at `path`."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        raise KilnError(BAD_REQUEST, f"Kiln cannot look at {path} ("
                        f"{exc.strerror or type(exc).__name__}): choose another output "
                        "folder, or check the permissions of this one.") from None
    return True


def is_kiln_sidecar(path: Path) -> bool:
    """True when `path` is a small JSON object whose "generator" is Kiln's (or an older
    Kiln sidecar: it has every LEGACY_KEYS key)."""
    try:
        if Path(path).stat().st_size > MAX_SIDECAR_BYTES:
            return False
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and (data.get("generator") == GENERATOR
                                       or LEGACY_KEYS <= data.keys())


def png_text(path: Path, limit: int = 1 << 16) -> dict:
    """The tEXt chunks before the image data of the PNG at `path` ({} if it is none)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(limit)
    except OSError:
        return {}
    if not head.startswith(PNG_SIGNATURE):
        return {}
    found, at = {}, len(PNG_SIGNATURE)
    while at + 8 <= len(head):
        size, kind = int.from_bytes(head[at:at + 4], "big"), head[at + 4:at + 8]
        if kind == b"IDAT" or at + 12 + size > len(head):
            break
        if kind == b"tEXt":
            key, _, value = head[at + 8:at + 8 + size].partition(b"\0")
            found[key.decode("latin-1")] = value.decode("latin-1")
        at += 12 + size
    return found


def may_write_thumbnail(out_glb: Path) -> bool:
    """Whether NAME.png is free or a thumbnail Kiln wrote (a plain file with Kiln's mark)."""
    path = thumbnail_path(out_glb)
    if not _occupied(path):
        return True
    return path.is_file() and not path.is_symlink() \
        and png_text(path).get(THUMB_KEY) == THUMB_VALUE


def sidecar_bytes(meta: dict) -> bytes:
    """The sidecar text for `meta`, marked as Kiln's."""
    return (json.dumps(dict(meta, generator=GENERATOR), indent=2) + "\n").encode("utf-8")


def write_atomic(path: Path, data: bytes) -> Path:
    """Write `data` to path.part, then rename it over `path`; no .part stays on failure."""
    path = Path(path)
    tmp = path.with_name(path.name + PART)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    return path


def write_result(out_glb: Path, glb_data: bytes, meta: dict,
                 thumb_png: bytes | None = None, suffix: str = ".glb") -> tuple[Path, Path]:
    """Write NAME.json (marked as Kiln's), NAME.png (when `thumb_png` is given and the
    path is free or Kiln's), then NAME.glb (or NAME.ply, `suffix`), after check_writable.

    The sidecar goes first: if a later write fails, the pair still reads as Kiln's and
    the next export to the same name may replace it.
    """
    out_glb = Path(out_glb)
    sidecar = check_writable(out_glb, suffix)
    thumb = thumbnail_path(out_glb) if thumb_png and may_write_thumbnail(out_glb) else None
    meta = dict(meta)
    meta.pop("thumbnail", None)
    if thumb is not None:
        meta["thumbnail"] = thumb.name
    out_glb.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(sidecar, sidecar_bytes(meta))
    if thumb is not None:
        write_atomic(thumb, thumb_png)
    write_atomic(out_glb, glb_data)
    return out_glb, sidecar


def check_out_folder(out: str, sheet_name: str, what: str, example: str) -> Path:
    """The folder a many-result command writes into (--out), resolved, once it is not a
    .glb path and its overview picture `sheet_name` is not someone else's; KilnError
    naming the fix. `what`: "morph writes one GLB per in-between"."""
    if out.lower().endswith(".glb"):
        raise KilnError(BAD_REQUEST, f"{what} into a folder, and --out {out} names a file: "
                        f"give a folder, e.g. --out {example}.")
    folder = Path(out).expanduser().resolve()
    sheet = folder / sheet_name
    if sheet.exists() and not is_kiln_png(sheet):
        raise KilnError(BAD_REQUEST, f"Kiln will not overwrite {sheet}: that picture was "
                        f"not written by Kiln; {FIX}.")
    return folder


def is_kiln_png(path: Path) -> bool:
    """A plain file (not a link) carrying the PNG text chunk of Kiln's pictures."""
    path = Path(path)
    return path.is_file() and not path.is_symlink() \
        and png_text(path).get(THUMB_KEY) == THUMB_VALUE


def check_writable_texture(out_png: Path) -> Path:
    """The sidecar path for a restyle texture `out_png`; KilnError(BAD_REQUEST) naming the
    path and the fix when Kiln could not write NAME.png + NAME.json there (as
    `check_writable`; a NAME.png must be free or Kiln's own)."""
    out_png = Path(out_png)
    sidecar = _check_pair(out_png, ".png", "chair-blue", "texture")
    if _occupied(out_png) and not is_kiln_png(out_png):
        raise KilnError(BAD_REQUEST, f"Kiln will not overwrite {out_png}: that picture was "
                        f"not written by Kiln; {FIX}.")
    return sidecar


def write_texture(out_png: Path, png_data: bytes, meta: dict) -> tuple[Path, Path]:
    """Write NAME.json (marked as Kiln's), then NAME.png, after check_writable_texture."""
    out_png = Path(out_png)
    sidecar = check_writable_texture(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(sidecar, sidecar_bytes(meta))
    write_atomic(out_png, png_data)
    return out_png, sidecar
