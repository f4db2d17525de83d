"""The JSON-lines protocol between the add-on (client) and the engine (server).

Standard library only: the Blender side imports this module.

One message per line, UTF-8, a JSON object with a "type" field. The client writes
requests to the engine's stdin; the engine writes events to its stdout (and nothing
else there). Messages, in the order a session sees them:

    engine -> {"type":"ready","version":"0.1.0","protocol":1,"device":"cpu","model":"kiln-mini"}
    client -> {"type":"generate","id":"job-1","mode":"text","prompt":"a red chair","seed":7,...}
    engine -> {"type":"progress","id":"job-1","stage":"sample","step":3,"total":12}
    engine -> {"type":"result","id":"job-1","glb":"/abs/x.glb","json":"/abs/x.json","meta":{..}}
        (a request with "format":"splat" -> {"type":"result",..,"ply":"/abs/x.ply",..})
    engine -> {"type":"error","id":"job-1","code":"bad_request","message":"human sentence"}
    client -> {"type":"restyle","id":"job-2","mesh":"/abs/cube.npz","prompt":"a blue box",
               "strength":0.7,"out":"/abs/cube-blue.png",...}
    engine -> {"type":"result","id":"job-2","texture":"/abs/cube-blue.png","json":..,"meta":..}
    client -> {"type":"cancel","id":"job-1"}     engine -> {"type":"cancelled","id":"job-1",...}
        (a cancel naming no running job -> {"type":"error","id":"job-9","code":"bad_request"})
    client -> {"type":"ping"}                    engine -> {"type":"pong"}
    client -> {"type":"shutdown"}                (the engine exits with status 0)

`validate_generate` is the single place that checks a generate request, and
`validate_restyle` a restyle request; the engine runs them on every request and the
add-on runs them too, to refuse bad input early.

Modes: "text" (a prompt), "image" (one picture), "views" (1-4 pictures of one object,
each with its direction, reconstructed through the VAE encoder), "unconditional" (no
input: the null condition, "Surprise me"). A views request carries
    "views": [{"image": "/abs/front.png", "direction": "front"},
              {"image": "/abs/side.png", "azimuth": 90, "elevation": 20}]
Directions (one convention for the CLI, the protocol and the add-on): azimuth 0 is the
front (the camera on -Y looking towards +Y, Blender's Front view), 90 the right (+X),
180 the back, 270 the left, counter-clockwise seen from above; elevation is degrees
above the ground plane, 90 looks straight down. "refine_steps" (image and views modes)
fits the result to its picture(s) by that many optimisation steps. "format": "splat"
asks for the result as 3D Gaussian splats, NAME.ply (engine/io/splat_ply.py), instead of
the GLB ("glb", the default); "out" then ends in .ply.

Restyle (LATTE3D's text-guided stylisation) gives an existing mesh new colours on its own
UV layout: "mesh" names a file the add-on wrote (engine/restyle.py has its format, a
.npz of triangle corners and their UVs; mesh files with a UV map also work), "prompt"
says what it should look like, "strength" (0-1) how far from its present colours the
result may go. The result is a texture, NAME.png (with NAME.json), not a mesh.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from .errors import BAD_IMAGE, BAD_MESH, BAD_PROMPT, BAD_REQUEST, KilnError

PROTOCOL_VERSION = 1

# ---------------------------------------------------------------- message types
READY = "ready"
GENERATE = "generate"
RESTYLE = "restyle"
MORPH = "morph"
PROGRESS = "progress"
RESULT = "result"
ERROR = "error"
CANCEL = "cancel"
CANCELLED = "cancelled"
SHUTDOWN = "shutdown"
PING = "ping"
PONG = "pong"

CLIENT_TYPES = frozenset({GENERATE, RESTYLE, MORPH, CANCEL, SHUTDOWN, PING})
JOB_TYPES = frozenset({GENERATE, RESTYLE, MORPH})         # requests that start a job
ENGINE_TYPES = frozenset({READY, PROGRESS, RESULT, ERROR, CANCELLED, PONG})
ALL_TYPES = CLIENT_TYPES | ENGINE_TYPES
FINAL_TYPES = frozenset({RESULT, ERROR, CANCELLED})  # end a job

STAGES = ("load", "condition", "render", "sample", "encode", "refine", "decode", "extract",
          "texture", "export")                     # render: restyle's views of its mesh

# ---------------------------------------------------------------- generate fields
MODES = ("text", "image", "views", "unconditional")
REFINE_MODES = ("image", "views")   # the modes with picture(s) to refine against
TEXTURE_MODES = ("uv", "vertex")
EXTRACTORS = ("mc", "flexicubes")   # marching cubes; Kiln's FlexiCubes (keeps sharp edges)
SAMPLERS = ("euler", "heun")        # engine/sampling.py SAMPLERS
FORMATS = ("glb", "splat")          # a textured mesh (GLB), or Gaussian splats (3DGS .ply)
FORMAT_SUFFIXES = {"glb": ".glb", "splat": ".ply"}   # the "out" path's ending per format

# Views mode: 1 to MAX_VIEWS pictures (the encoder was trained on 1-4 views), each with a
# direction preset or an azimuth and elevation (convention in the module docstring).
MAX_VIEWS = 4
DEFAULT_ELEVATION = 20.0            # slightly from above, as product photos and training
DIRECTIONS = {"front": (0.0, DEFAULT_ELEVATION), "right": (90.0, DEFAULT_ELEVATION),
              "back": (180.0, DEFAULT_ELEVATION), "left": (270.0, DEFAULT_ELEVATION),
              "top": (0.0, 90.0)}   # name: (azimuth, elevation) in degrees
VIEW_FIELDS = {
    "azimuth": (float, -360.0, 360.0, "the picture's azimuth in degrees: 0 front, 90 "
                "right, 180 back, 270 left"),
    "elevation": (float, -90.0, 90.0, "the picture's elevation in degrees: 0 level, 90 "
                  "from the top"),
}

# name: (kind, low, high, what it does) -- the ranges a request may ask for.
NUMBER_FIELDS = {
    "seed": (int, 0, 2**32 - 1, "the random seed"),
    "steps": (int, 1, 200, "the number of sampling steps"),
    "guidance": (float, 0.0, 30.0, "the guidance scale"),
    "resolution": (int, 32, 512, "the extraction grid resolution"),
    "faces": (int, 100, 500_000, "the face budget; 0 means no limit"),
    "texture": (int, 64, 4096, "the texture size in pixels"),
    "refine_steps": (int, 0, 100, "the refine steps against the input picture(s); 0 is off"),
}
TEXT_FIELDS = ("id", "mode", "prompt", "image", "texture_mode", "extractor", "sampler",
               "model", "out", "format")
GENERATE_FIELDS = frozenset({"type", "views", *TEXT_FIELDS, *NUMBER_FIELDS})
NO_LIMIT_FIELDS = frozenset({"faces"})  # 0 is also accepted: no limit (no decimation)
MAX_PROMPT_CHARS = 500  # the one prompt limit (pipeline, CLI, server, add-on)
MAX_INT_DIGITS = 100    # far above any field's range; Python's int() stops at 4,300 digits
MAX_SHOWN_CHARS = 40    # how much of a refused value an error sentence quotes
PATH_FIELDS = ("image", "model", "out", "mesh")
_SURROGATE = re.compile("[\ud800-\udfff]")  # half of a UTF-16 pair: not a character

# ---------------------------------------------------------------- restyle fields
DEFAULT_STRENGTH = 0.85      # restyle: how far from the object's own colours it may go
RESTYLE_NUMBER_FIELDS = {
    **{name: NUMBER_FIELDS[name] for name in ("seed", "steps", "guidance", "texture")},
    "strength": (float, 0.0, 1.0, "how far the colours may move from the object's own: "
                 "0 keeps them, 1 starts from noise"),
}
RESTYLE_TEXT_FIELDS = ("id", "mesh", "prompt", "sampler", "model", "out")
RESTYLE_FIELDS = frozenset({"type", *RESTYLE_TEXT_FIELDS, *RESTYLE_NUMBER_FIELDS})
MESH_SUFFIXES = (".npz", ".glb", ".gltf", ".obj", ".ply")   # .npz: the add-on's export
MAX_RESTYLE_TRIANGLES = 2_000_000


# ---------------------------------------------------------------- morph fields
MORPH_PATHS = ("latent", "noise")   # engine/morph.py: blend the latents, or the starts
MAX_MORPH_STEPS = 16                # in-betweens one morph may ask for
MORPH_NUMBER_FIELDS = {
    "fraction": (float, 0.0, 1.0, "how far from the first source to the second: 0 is "
                 "the first, 1 the second"),
}
MORPH_TEXT_FIELDS = ("id", "a", "b", "path", "model", "out")
MORPH_FIELDS = frozenset({"type", *MORPH_TEXT_FIELDS, *MORPH_NUMBER_FIELDS})

# ---------------------------------------------------------------- prompt lists
MAX_LIST_PROMPTS = 500       # prompts one list may hold (a night of CPU at kiln-mini's pace)
LIST_SEED_MARK = "|"         # a line "a red chair | 7": the prompt, then its own seed
LIST_EXAMPLE = "'a red chair' or 'a red chair | 7'"


# ---------------------------------------------------------------- encode / decode
def _jsonable(value):
    """Fallback for json.dumps: paths, numpy scalars/arrays, sets."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if hasattr(value, "tolist"):  # numpy scalar or array, torch tensor
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def plain(value):
    """`value` as plain JSON types (paths to str, numpy to lists/numbers)."""
    return json.loads(json.dumps(value, default=_jsonable))


