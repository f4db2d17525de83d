"""Errors the engine reports to people. Standard library only (the add-on imports it).

Every error carries a stable machine code (for the protocol) and one human sentence
that names the problem and the fix.
"""

BAD_REQUEST = "bad_request"          # malformed line, unknown type, missing field
BAD_PROMPT = "bad_prompt"            # empty or unusable prompt
BAD_IMAGE = "bad_image"              # unreadable / unsupported image
BAD_MESH = "bad_mesh"                # a restyle mesh that is unreadable, empty or broken
MODEL_NOT_FOUND = "model_not_found"  # no such model folder / repo id
WEIGHTS_INVALID = "weights_invalid"  # checksum mismatch, pickle, broken safetensors
BUSY = "busy"                        # a job is already running
ENGINE_CRASHED = "engine_crashed"    # the engine process died (client side)
ENGINE_MISSING = "engine_missing"    # the engine's Python cannot be run (client side)
TIMEOUT = "timeout"                  # the client stopped waiting (client side)
INTERNAL = "internal"                # anything unexpected; message says where to look


class KilnError(Exception):
    """An error with a stable `code` and a human `message`."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class NoSurface(KilnError):
    """A field that gave no surface at all (nothing to mesh or paint): the request was
    valid, the result is empty (engine.pipeline.no_surface words it per mode)."""


class Cancelled(Exception):
    """Raised from a progress callback when the user cancelled the job."""
