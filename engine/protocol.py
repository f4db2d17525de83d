"""The JSON-lines protocol between the add-on (client) and the engine (server).

Standard library only: the Blender side imports this module.

One message per line, UTF-8, a JSON object with a "type" field. The client writes
requests to the engine's stdin; the engine writes events to its stdout (and nothing
else there). Messages, in the order a session sees them:

    engine -> {"type":"ready","version":"0.1.0","protocol":1,"device":"cpu","model":"kiln-mini"}
    client -> {"type":"generate","id":"job-1","mode":"text","prompt":"a red chair","seed":7,...}
    engine -> {"type":"progress","id":"job-1","stage":"sample","step":3,"total":12}
    engine -> {"type":"result","id":"job-1","glb":"/abs/x.glb","json":"/abs/x.json","meta":{..}}
    engine -> {"type":"error","id":"job-1","code":"bad_request","message":"human sentence"}
    client -> {"type":"cancel","id":"job-1"}     engine -> {"type":"cancelled","id":"job-1",...}
        (a cancel naming no running job -> {"type":"error","id":"job-9","code":"bad_request"})
    client -> {"type":"ping"}                    engine -> {"type":"pong"}
    client -> {"type":"shutdown"}                (the engine exits with status 0)

`validate_generate` is the single place that checks a generate request; the engine
runs it on every request and the add-on may run it too, to refuse bad input early.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from .errors import BAD_IMAGE, BAD_PROMPT, BAD_REQUEST, KilnError

PROTOCOL_VERSION = 1

# ---------------------------------------------------------------- message types
READY = "ready"
GENERATE = "generate"
PROGRESS = "progress"
RESULT = "result"
ERROR = "error"
CANCEL = "cancel"
CANCELLED = "cancelled"
SHUTDOWN = "shutdown"
PING = "ping"
PONG = "pong"

CLIENT_TYPES = frozenset({GENERATE, CANCEL, SHUTDOWN, PING})
ENGINE_TYPES = frozenset({READY, PROGRESS, RESULT, ERROR, CANCELLED, PONG})
ALL_TYPES = CLIENT_TYPES | ENGINE_TYPES
FINAL_TYPES = frozenset({RESULT, ERROR, CANCELLED})  # end a job

STAGES = ("load", "condition", "sample", "decode", "extract", "texture", "export")

# ---------------------------------------------------------------- generate fields
MODES = ("text", "image")
TEXTURE_MODES = ("uv", "vertex")
EXTRACTORS = ("mc", "flexicubes")   # marching cubes; Kiln's FlexiCubes (keeps sharp edges)

# name: (kind, low, high, what it does) -- the ranges a request may ask for.
NUMBER_FIELDS = {
    "seed": (int, 0, 2**32 - 1, "the random seed"),
    "steps": (int, 1, 200, "the number of sampling steps"),
    "guidance": (float, 0.0, 30.0, "the guidance scale"),
    "resolution": (int, 32, 512, "the extraction grid resolution"),
    "faces": (int, 100, 500_000, "the face budget; 0 means no limit"),
    "texture": (int, 64, 4096, "the texture size in pixels"),
}
TEXT_FIELDS = ("id", "mode", "prompt", "image", "texture_mode", "extractor", "model", "out")
GENERATE_FIELDS = frozenset({"type", *TEXT_FIELDS, *NUMBER_FIELDS})
NO_LIMIT_FIELDS = frozenset({"faces"})  # 0 is also accepted: no limit (no decimation)
MAX_PROMPT_CHARS = 500  # the one prompt limit (pipeline, CLI, server, add-on)
MAX_INT_DIGITS = 100    # far above any field's range; Python's int() stops at 4,300 digits
MAX_SHOWN_CHARS = 40    # how much of a refused value an error sentence quotes
PATH_FIELDS = ("image", "model", "out")
_SURROGATE = re.compile("[\ud800-\udfff]")  # half of a UTF-16 pair: not a character


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


# ---------------------------------------------------------------- validation
def validate_generate(msg: dict) -> dict:
    """Check and normalise a generate request; raise KilnError naming field and fix.

    Returns a new dict with "id", "mode", "prompt", "image" (absolute path or None),
    "texture_mode", "model" and "out" (str or None), and each number field present in
    the request (ints as int, guidance as float). Absent numbers stay absent so the
    model's own defaults apply.
    """
    unknown = sorted(set(msg) - GENERATE_FIELDS)
    if unknown:
        raise KilnError(BAD_REQUEST, f"Unknown field {unknown[0]!r} in the generate "
                        f"request: remove it or check the spelling (known: "
                        f"{_names(GENERATE_FIELDS - {'type'})}).")
    out = {"id": _job_id(msg.get("id"))}
    for name in ("prompt", "image", "model", "out", "mode", "texture_mode", "extractor"):
        out[name] = _optional_text(msg, name)
    out["mode"] = _mode(out["mode"], out["image"])
    out["texture_mode"] = _choice("texture_mode", out["texture_mode"] or "uv",
                                  TEXTURE_MODES)
    if out["extractor"] is not None:          # None: the model's default (config sampling)
        out["extractor"] = _choice("extractor", out["extractor"], EXTRACTORS)
    if out["mode"] == "text":
        out["prompt"] = check_prompt(out["prompt"])
    else:
        out["image"] = _image_path(out["image"])
        out["prompt"] = (out["prompt"] or "").strip()
    if out["out"] is not None:
        out["out"] = _out_path(out["out"])
    for name in NUMBER_FIELDS:
        if msg.get(name) is not None:
            out[name] = _number(name, msg[name])
    return out


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


def _mode(mode, image) -> str:
    if mode is None:
        return "image" if image else "text"
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
    path = Path(image).expanduser()
    try:
        info = path.stat()
    except FileNotFoundError:
        raise KilnError(BAD_IMAGE, f"The image {str(path)!r} does not exist: pick an "
                        "existing picture file.") from None
    except OSError as exc:
        raise KilnError(BAD_IMAGE, f"The image {str(path)!r} cannot be read "
                        f"({exc.strerror or type(exc).__name__}): check the permissions "
                        "of the file and its folders, or pick another file.") from None
    if stat.S_ISDIR(info.st_mode):
        raise KilnError(BAD_IMAGE, f"The image {str(path)!r} is a folder, not a file: "
                        "pick a picture file inside it.")
    if not stat.S_ISREG(info.st_mode):
        raise KilnError(BAD_IMAGE, f"The image {str(path)!r} is not a regular file: pick "
                        "a PNG or JPEG file.")
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise KilnError(BAD_IMAGE, f"The image {str(path)!r} cannot be read ({reason}): "
                        "check its permissions or pick another file.") from None
    return str(path.resolve())


def _out_path(value: str) -> str:
    if not value.strip():
        raise KilnError(BAD_REQUEST, 'The "out" field is empty: give a path ending in '
                        '.glb, or leave "out" out to use the output folder.')
    if not value.lower().endswith(".glb"):
        raise KilnError(BAD_REQUEST, f'The "out" path {value!r} does not end in .glb: '
                        "name the output file like 'chair.glb'.")
    return str(Path(value).expanduser())


def _number(name: str, given):
    kind, low, high, what = NUMBER_FIELDS[name]
    span = f"use a value from {low} to {high}"
    if isinstance(given, bool) or not isinstance(given, (int, float)):
        raise KilnError(BAD_REQUEST, f'The "{name}" field ({what}) must be a number, got '
                        f"{type(given).__name__} {_shown(given)}: {span}.")
    if kind is int:
        if isinstance(given, float) and not given.is_integer():  # also inf and NaN
            raise KilnError(BAD_REQUEST, f'The "{name}" field ({what}) must be a whole '
                            f"number, got {_shown(given)}: {span}.")
        value = int(given)
    else:
        value = _as_float(given)
        if value != value:  # NaN
            raise KilnError(BAD_REQUEST, f'The "{name}" field ({what}) is not a number: '
                            f"{span}.")
    if not low <= value <= high and not (value == 0 and name in NO_LIMIT_FIELDS):
        raise KilnError(BAD_REQUEST, f'The "{name}" field ({what}) is {_shown(given)}, out '
                        f"of range: {span}.")
    return value


def _as_float(value) -> float:
    """float(value), with ints too big for a float as infinities (out of every range)."""
    try:
        return float(value)
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")
