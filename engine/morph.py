"""Morph: in-betweens of two Kiln results along the latent path.

Each source is re-made from its sidecar (mode, prompt or picture, seed and every
setting are recorded there), so its latent is the one it had. Two paths:

- "latent" (the default): the spherical interpolation of the two final latents (in the
  DiT's normalised space), decoded as it is.
- "noise": the flow starts from the spherical interpolation of the two sources' starting
  noises, and its velocity is the same blend of the two sources' guided velocities,
  v = (1 - f) v_A + f v_B: every in-between is a sample of the model itself.

Why latent is the default (scripts/morph_picture.py, kiln-mini, "a red chair" seed 1 to
"a blue mug" seed 1, 5 in-betweens, docs/morph.png): along the latent path the shape
moves evenly -- the largest Chamfer step between neighbouring frames is 23% of the whole
path, and the distance from the chair grows 0.033, 0.061, 0.085, 0.130, 0.153 -- while
along the noise path the middle frame falls apart into a few fragments (the two guided
velocities pull towards different objects and their mean towards neither): its largest
step is 42% of the path.

At f = 0 and f = 1 both paths give the sources' own latents exactly. An in-between takes
the nearer source's settings (steps, sampler, resolution, faces, texture, extractor).
Only sampled results can be morphed: text, image and unconditional, without refine
(a views result or a refined one has no starting noise to start from).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from . import protocol
from .errors import BAD_REQUEST, KilnError

PATHS = protocol.MORPH_PATHS       # "latent" (the default) or "noise"
MORPH_MODES = ("text", "image", "unconditional")
SOURCE_FIELDS = ("mode", "prompt", "image", "texture_mode", "extractor", "sampler",
                 *protocol.NUMBER_FIELDS)


def read_sidecar(path: str) -> dict:
    """A result's sidecar NAME.json as a dict; KilnError naming the fix."""
    try:
        meta = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KilnError(BAD_REQUEST, f"The sidecar {path} cannot be read as JSON ({exc}): "
                        "pick the NAME.json Kiln wrote beside a result.") from None
    if not isinstance(meta, dict):
        raise KilnError(BAD_REQUEST, f"The sidecar {path} is not a JSON object: pick the "
                        "NAME.json Kiln wrote beside a result.")
    return meta


def slerp(a: torch.Tensor, b: torch.Tensor, f: float) -> torch.Tensor:
    """Spherical interpolation of two tensors of one shape (linear when they are
    parallel); exactly `a` at f = 0 and `b` at f = 1."""
    if f <= 0.0:
        return a
    if f >= 1.0:
        return b
    cos = torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0)
    theta = float(torch.arccos(cos.clamp(-1.0, 1.0)))
    if theta < 1e-4:
        return (1.0 - f) * a + f * b
    return (math.sin((1.0 - f) * theta) * a + math.sin(f * theta) * b) / math.sin(theta)


def source_request(meta: dict, name: str = "The source") -> dict:
    """The generate request that re-makes a result from its sidecar `meta`, checked by
    protocol.validate_generate; KilnError naming the fix for a result morph cannot re-make."""
    mode = meta.get("mode")
    if mode not in MORPH_MODES or meta.get("refine_steps"):
        kind = "a refined result" if mode in MORPH_MODES else f"a {mode!s} result"
        raise KilnError(BAD_REQUEST, f"{name} is {kind}: morph re-makes a result from its "
                        f"starting noise, which only {', '.join(MORPH_MODES)} results "
                        "without refine have. Pick two such results.")
    fields = {k: meta[k] for k in SOURCE_FIELDS if meta.get(k) is not None}
    if mode == "unconditional":
        fields.pop("guidance", None)
    return protocol.validate_generate(dict(fields, type=protocol.GENERATE))


class Source:
    """One source's starting noise, guided velocity and settings."""

    def __init__(self, pipe, params: dict):
        options = {k: params[k] for k in protocol.NUMBER_FIELDS if k in params}
        self.settings = pipe._settings(params["mode"], texture_mode=params["texture_mode"],
                                       sampler=params.get("sampler"),
                                       extractor=params.get("extractor"), **options)
        self.params = params
        self.noise = pipe.start_noise(self.settings["seed"])         # (1, 3, c, h, w)
        self.velocity = pipe.velocity(condition(pipe, params), self.settings)


def condition(pipe, params: dict):
    """The source's condition, as Pipeline.generate makes it."""
    if params["mode"] == "text":
        return pipe.encode_prompt(params["prompt"], {})
    if params["mode"] == "image":
        from .imaging import load_reference
        return pipe.encode_image(load_reference(params["image"],
                                                pipe.config.cond.image_size)[None])
    return pipe.model.dit.null_condition(1)


def blend(velocity_a, velocity_b, f: float):
    """v = (1 - f) v_A + f v_B; one source's own velocity at f = 0 or 1."""
    if f <= 0.0:
        return velocity_a
    if f >= 1.0:
        return velocity_b
    return lambda x, t: (1.0 - f) * velocity_a(x, t) + f * velocity_b(x, t)


def latent_at(pipe, a: Source, b: Source, f: float, path: str, report=None):
    """The latent z (1, 3, c, h, w) at fraction f of the way from source a to b."""
    report = report or (lambda stage, step, total: None)
    near = a if f < 0.5 else b
    if path == "noise":
        return pipe.sample_latent(None, near.settings, report, noise=slerp(a.noise, b.noise, f),
                                  velocity=blend(a.velocity, b.velocity, f))
    if path != "latent":
        raise KilnError(BAD_REQUEST, f"Unknown morph path {path!r}: use one of "
                        f"{', '.join(PATHS)}.")
    z_a = pipe.sample_latent(None, a.settings, report, noise=a.noise, velocity=a.velocity)
    if f <= 0.0:
        return z_a
    z_b = pipe.sample_latent(None, b.settings, report, noise=b.noise, velocity=b.velocity)
    if f >= 1.0:
        return z_b
    shift, scale = pipe.config.latent_shift, pipe.config.latent_scale
    return slerp((z_a - shift) * scale, (z_b - shift) * scale, f) / scale + shift


def morph(pipe, meta_a: dict, meta_b: dict, f: float, path: str = PATHS[0], progress=None):
    """The in-between at fraction f (0 is source a, 1 source b) as a Pipeline Result."""
    import time
    report = progress or (lambda stage, step, total: None)
    timings: dict = {}
    t0 = time.perf_counter()
    report("condition", 0, 1)
    with torch.inference_mode():
        a = Source(pipe, source_request(meta_a, "The first source"))
        b = Source(pipe, source_request(meta_b, "The second source"))
        timings["condition"] = time.perf_counter() - t0
        with pipe._stage("sample", timings, report):
            z = latent_at(pipe, a, b, f, path, report)
    near = a if f < 0.5 else b
    meta = {"mode": "morph", "fraction": round(float(f), 4), "path": path,
            "sources": [_summary(meta_a), _summary(meta_b)],
            "prompt": _blend_name(meta_a, meta_b, f)}
    return pipe._finish(z, meta, dict(near.settings, refine_steps=0), timings, report)


def _summary(meta: dict) -> dict:
    return {k: meta[k] for k in ("mode", "prompt", "image", "seed") if meta.get(k) is not None}


def _blend_name(meta_a: dict, meta_b: dict, f: float) -> str:
    what = lambda m: m.get("prompt") or m.get("mode") or "?"          # noqa: E731
    return f"{what(meta_a)} -> {what(meta_b)} @ {f:.2f}"
