"""`python -m engine generate`: one prompt or picture -> FILE.glb + FILE.json."""

from __future__ import annotations

import json
import sys

from .errors import KilnError
from .protocol import EXTRACTORS


def add_arguments(p) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="text prompt, e.g. 'a red chair'")
    src.add_argument("--image", help="reference picture (PNG/JPEG; transparent or plain background)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="sampling steps (model default)")
    p.add_argument("--guidance", type=float, default=None, help="CFG scale (model default)")
    p.add_argument("--sampler", choices=("euler", "heun"), default=None)
    p.add_argument("--resolution", type=int, default=128, help="extraction grid resolution")
    p.add_argument("--faces", type=int, default=20000, help="face budget")
    p.add_argument("--extractor", choices=EXTRACTORS, default=None,
                   help="marching cubes, or FlexiCubes (keeps sharp edges); default: the model's")
    p.add_argument("--texture", type=int, default=None,
                   help="texture size in pixels (default: the model's, 512 for kiln-mini)")
    p.add_argument("--vertex-colors", action="store_true", help="vertex colours, no texture")
    p.add_argument("--model", default="kiln-mini", help="model name, folder or hub repo id")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--online", action="store_true", help="allow hub downloads")
    p.add_argument("--out", required=True, help="output .glb path (a .json sidecar is written beside it)")


def main(args) -> int:
    from .pipeline import Pipeline
    from .progress import StageBar
    bar = StageBar()
    try:
        pipe = Pipeline.from_pretrained(args.model, device=args.device, allow_online=args.online)
        settings = dict(seed=args.seed, steps=args.steps, guidance=args.guidance,
                        resolution=args.resolution, faces=args.faces, texture=args.texture,
                        texture_mode="vertex" if args.vertex_colors else "uv",
                        sampler=args.sampler, extractor=args.extractor, progress=bar)
        if args.prompt is not None:
            result = pipe.text_to_3d(args.prompt, **settings)
        else:
            result = pipe.image_to_3d(args.image, **settings)
        glb, sidecar = pipe.export(result, args.out)
    except KilnError as exc:
        bar.close()
        print(f"error ({exc.code}): {exc.message}", file=sys.stderr)
        return 2
    bar.close()
    print(json.dumps({"glb": str(glb), "json": str(sidecar), "timings": result.timings}))
    return 0
