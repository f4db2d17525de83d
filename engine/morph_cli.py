"""`python -m engine morph A.json B.json --steps N --out DIR`: N in-betweens of two Kiln
results (engine/morph.py has the road) -> DIR/NN-morph-F.glb + .json (+ thumbnail) each,
and DIR/morph-strip.png: the first source, the in-betweens and the second, in a row.

    morph chair.json mug.json --steps 4 --out morph/                 # fractions .2 .4 .6 .8
    morph chair.json mug.json --steps 4 --path noise --out morph/    # blend the starts

Each in-between is a morph request checked by protocol.validate_morph, as the server
checks the add-on's; every output is checked before the model loads. A refusal prints
`error (code): message` on stderr and exits 2.
"""

from __future__ import annotations

from pathlib import Path

from . import protocol
from .io import outputs

STRIP_NAME = "morph-strip.png"


def add_arguments(p) -> None:
    p.add_argument("a", metavar="A.json", help="the first result's sidecar (beside A.glb)")
    p.add_argument("b", metavar="B.json", help="the second result's sidecar")
    p.add_argument("--steps", type=int, default=4,
                   help=f"in-betweens to make (1-{protocol.MAX_MORPH_STEPS}; default 4)")
    p.add_argument("--path", choices=protocol.MORPH_PATHS, default=protocol.MORPH_PATHS[0],
                   help="latent: blend the two final latents (default); noise: blend the "
                   "flow's starting noise and the two conditions' velocities")
    p.add_argument("--model", default="kiln-mini", help="model name, folder or hub repo id")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--online", action="store_true", help="allow hub downloads")
    p.add_argument("--out", required=True, help="output folder")


def requests(args) -> list[dict]:
    """One checked morph request per in-between; their outputs checked too."""
    folder = outputs.check_out_folder(args.out, STRIP_NAME,
                                      "morph writes one GLB per in-between", "morph/")
    planned = []
    for i, f in enumerate(protocol.morph_fractions(args.steps)):
        out = folder / f"{i + 1:02d}-morph-{f:.2f}.glb"
        planned.append(protocol.validate_morph({"type": protocol.MORPH, "a": args.a,
                                                "b": args.b, "fraction": f, "path": args.path,
                                                "out": str(out)}))
        outputs.check_writable(out)
    return planned


def source_tile(sidecar: str, meta: dict):
    """The source's own thumbnail (the PNG its sidecar names) as (S, S, 4), or None."""
    import numpy as np
    from PIL import Image
    name = meta.get("thumbnail")
    path = Path(sidecar).with_name(name) if isinstance(name, str) and "/" not in name else None
    if path is None or not outputs.is_kiln_png(path):
        return None
    return np.asarray(Image.open(path).convert("RGBA"))


def main(args) -> int:
    from .progress import run_with_bar
    return run_with_bar(lambda bar: work(args, bar))


def work(args, bar) -> dict:
    """Check everything, load the model, make and export each in-between, the strip."""
    planned = requests(args)
    from .morph import morph, read_sidecar
    metas = [read_sidecar(planned[0]["a"]), read_sidecar(planned[0]["b"])]
    from .pipeline import Pipeline
    from .render.thumbnail import thumbnail_rgba
    pipe = Pipeline.from_pretrained(args.model, device=args.device, allow_online=args.online)
    made, tiles, seconds = [], [], []
    for p in planned:
        result = morph(pipe, metas[0], metas[1], p["fraction"], p["path"], progress=bar)
        glb, sidecar = pipe.export(result, p["out"])
        made.append({"fraction": p["fraction"], "glb": str(glb), "json": str(sidecar)})
        tiles.append((thumbnail_rgba(result.mesh), f"{p['fraction']:.2f}"))
        seconds.append(sum(result.timings.values()))
    strip = write_strip(planned[0], metas, tiles)
    return {"results": made, "strip": strip, "seconds_each": seconds}


def write_strip(first: dict, metas: list[dict], tiles: list) -> str:
    """DIR/morph-strip.png: the two sources' thumbnails (when they have one) at its ends."""
    from .render.contact_sheet import contact_sheet_png
    ends = [source_tile(first[k], m) for k, m in zip(("a", "b"), metas)]
    row = list(tiles)
    if ends[0] is not None:
        row.insert(0, (ends[0], f"0 {metas[0].get('prompt') or 'A'}"))
    if ends[1] is not None:
        row.append((ends[1], f"1 {metas[1].get('prompt') or 'B'}"))
    folder = Path(first["out"]).parent
    data = contact_sheet_png([t for t, _ in row], [c for _, c in row], columns=len(row))
    return str(outputs.write_atomic(folder / STRIP_NAME, data))