def encode(msg: dict) -> str:
    """One message as one JSON line (no trailing newline; ASCII, so never split)."""
    if not isinstance(msg, dict) or "type" not in msg:
        raise ValueError("a protocol message is a dict with a 'type' field")
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=True, default=_jsonable)


def decode(line, allowed=ALL_TYPES) -> dict:
    """Parse one line into a message dict; raise KilnError(BAD_REQUEST, sentence)."""
    text = _text(line).strip()
    if not text:
        raise KilnError(BAD_REQUEST, "The line is empty: send one JSON object per line.")
    try:
        msg = json.loads(text, parse_int=_strict_int)
    except json.JSONDecodeError as exc:
        raise KilnError(BAD_REQUEST, f"The line is not valid JSON ({exc.msg} at column "
                        f"{exc.colno}): send one JSON object per line, e.g. "
                        '{"type": "ping"}.') from None
    except ValueError as exc:
        raise KilnError(BAD_REQUEST, f"The line is not valid JSON ({exc}): send one JSON "
                        'object per line, e.g. {"type": "ping"}.') from None
    except RecursionError:
        raise KilnError(BAD_REQUEST, "The line nests JSON too deeply: send one flat JSON "
                        'object per line, e.g. {"type": "ping"}.') from None
    if not isinstance(msg, dict):
        raise KilnError(BAD_REQUEST, f"The line is a JSON {type(msg).__name__}, not an "
                        'object: send an object such as {"type": "ping"}.')
    kind = msg.get("type")
    if kind is None:
        raise KilnError(BAD_REQUEST, 'The message has no "type" field: add one, e.g. '
                        f'"type": "generate" (known: {_names(allowed)}).')
    if not isinstance(kind, str) or kind not in allowed:
        raise KilnError(BAD_REQUEST, f"Unknown message type {_shown(kind)}: use one of "
                        f"{_names(allowed)}.")
    return msg


