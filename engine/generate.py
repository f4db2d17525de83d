"""`python -m engine generate`: one prompt or picture -> FILE.glb + FILE.json.

The flags become a generate request checked by protocol.validate_generate, as the
server checks the add-on's, so both take the same values and refuse with the same
sentences; the output path is checked before the model loads. A refusal prints
`error (code): message` on stderr and exits with status 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from . import protocol
from .errors import KilnError
from .io import outputs
from .protocol import EXTRACTORS


def add_arguments(p) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="text prompt, e.g. 'a red chair'")
    src.add_argument("--image", help="reference picture (PNG/JPEG; transparent or plain background)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="sampling steps (model default)")
    p.add_argument("--guidance", type=float, default=None, help="CFG scale (model default)")
    p.add_argument("--sampler", choices=("euler", "heun"), default=None)
    p.add_argument("--resolution", type=int, default=None,
                   help="extraction grid resolution (default 128)")
    p.add_argument("--faces", type=int, default=None,
                   help="face budget (default 20000; 0 = no limit)")
    p.add_argument("--extractor", choices=EXTRACTORS, default=None,
                   help="marching cubes, or FlexiCubes (keeps sharp edges); default: the model's")
    p.add_argument("--texture", type=int, default=None,
                   help="texture size in pixels (default: the model's, 512 for kiln-mini)")
    p.add_argument("--vertex-colors", action="store_true", help="vertex colours, no texture")
    p.add_argument("--model", default="kiln-mini", help="model name, folder or hub repo id")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--online", action="store_true", help="allow hub downloads")
    p.add_argument("--out", required=True, help="output .glb path (a .json sidecar is written beside it)")


def request(args) -> dict:
    """The flags as a generate request, checked and normalised by validate_generate."""
    msg = {"type": protocol.GENERATE, "mode": "text" if args.prompt is not None else "image",
           "prompt": args.prompt, "image": args.image, "model": args.model, "out": args.out,
           "texture_mode": "vertex" if args.vertex_colors else "uv",
           "extractor": args.extractor}
    msg.update({name: getattr(args, name) for name in protocol.NUMBER_FIELDS})
    return protocol.validate_generate(msg)


def main(args) -> int:
    from .progress import StageBar
    bar = StageBar()
    try:
        params = request(args)
        out = Path(params["out"]).resolve()
        outputs.check_writable(out)              # before the model loads or any work
        from .pipeline import Pipeline
        pipe = Pipeline.from_pretrained(args.model, device=args.device, allow_online=args.online)
        settings = {k: params[k] for k in protocol.NUMBER_FIELDS if k in params}
        settings.update(texture_mode=params["texture_mode"], sampler=args.sampler,
                        extractor=params["extractor"], progress=bar)
        if params["mode"] == "text":
            result = pipe.text_to_3d(params["prompt"], **settings)
        else:
            result = pipe.image_to_3d(params["image"], **settings)
        glb, sidecar = pipe.export(result, out)
    except KilnError as exc:
        bar.close()
        print(f"error ({exc.code}): {exc.message}", file=sys.stderr)
        return 2
    bar.close()
    print(json.dumps({"glb": str(glb), "json": str(sidecar), "timings": result.timings}))
    return 0
