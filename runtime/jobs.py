"""Turn the panel's settings into engine requests (`session.Job`): one press of
Generate (a seed each), a prompt list (a grid) and a morph (a row of in-betweens).

Every request is checked with engine/protocol's validators before it leaves, so bad
input is refused in Blender with the engine's own sentence.
"""

from __future__ import annotations

import itertools
import math
import os
import random
import re
import time
from types import SimpleNamespace

import bpy

from ..engine import protocol
from ..engine.errors import KilnError
from . import importer, paths
from .paths import UserError
from .session import Job, JobItem

SEED_MAX = 2**31 - 1           # the Scene's seed is a Blender int property (32-bit)
_counter = itertools.count(1)
# _save_rgba's name of a prepared picture: a time stamp, then the image's name (which
# may end in its file's extension, e.g. "front.png" -> "front_png")
_INPUT_STAMP = re.compile(r"^\d{8}-\d{6}-\d{3}_|_(png|jpe?g|tiff?|webp|bmp|exr)$", re.I)


def random_seed() -> int:
    return random.randint(0, SEED_MAX)


def slug(text: str, fallback: str = "kiln") -> str:
    """An object-name piece: the first three words that are not articles, through
    protocol.slug ("A red chair!" -> "red_chair")."""
    words = re.findall(r"[A-Za-z0-9]+", text.lower())
    words = [w for w in words if w not in {"a", "an", "the", "of"}] or words
    return protocol.slug(" ".join(words[:3]), fallback, limit=24, sep="_")


def base_params(props, out_dir: str, mode: str | None = None) -> dict:
    """The generate fields shared by every seed of one press (no seed, no out yet).
    `mode`: the panel's input (text, image, views) unless given ("unconditional")."""
    mode = mode or protocol_mode(props.mode)
    params = {"mode": mode, "steps": props.steps, "guidance": round(props.guidance, 4),
              "texture_mode": props.texture_mode.lower(), "faces": props.faces}
    if mode == "text":
        params["prompt"] = props.prompt.strip()
    elif mode == "image":
        params["image"] = prepare_image(props, out_dir)
        params["prompt"] = ""
    elif mode == "views":
        params["views"] = [picture_view(props, p, i, out_dir)
                           for i, p in enumerate(props.pictures)]
    else:
        params.pop("guidance")                     # no condition to guide towards
    if mode in protocol.REFINE_MODES and props.refine_steps:
        params["refine_steps"] = props.refine_steps
    if getattr(props, "output_format", 'GLB') == 'SPLAT':
        params["format"] = "splat"                  # a .ply of Gaussian splats
    for name, value in (("resolution", props.resolution), ("texture", int(props.texture)),
                        ("sampler", _chosen(props.sampler)),
                        ("extractor", _chosen(props.extractor))):
        if value:
            params[name] = value
    return params


def protocol_mode(panel_mode: str) -> str:
    """The panel's input (TEXT, IMAGE, VIEWS) as the protocol's mode."""
    return {"TEXT": "text", "IMAGE": "image", "VIEWS": "views"}[panel_mode]


def _chosen(choice: str):
    """An AUTO-or-name enum as the request's value (None: the model's default)."""
    return None if choice == 'AUTO' else choice.lower()


def picture_view(props, picture, index: int, out_dir: str) -> dict:
    """One entry of the Pictures list as a request's view: the picture as a file with
    its background made transparent (the panel's Background settings, as for one
    picture) and its direction."""
    if not picture.label():
        raise UserError(f"Picture {index + 1} has no file or image: pick one, or remove "
                        "it from the Pictures list.")
    source = SimpleNamespace(image_source=picture.source, image_path=picture.path,
                             image=picture.image, background=props.background,
                             key_color=props.key_color, key_tolerance=props.key_tolerance)
    view = {"image": prepare_image(source, out_dir)}
    if picture.direction == 'CUSTOM':
        view.update(azimuth=round(picture.azimuth, 3), elevation=round(picture.elevation, 3))
    else:
        view["direction"] = picture.direction.lower()
    return view