def request_id(line):
    """The id of the request on `line`, or None, even when `decode` refuses the line.

    Errors answer with it, so the client can match an error to the request it sent.
    """
    try:
        msg = json.loads(_text(line), parse_int=_lenient_int)
    except (ValueError, RecursionError):
        return None
    return plain_id(msg.get("id")) if isinstance(msg, dict) else None


def plain_id(value):
    """A request's id as the string errors carry, or None when it has no usable one."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    if isinstance(value, int) and value.bit_length() > MAX_INT_DIGITS * 10 // 3:
        return None  # over MAX_INT_DIGITS digits: no id, and str() might refuse it
    return str(value)


def _text(line) -> str:
    if isinstance(line, (bytes, bytearray)):
        return bytes(line).decode("utf-8", errors="replace")
    return line


def _strict_int(digits: str) -> int:
    """json's integer hook: refuse numbers too long for any field (and for int())."""
    count = len(digits.lstrip("-"))
    if count > MAX_INT_DIGITS:
        raise KilnError(BAD_REQUEST, f"The line has a whole number with {count} digits, "
                        "far more than any field takes: send each number in its field's "
                        f"range (a seed is at most {NUMBER_FIELDS['seed'][2]}).")
    return int(digits)


def _lenient_int(digits: str):
    """json's integer hook for request_id: an over-long number becomes None, not an error."""
    return None if len(digits.lstrip("-")) > MAX_INT_DIGITS else int(digits)


def _names(types) -> str:
    return ", ".join(sorted(types))


# ---------------------------------------------------------------- message builders
def ready(version: str, device: str, model: str, **extra) -> dict:
    return {"type": READY, "version": version, "protocol": PROTOCOL_VERSION,
            "device": device, "model": model, **extra}


