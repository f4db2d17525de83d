"""`python -m engine generate`: a prompt, a picture, 1-4 posed pictures or nothing ->
FILE.glb + FILE.json.

    generate --prompt "a red chair" --out chair.glb
    generate --image ref.png --refine-steps 20 --out ref.glb
    generate --views front.png side.png --azimuths 0 90 [--elevations 20 20] --out x.glb
    generate --views front.png back.png --directions front back --out x.glb
    generate --unconditional --seed 3 --out surprise.glb
    generate --prompt "a red chair" --format splat --out chair.ply   (3D Gaussian splats)
    generate --prompts chairs.txt --out chairs/       (engine/prompt_list.py)

The flags become a generate request checked by protocol.validate_generate, as the
server checks the add-on's, so both take the same values and refuse with the same
sentences; the output path is checked before the model loads. A refusal prints
`error (code): message` on stderr and exits with status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

from . import protocol
from .config import SamplingConfig
from .errors import BAD_REQUEST, KilnError
from .io import outputs
from .protocol import DIRECTIONS, EXTRACTORS, SAMPLERS


def add_arguments(p) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="text prompt, e.g. 'a red chair'")
    src.add_argument("--image", help="reference picture (PNG/JPEG; transparent or plain background)")
    src.add_argument("--views", nargs="*", metavar="PICTURE",
                     help="1-4 pictures of one object (give each a direction with "
                     "--azimuths or --directions), reconstructed by the VAE encoder")
    src.add_argument("--unconditional", action="store_true",
                     help="no prompt, no picture: the model's null condition (surprise me)")
    src.add_argument("--prompts", metavar="FILE.txt",
                     help="a prompt list: one prompt a line, optionally 'PROMPT | SEED'; "
                     "--out is then a folder (one GLB each + contact-sheet.png)")
    p.add_argument("--azimuths", nargs="+", type=float, metavar="DEG",
                   help="--views: one azimuth per picture (0 front, 90 right, 180 back, "
                   "270 left)")
    p.add_argument("--elevations", nargs="+", type=float, metavar="DEG",
                   help="--views with --azimuths: one elevation per picture (default "
                   f"{protocol.DEFAULT_ELEVATION:g}; 90 looks from the top)")
    p.add_argument("--directions", nargs="+", choices=tuple(DIRECTIONS), metavar="NAME",
                   help=f"--views: one direction per picture ({', '.join(DIRECTIONS)})")
    p.add_argument("--refine-steps", type=int, default=None,
                   help="image or views: optimisation steps that fit the result to the "
                   "picture(s) (default 0: off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="sampling steps (model default)")
    p.add_argument("--guidance", type=float, default=None, help="CFG scale (model default)")
    p.add_argument("--sampler", choices=SAMPLERS, default=None)
    p.add_argument("--resolution", type=int, default=None,
                   help="extraction grid resolution (default: the model's, "
                   f"{SamplingConfig.resolution} for kiln-mini)")
    p.add_argument("--faces", type=int, default=None,
                   help=f"face budget (default: the model's, {SamplingConfig.faces} for "
                   "kiln-mini; 0 = no limit)")
    p.add_argument("--extractor", choices=EXTRACTORS, default=None,
                   help="marching cubes, or FlexiCubes (keeps sharp edges); default: the model's")
    p.add_argument("--texture", type=int, default=None,
                   help="texture size in pixels (default: the model's, 512 for kiln-mini)")
    p.add_argument("--vertex-colors", action="store_true", help="vertex colours, no texture")
    p.add_argument("--format", choices=protocol.FORMATS, default="glb",
                   help="glb: a textured mesh; splat: 3D Gaussian splats, a .ply as "
                   "3DGS viewers read it (--out chair.ply)")
    p.add_argument("--model", default="kiln-mini", help="model name, folder or hub repo id")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--online", action="store_true", help="allow hub downloads")
    p.add_argument("--out", required=True, help="output .glb path (a .json sidecar is "
                   "written beside it); with --prompts, a folder")


def _mode(args) -> str:
    if args.prompt is not None:
        return "text"
    if args.image is not None:
        return "image"
    return "views" if args.views is not None else "unconditional"


def request(args) -> dict:
    """The flags as a generate request, checked and normalised by validate_generate."""
    mode = _mode(args)
    msg = {"type": protocol.GENERATE, "mode": mode, "prompt": args.prompt,
           "image": args.image, "model": args.model, "out": args.out,
           "texture_mode": "vertex" if args.vertex_colors else "uv",
           "extractor": args.extractor, "sampler": args.sampler,
           "format": getattr(args, "format", "glb")}
    if mode == "views":
        msg["views"] = views(args.views, args.azimuths, args.elevations, args.directions)
    elif args.azimuths or args.elevations or args.directions:
        raise KilnError(BAD_REQUEST, "--azimuths, --elevations and --directions give the "
                        "directions of --views pictures: add --views PICTURE ..., or leave "
                        "them out.")
    msg.update({name: getattr(args, name) for name in protocol.NUMBER_FIELDS})
    return protocol.validate_generate(msg)


def views(pictures, azimuths, elevations, directions) -> list[dict]:
    """--views with --azimuths [--elevations] or --directions -> the request's "views";
    KilnError when the flags do not give one direction per picture."""
    n = len(pictures)
    if azimuths and directions:
        raise KilnError(BAD_REQUEST, "Give the pictures' directions one way: "
                        "--azimuths (with --elevations) or --directions, not both.")
    if elevations and not azimuths:
        raise KilnError(BAD_REQUEST, "--elevations goes with --azimuths: give "
                        "one azimuth per picture too, e.g. --azimuths 0 90.")
    given = azimuths or directions
    if n and not given:
        raise KilnError(BAD_REQUEST, "Give each --views picture its direction: "
                        "--azimuths 0 90 ... (0 front, 90 right, 180 back, 270 left) or "
                        f"--directions {' '.join(list(DIRECTIONS)[:min(n, 4)])}.")
    for flag, values in (("--azimuths", azimuths), ("--elevations", elevations),
                         ("--directions", directions)):
        if values and len(values) != n:
            raise KilnError(BAD_REQUEST, f"--views has {n} picture(s) but "
                            f"{flag} has {len(values)} value(s): give one per picture.")
    if directions:
        return [{"image": p, "direction": d} for p, d in zip(pictures, directions)]
    out = [{"image": p, "azimuth": a} for p, a in zip(pictures, azimuths or [])]
    for view, e in zip(out, elevations or []):
        view["elevation"] = e
    return out


def main(args) -> int:
    if args.prompts is not None and args.format != "glb":
        print("error (bad_request): --prompts writes one GLB per prompt; --format splat "
              "takes one --prompt, --image, --views or --unconditional.", file=sys.stderr)
        return 2
    if args.prompts is not None:               # a prompt list: engine/prompt_list.py
        from .prompt_list import main as list_main
        return list_main(args, request)
    from .progress import run_with_bar

    def work(bar) -> dict:
        params = request(args)
        out = Path(params["out"]).resolve()
        splat = params["format"] == "splat"
        outputs.check_writable(out, protocol.FORMAT_SUFFIXES[params["format"]])  # before work
        from .pipeline import Pipeline
        pipe = Pipeline.from_pretrained(args.model, device=args.device, allow_online=args.online)
        result = pipe.generate(params, progress=bar)
        written, sidecar = (pipe.export_splat if splat else pipe.export)(result, out)
        read = {"read_as": result.meta["read_as"]} if "read_as" in result.meta else {}
        return {"ply" if splat else "glb": str(written), "json": str(sidecar),
                "timings": result.timings, **read}
    return run_with_bar(work)