def request(params: dict, seed: int, out_dir: str) -> dict:
    """One full request: the shared fields + seed + out path, validated."""
    full = dict(params, seed=int(seed))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    suffix = protocol.FORMAT_SUFFIXES.get(full.get("format") or "glb", ".glb")
    full["out"] = os.path.join(out_dir, f"{stamp}-{next(_counter):03d}_{object_name(full)}"
                               f"{suffix}")
    try:
        protocol.validate_generate(dict(full, type="generate"))
    except KilnError as exc:
        raise UserError(exc.message) from None
    return full


def object_name(params: dict) -> str:
    picture = params.get("image") or (params.get("views") or [{}])[0].get("image") or ""
    stem = params.get("prompt") or _INPUT_STAMP.sub("", os.path.splitext(
        os.path.basename(picture))[0])
    if params.get("mode") == "unconditional":
        stem = "surprise"
    return f"{slug(stem)}_s{params['seed']}"


def make_job(context, seeds, title: str, spacing: float | None = None,
             mode: str | None = None) -> Job:
    """One request per seed; several seeds are laid out in a row along +X."""
    props = context.scene.kiln
    out_dir = paths.output_dir(paths.get_prefs(context))
    shared = base_params(props, out_dir, mode)
    cursor = context.scene.cursor.location
    step = spacing if spacing is not None else props.target_size * 1.25
    items = []
    for i, seed in enumerate(seeds):
        params = request(shared, seed, out_dir)
        location = (cursor.x + i * step, cursor.y, cursor.z)
        items.append(JobItem(params=params, name=object_name(params), location=location))
    return Job(items=items, options=import_options(context), title=title)


def import_options(context) -> dict:
    props = context.scene.kiln
    return {"target_size": props.target_size, "smooth": props.smooth,
            "model": paths.model_spec(paths.get_prefs(context))}


# ---------------------------------------------------------------- prompt lists
def list_text(props) -> str:
    """The prompt list's text from the chosen text block or file; UserError naming the fix."""
    if props.list_source == 'TEXT':
        if props.list_text is None:
            raise UserError("Pick a text block as the prompt list (one prompt a line), or "
                            "choose File.")
        return props.list_text.as_string()
    path = bpy.path.abspath(props.list_path.strip()) if props.list_path.strip() else ""
    if not path:
        raise UserError("Pick a prompt list file (one prompt a line), or choose Text Block.")
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "surrogateescape")
    except OSError as exc:
        raise UserError(f"Kiln cannot read the prompt list {path} "
                        f"({exc.strerror or type(exc).__name__}): pick another file.") from None


def grid_location(cursor, index: int, count: int, step: float) -> tuple:
    """Row by row from the 3D cursor: +X along a row, rows towards -Y."""
    columns = max(1, math.ceil(math.sqrt(count)))
    row, column = divmod(index, columns)
    return (cursor.x + column * step, cursor.y - row * step, cursor.z)


def list_job(context, items: list[dict]) -> Job:
    """One text request per parsed line (engine/protocol.parse_prompt_list), in a grid;
    a line the engine cannot make is skipped when its turn comes (keep_going)."""
    props = context.scene.kiln
    out_dir = paths.output_dir(paths.get_prefs(context))
    shared = base_params(props, out_dir, mode="text")
    step = props.target_size * 1.25
    job_items = []
    for i, item in enumerate(items):
        params = request(dict(shared, prompt=item["prompt"]), item["seed"], out_dir)
        job_items.append(JobItem(params=params, name=object_name(params),
                                 location=grid_location(context.scene.cursor.location, i,
                                                        len(items), step)))
    return Job(items=job_items, options=import_options(context), title="Prompt list",
               keep_going=True)


# ---------------------------------------------------------------- morph
def sidecar_of(obj) -> str:
    """The sidecar of the result `obj` came from; UserError when it is gone."""
    glb = str(obj.get(importer.PROP_PREFIX + "glb", ""))
    sidecar = glb[:-4] + ".json" if glb.endswith(".glb") else ""
    if not sidecar or not os.path.isfile(sidecar):
        raise UserError(f"Kiln cannot morph {obj.name}: the result files it came from "
                        f"({glb or 'none recorded'}) are gone. Generate it again first.")
    return sidecar