def progress(job_id, stage: str, step: int, total: int) -> dict:
    return {"type": PROGRESS, "id": job_id, "stage": stage, "step": int(step),
            "total": int(total)}


def result(job_id, glb: str, json_path: str, meta: dict) -> dict:
    return {"type": RESULT, "id": job_id, "glb": glb, "json": json_path, "meta": meta}


def error(job_id, code: str, message: str) -> dict:
    return {"type": ERROR, "id": job_id, "code": code, "message": message}


def cancelled(job_id, **extra) -> dict:
    return {"type": CANCELLED, "id": job_id, **extra}


def generate(job_id: str, **params) -> dict:
    return {"type": GENERATE, "id": job_id, **params}


def restyle(job_id: str, **params) -> dict:
    return {"type": RESTYLE, "id": job_id, **params}


def morph(job_id: str, **params) -> dict:
    return {"type": MORPH, "id": job_id, **params}


def splatted(job_id, ply: str, json_path: str, meta: dict) -> dict:
    """A result in the "splat" format: the Gaussian splats' .ply instead of a GLB."""
    return {"type": RESULT, "id": job_id, "ply": ply, "json": json_path, "meta": meta}


def restyled(job_id, texture: str, json_path: str, meta: dict) -> dict:
    """A restyle's result: the texture PNG (and its sidecar) instead of a GLB."""
    return {"type": RESULT, "id": job_id, "texture": texture, "json": json_path, "meta": meta}


# ---------------------------------------------------------------- validation
def validate_generate(msg: dict) -> dict:
    """Check and normalise a generate request; raise KilnError naming field and fix.

    Returns a new dict with "id", "mode", "prompt", "image" (absolute path or None),
    "views" (see `check_views`, or None), "texture_mode", "extractor", "sampler", "model",
    "format" (FORMATS, "glb" when absent) and "out" (str or None, ending as the format's
    FORMAT_SUFFIXES), and each number field present in the request (ints as int,
    guidance as float). Absent numbers stay absent so the model's own defaults apply.
    """
    unknown = sorted(set(msg) - GENERATE_FIELDS)
    if unknown:
        raise KilnError(BAD_REQUEST, f"Unknown field {unknown[0]!r} in the generate "
                        f"request: remove it or check the spelling (known: "
                        f"{_names(GENERATE_FIELDS - {'type'})}).")
    out = {"id": _job_id(msg.get("id"))}
    for name in ("prompt", "image", "model", "out", "mode", "texture_mode", "extractor",
                 "sampler"):
        out[name] = _optional_text(msg, name)
    out["mode"] = _mode(out["mode"], out["image"], msg.get("views"))
    out["texture_mode"] = _choice("texture_mode", out["texture_mode"] or "uv",
                                  TEXTURE_MODES)
    out["format"] = _choice("format", _optional_text(msg, "format") or FORMATS[0], FORMATS)
    for name, choices in (("extractor", EXTRACTORS), ("sampler", SAMPLERS)):
        if out[name] is not None:             # None: the model's default (config sampling)
            out[name] = _choice(name, out[name], choices)
    out["views"] = None
    if out["mode"] == "text":
        out["prompt"] = check_prompt(out["prompt"])
    elif out["mode"] == "image":
        out["image"] = _image_path(out["image"])
        out["prompt"] = (out["prompt"] or "").strip()
    else:                                     # views, unconditional: no prompt, no image
        out["image"], out["prompt"] = None, ""
        if out["mode"] == "views":
            out["views"] = check_views(msg.get("views"))
    if out["out"] is not None:
        suffix = FORMAT_SUFFIXES[out["format"]]
        out["out"] = _out_path(out["out"], suffix, "chair" + suffix)
    for name in NUMBER_FIELDS:
        if msg.get(name) is not None:
            out[name] = _number(name, msg[name])
    check_refine(out["mode"], out.get("refine_steps", 0))
    return out


def _known_fields(msg: dict, known: frozenset, kind: str, text_fields) -> dict:
    """A request's id and optional text fields, once every field is `known`; KilnError
    naming the first unknown field of the `kind` request."""
    unknown = sorted(set(msg) - known)
    if unknown:
        raise KilnError(BAD_REQUEST, f"Unknown field {unknown[0]!r} in the {kind} request: "
                        "remove it or check the spelling (known: "
                        f"{_names(known - {'type'})}).")
    out = {"id": _job_id(msg.get("id"))}
    for name in text_fields:
        out[name] = _optional_text(msg, name)
    return out


def validate_restyle(msg: dict) -> dict:
    """Check and normalise a restyle request; raise KilnError naming field and fix.

    Returns a new dict with "id", "mesh" (absolute path), "prompt", "sampler", "model"
    and "out" (a .png path, or None), "strength" (DEFAULT_STRENGTH when absent) and each
    other number field present (absent ones take the model's defaults)."""
    out = _known_fields(msg, RESTYLE_FIELDS, "restyle", RESTYLE_TEXT_FIELDS[1:])
    out["mesh"] = _mesh_path(out["mesh"])
    out["prompt"] = check_prompt(out["prompt"])
    if out["sampler"] is not None:
        out["sampler"] = _choice("sampler", out["sampler"], SAMPLERS)
    if out["out"] is not None:
        out["out"] = _out_path(out["out"], ".png", "chair-blue.png")
    for name in RESTYLE_NUMBER_FIELDS:
        if msg.get(name) is not None:
            out[name] = _number(name, msg[name], RESTYLE_NUMBER_FIELDS)
    out.setdefault("strength", DEFAULT_STRENGTH)
    return out


def validate_morph(msg: dict) -> dict:
    """Check and normalise a morph request (one in-between of two results); raise
    KilnError naming field and fix. Returns a new dict with "id", "a" and "b" (absolute
    paths of the two results' sidecars, NAME.json), "fraction" (0-1), "path" (MORPH_PATHS,
    "latent" when absent), "model" and "out" (a .glb path, or None)."""
    out = _known_fields(msg, MORPH_FIELDS, "morph", MORPH_TEXT_FIELDS[1:])
    for name, which in (("a", "first"), ("b", "second")):
        out[name] = _sidecar_path(out[name], name, which)
    out["path"] = _choice("path", out["path"] or MORPH_PATHS[0], MORPH_PATHS)
    if msg.get("fraction") is None:
        raise KilnError(BAD_REQUEST, 'The morph request has no "fraction": give how far '
                        "from the first result to the second, from 0 to 1, e.g. 0.5.")
    out["fraction"] = _number("fraction", msg["fraction"], MORPH_NUMBER_FIELDS)
    if out["out"] is not None:
        out["out"] = _out_path(out["out"])
    return out


def check_morph_steps(steps) -> int:
    """The number of in-betweens a morph asks for; KilnError outside 1..MAX_MORPH_STEPS."""
    if isinstance(steps, bool) or not isinstance(steps, int) \
            or not 1 <= steps <= MAX_MORPH_STEPS:
        raise KilnError(BAD_REQUEST, f"A morph makes 1 to {MAX_MORPH_STEPS} in-betweens, "
                        f"not {_shown(steps)}: ask for a number in that range.")
    return steps


def morph_fractions(steps: int) -> list[float]:
    """The fractions of `steps` in-betweens, evenly between the two sources (excluded)."""
    steps = check_morph_steps(steps)
    return [round(i / (steps + 1), 4) for i in range(1, steps + 1)]


def _sidecar_path(path, field: str, which: str) -> str:
    if not path or not path.strip():
        raise KilnError(BAD_REQUEST, f'Morph needs the {which} result: set "{field}" to the '
                        "path of its sidecar NAME.json, written beside NAME.glb.")
    if not path.lower().endswith(".json"):
        raise KilnError(BAD_REQUEST, f"The {which} result {path!r} is not a sidecar: give "
                        "the NAME.json Kiln wrote beside NAME.glb.")
    return _readable_file(path, f"{which} result's sidecar", BAD_REQUEST,
                          "generate it again, or pick a result that is still on disk")


def _mesh_path(mesh) -> str:
    if not mesh or not mesh.strip():
        raise KilnError(BAD_MESH, 'Restyle needs a mesh: set "mesh" to the path of the '
                        "file the add-on wrote (.npz), or of a mesh file with a UV map.")
    if not mesh.lower().endswith(MESH_SUFFIXES):
        raise KilnError(BAD_MESH, f"The mesh {mesh!r} is not a file Kiln can restyle: give "
                        f"a {', '.join(MESH_SUFFIXES)} file.")
    return _readable_file(mesh, "mesh", BAD_MESH, "pick the mesh file again")