def morph_job(context, first, second) -> Job:
    """One morph request per fraction, each landing at its fraction of the way from
    `first` to `second` (engine/morph.py re-makes both latents from their sidecars)."""
    props = context.scene.kiln
    out_dir = paths.output_dir(paths.get_prefs(context))
    a, b = sidecar_of(first), sidecar_of(second)
    names = f"{slug(first.get('kiln_prompt', ''), 'a')}_" \
            f"{slug(second.get('kiln_prompt', ''), 'b')}"
    start, end = first.location.copy(), second.location.copy()
    items = []
    for f in protocol.morph_fractions(props.morph_steps):
        name = f"morph_{f:.2f}_{names}"[:60]
        stamp = time.strftime("%Y%m%d-%H%M%S")
        params = {"a": a, "b": b, "fraction": f, "path": props.morph_path.lower(),
                  "out": os.path.join(out_dir, f"{stamp}_{name}.glb")}
        try:
            protocol.validate_morph(dict(params, type=protocol.MORPH))
        except KilnError as exc:
            raise UserError(exc.message) from None
        items.append(JobItem(params=params, name=name, kind="morph",
                             location=tuple(start.lerp(end, f))))
    return Job(items=items, options=import_options(context), title="Morph")


# ---------------------------------------------------------------- pictures
def prepare_image(props, out_dir: str) -> str:
    """The picture as a file the engine can read, with the background made transparent."""
    if props.image_source == 'FILE':
        path = bpy.path.abspath(props.image_path.strip()) if props.image_path.strip() else ""
        if not path or not os.path.isfile(path):
            raise UserError("Pick a picture file (Image input) first." if not path else
                            f"The picture {path} does not exist: pick another file.")
        if props.background == 'ALPHA':
            return os.path.abspath(path)
        try:
            image = bpy.data.images.load(path, check_existing=False)
        except RuntimeError:
            raise UserError(f"Blender cannot read the picture {path}: pick a PNG or JPEG "
                            "file.") from None
        try:
            return _save_keyed(image, props, out_dir)
        finally:
            bpy.data.images.remove(image)
    image = props.image
    if image is None or not image.size[0]:
        raise UserError("Pick an image loaded in Blender (Image input) first.")
    if props.background == 'ALPHA':
        return _save_rgba(image, _pixels(image), out_dir)
    return _save_keyed(image, props, out_dir)


def _pixels(image):
    import numpy as np
    width, height = image.size
    rgba = np.empty(width * height * 4, dtype=np.float32)
    image.pixels.foreach_get(rgba)
    return rgba.reshape(height, width, 4)                      # (H, W, 4), bottom row first


def _save_keyed(image, props, out_dir: str) -> str:
    import numpy as np
    rgba_hxwx4 = _pixels(image).copy()
    key = np.asarray(props.key_color, dtype=np.float32)
    distance_hxw = np.abs(rgba_hxwx4[..., :3] - key).max(axis=2)
    rgba_hxwx4[..., 3] = np.where(distance_hxw <= props.key_tolerance, 0.0,
                                  rgba_hxwx4[..., 3])
    return _save_rgba(image, rgba_hxwx4, out_dir)


def _save_rgba(image, rgba_hxwx4, out_dir: str) -> str:
    folder = os.path.join(out_dir, "inputs")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{time.strftime('%Y%m%d-%H%M%S')}-{next(_counter):03d}_"
                                f"{slug(image.name, 'picture')}.png")
    height, width = rgba_hxwx4.shape[:2]
    out = bpy.data.images.new("kiln-input", width, height, alpha=True)
    try:
        out.pixels.foreach_set(rgba_hxwx4.ravel())
        out.filepath_raw = path
        out.file_format = 'PNG'
        out.save()
    finally:
        bpy.data.images.remove(out)
    return path