def check_refine(mode: str, steps: int) -> None:
    """Refine fits a result to its input picture(s): text and unconditional results have
    none, so asking for it there is refused rather than silently skipped."""
    if steps and mode not in REFINE_MODES:
        raise KilnError(BAD_REQUEST, f'The "refine_steps" field is {steps}, but refine fits '
                        f"a result to its input picture(s) and {mode} mode has none: set "
                        f"refine_steps to 0, or use {' or '.join(REFINE_MODES)} mode.")


def check_views(views) -> list[dict]:
    """The pictures of a views request -> [{"image": absolute path, "azimuth": 0..360,
    "elevation": -90..90}]; KilnError naming the picture and the fix for a count outside
    1..MAX_VIEWS, a bad file or a bad direction."""
    check_view_count(views)
    return [_view(i, view, len(views)) for i, view in enumerate(views)]


def check_view_count(views) -> None:
    """KilnError unless `views` is a list of 1 to MAX_VIEWS items."""
    example = ('e.g. [{"image": "front.png", "direction": "front"}, {"image": '
               '"side.png", "azimuth": 90, "elevation": 20}]')
    if views is None or (isinstance(views, (list, tuple)) and not views):
        raise KilnError(BAD_IMAGE, f"Views mode needs 1 to {MAX_VIEWS} pictures and got "
                        f'none: set "views" to a list of pictures with their directions, '
                        f"{example}.")
    if not isinstance(views, (list, tuple)):
        raise KilnError(BAD_REQUEST, f'The "views" field must be a list of pictures, got '
                        f"{type(views).__name__} {_shown(views)}: {example}.")
    if len(views) > MAX_VIEWS:
        raise KilnError(BAD_IMAGE, f"Views mode takes 1 to {MAX_VIEWS} pictures (the "
                        f"encoder was trained on up to {MAX_VIEWS} views) and got "
                        f"{len(views)}: leave {len(views) - MAX_VIEWS} out.")


def view_name(i: int, count: int) -> str:
    return f"Picture {i + 1} of {count}"


def _view(i: int, view, count: int) -> dict:
    name = view_name(i, count)
    if not isinstance(view, dict):
        raise KilnError(BAD_REQUEST, f"{name} must be an object with an \"image\" and a "
                        f"\"direction\" (or \"azimuth\" and \"elevation\"), got "
                        f"{type(view).__name__} {_shown(view)}.")
    unknown = sorted(set(view) - {"image", "direction", *VIEW_FIELDS})
    if unknown:
        raise KilnError(BAD_REQUEST, f"{name} has an unknown field {unknown[0]!r}: use "
                        "image, direction, azimuth and elevation.")
    image = _optional_text(view, "image")
    if not image or not image.strip():
        raise KilnError(BAD_IMAGE, f'{name} has no "image": set it to the path of a PNG '
                        "or JPEG file.")
    try:
        image = _image_path(image)
    except KilnError as exc:
        said = exc.message[:1].lower() + exc.message[1:]      # "The image ..." -> "the"
        raise KilnError(exc.code, f"{name}: {said}") from None
    azimuth, elevation = view_direction(view, name)
    return {"image": image, "azimuth": azimuth, "elevation": elevation}


def view_direction(view: dict, name: str = "The picture") -> tuple[float, float]:
    """(azimuth in [0, 360), elevation) in degrees of one picture: from its "direction"
    preset or from its "azimuth" (and "elevation", default DEFAULT_ELEVATION)."""
    preset = _optional_text(view, "direction")
    if preset is not None:
        if view.get("azimuth") is not None or view.get("elevation") is not None:
            raise KilnError(BAD_REQUEST, f'{name} gives both a "direction" and angles: '
                            'keep one, a preset such as "front" or "azimuth" (and '
                            '"elevation").')
        if preset not in DIRECTIONS:
            raise KilnError(BAD_REQUEST, f"{name} has the direction {_shown(preset)}: use "
                            f"one of {', '.join(DIRECTIONS)}, or give azimuth and "
                            "elevation in degrees.")
        return DIRECTIONS[preset]
    if view.get("azimuth") is None:
        raise KilnError(BAD_REQUEST, f'{name} has no direction: add "direction" (one of '
                        f'{", ".join(DIRECTIONS)}) or "azimuth" in degrees (0 front, '
                        "90 right, 180 back, 270 left).")
    azimuth = _number("azimuth", view["azimuth"], VIEW_FIELDS, f"{name}: the")
    elevation = DEFAULT_ELEVATION
    if view.get("elevation") is not None:
        elevation = _number("elevation", view["elevation"], VIEW_FIELDS, f"{name}: the")
    return azimuth % 360.0, elevation


def _job_id(value):
    if value is None:
        return None
    if plain_id(value) is None or value == "":
        raise KilnError(BAD_REQUEST, f'The "id" field must be a non-empty string, got '
                        f"{_shown(value)}: give each request its own id, e.g. \"job-1\".")
    return str(value)


def _shown(value) -> str:
    """`value` quoted for an error sentence: short, and safe for ints of any size."""
    if isinstance(value, int) and value.bit_length() > 3 * MAX_SHOWN_CHARS:
        return f"a number of about {int(value.bit_length() * 0.30103) + 1} digits"
    text = repr(value)
    return text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS] + "..."


def _optional_text(msg: dict, name: str):
    value = msg.get(name)
    if value is not None and not isinstance(value, str):
        raise KilnError(BAD_REQUEST, f'The "{name}" field must be a string, got '
                        f"{type(value).__name__} {_shown(value)}.")
    if value and name in PATH_FIELDS and "\x00" in value:
        code = BAD_IMAGE if name == "image" else BAD_REQUEST
        raise KilnError(code, f'The "{name}" path {_shown(value)} contains a NUL character, '
                        "which no file name can hold: pick the file again.")
    return value


def _choice(name: str, value: str, choices) -> str:
    if value not in choices:
        raise KilnError(BAD_REQUEST, f'The "{name}" field is {value!r}: use one of '
                        f"{', '.join(choices)}.")
    return value


def _mode(mode, image, views) -> str:
    if mode is None:
        return "views" if views is not None else "image" if image else "text"
    return _choice("mode", mode, MODES)


def check_prompt(prompt) -> str:
    """The prompt, stripped; KilnError(BAD_PROMPT) when it is empty, too long or holds a
    lone surrogate (half of a UTF-16 pair, e.g. "\\ud800" in JSON: no character, and
    the tokenizer cannot read it). Refused rather than replaced: the user should see
    what is sent, not a prompt with a character silently changed."""
    text = prompt.strip() if isinstance(prompt, str) else ""
    if not text:
        raise KilnError(BAD_PROMPT, "The prompt is empty: type what you want to make, "
                        "e.g. 'a red chair'.")
    if len(text) > MAX_PROMPT_CHARS:
        raise KilnError(BAD_PROMPT, f"The prompt has {len(text)} characters: shorten it "
                        f"to at most {MAX_PROMPT_CHARS} (the text encoder reads only the "
                        "first few dozen words).")
    broken = _SURROGATE.search(text)
    if broken:
        raise KilnError(BAD_PROMPT, f"The prompt has a broken character at position "
                        f"{broken.start() + 1} (U+{ord(broken.group()):04X}, half of a "
                        "UTF-16 pair, not text): type or paste the prompt again.")
    return text


def _image_path(image) -> str:
    if not image or not image.strip():
        raise KilnError(BAD_IMAGE, 'Image mode needs a picture: set "image" to the path '
                        "of a PNG or JPEG file.")
    return _readable_file(image, "image", BAD_IMAGE, "pick an existing picture file",
                          "a picture file", "a PNG or JPEG file")


def _readable_file(text: str, noun: str, code: str, missing_fix: str,
                   inside: str = "a file", kind: str = "another file") -> str:
    """The absolute path of the readable regular file `text`; KilnError(code) naming
    the `noun` ("image", "mesh") and the fix otherwise."""
    path = Path(text).expanduser()
    try:
        info = path.stat()
    except FileNotFoundError:
        raise KilnError(code, f"The {noun} {str(path)!r} does not exist: "
                        f"{missing_fix}.") from None
    except OSError as exc:
        raise KilnError(code, f"The {noun} {str(path)!r} cannot be read "
                        f"({exc.strerror or type(exc).__name__}): check the permissions "
                        "of the file and its folders, or pick another file.") from None
    if stat.S_ISDIR(info.st_mode):
        raise KilnError(code, f"The {noun} {str(path)!r} is a folder, not a file: "
                        f"pick {inside} inside it.")
    if not stat.S_ISREG(info.st_mode):
        raise KilnError(code, f"The {noun} {str(path)!r} is not a regular file: pick "
                        f"{kind}.")
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise KilnError(code, f"The {noun} {str(path)!r} cannot be read ({reason}): "
                        "check its permissions or pick another file.") from None
    return str(path.resolve())


def _out_path(value: str, suffix: str = ".glb", example: str = "chair.glb") -> str:
    if not value.strip():
        raise KilnError(BAD_REQUEST, 'The "out" field is empty: give a path ending in '
                        f'{suffix}, or leave "out" out to use the output folder.')
    if not value.lower().endswith(suffix):
        raise KilnError(BAD_REQUEST, f'The "out" path {value!r} does not end in {suffix}: '
                        f"name the output file like '{example}'.")
    return str(Path(value).expanduser())


def _number(name: str, given, table=NUMBER_FIELDS, where: str = "The"):
    """`given` checked against table[name] = (kind, low, high, what); `where` starts the
    sentence (e.g. "Picture 2 of 3: the")."""
    kind, low, high, what = table[name]
    span = f"use a value from {low} to {high}"
    field = f'{where} "{name}" field ({what})'
    if isinstance(given, bool) or not isinstance(given, (int, float)):
        raise KilnError(BAD_REQUEST, f"{field} must be a number, got "
                        f"{type(given).__name__} {_shown(given)}: {span}.")
    if kind is int:
        if isinstance(given, float) and not given.is_integer():  # also inf and NaN
            raise KilnError(BAD_REQUEST, f"{field} must be a whole number, got "
                            f"{_shown(given)}: {span}.")
        value = int(given)
    else:
        value = _as_float(given)
        if value != value:  # NaN
            raise KilnError(BAD_REQUEST, f"{field} is not a number: {span}.")
    if not low <= value <= high and not (value == 0 and name in NO_LIMIT_FIELDS):
        raise KilnError(BAD_REQUEST, f"{field} is {_shown(given)}, out of range: {span}.")
    return value


def check_number(name: str, value, table=NUMBER_FIELDS):
    """One number field checked as a request's would be (the pipeline's API uses it)."""
    return _number(name, value, table)


def _as_float(value) -> float:
    """float(value), with ints too big for a float as infinities (out of every range)."""
    try:
        return float(value)
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")


# ---------------------------------------------------------------- file names
def slug(text: str, fallback: str = "asset", limit: int = 32, sep: str = "-") -> str:
    """A file-name piece from free text: runs of anything but ASCII letters and digits
    become one `sep`, lower case, at most `limit` characters; `fallback` when nothing is
    left ("A red chair!" -> "a-red-chair"; the add-on's object names use sep "_")."""
    piece = re.sub(r"[^A-Za-z0-9]+", sep, text).strip(sep).lower()
    return piece[:limit].rstrip(sep) or fallback


# ---------------------------------------------------------------- prompt lists
def parse_prompt_list(text: str, default_seed: int = 0) -> tuple[list[dict], list[dict]]:
    """A prompt list -> (items, bad lines). One prompt a line, optionally followed by
    `| SEED` (LIST_SEED_MARK); blank lines and lines starting with # are skipped. Items are
    {"line": n, "prompt": text, "seed": int} (a line without a seed takes `default_seed`);
    a bad line is {"line": n, "text": the line, shortened, "message": sentence naming the
    line, the problem and the fix}, and the lines after it still count. KilnError when the
    list holds more than MAX_LIST_PROMPTS prompts."""
    items, bad = [], []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            items.append(dict(line=number, **_list_line(line, default_seed)))
        except KilnError as exc:
            bad.append({"line": number, "text": _shown(line), "message": f"Line {number}: "
                        f"{exc.message[:1].lower()}{exc.message[1:]}"})
    if len(items) > MAX_LIST_PROMPTS:
        raise KilnError(BAD_REQUEST, f"The prompt list holds {len(items)} prompts: split it "
                        f"into lists of at most {MAX_LIST_PROMPTS}.")
    return items, bad


def _list_line(line: str, default_seed: int) -> dict:
    """One non-blank line of a prompt list -> {"prompt", "seed"}; KilnError naming the fix."""
    prompt, mark, seed_text = line.partition(LIST_SEED_MARK)
    seed = default_seed
    if mark:
        seed_text = seed_text.strip()
        if not re.fullmatch(r"[0-9]{1,20}", seed_text):
            raise KilnError(BAD_REQUEST, f"The seed {_shown(seed_text)} after "
                            f"{LIST_SEED_MARK!r} is not a whole number: write the line as "
                            f"{LIST_EXAMPLE}.")
        seed = _number("seed", int(seed_text))
    return {"prompt": check_prompt(prompt), "seed": seed}
