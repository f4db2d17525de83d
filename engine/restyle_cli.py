"""`python -m engine restyle`: new colours for an existing mesh on its own UV layout ->
FILE.png + FILE.json (engine/restyle.py has the road and the mesh file's format).

    restyle --mesh chair.npz --prompt "a blue chair" --out chair-blue.png
    restyle --mesh chair.glb --up y --prompt "a green chair" --strength 0.6 --seed 3 --out g.png

The flags become a restyle request checked by protocol.validate_restyle, as the server
checks the add-on's, so both refuse with the same sentences; the output path is checked
before the model loads. A refusal prints `error (code): message` on stderr and exits 2.
"""

from __future__ import annotations

from pathlib import Path

from . import protocol
from .config import UP_ROTATIONS
from .io import outputs


def add_arguments(p) -> None:
    p.add_argument("--mesh", required=True,
                   help="the mesh: a .npz the add-on wrote, or a .glb/.gltf/.obj/.ply with a "
                   "UV map")
    p.add_argument("--prompt", required=True, help="what it should look like, e.g. 'a blue chair'")
    p.add_argument("--strength", type=float, default=None,
                   help="0-1: how far the colours may move from the mesh's own (default "
                   f"{protocol.DEFAULT_STRENGTH:g}; 1 starts from noise)")
    p.add_argument("--up", choices=tuple(UP_ROTATIONS), default="y",
                   help="up axis of a mesh file (glTF and most OBJ are Y-up; a .npz is Z-up)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None,
                   help="sampling steps of a whole path (model default; restyle runs "
                   "strength x steps of them)")
    p.add_argument("--guidance", type=float, default=None, help="CFG scale (model default)")
    p.add_argument("--sampler", choices=protocol.SAMPLERS, default=None)
    p.add_argument("--texture", type=int, default=None,
                   help="texture size in pixels (default: the model's)")
    p.add_argument("--model", default="kiln-mini", help="model name, folder or hub repo id")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--online", action="store_true", help="allow hub downloads")
    p.add_argument("--out", required=True,
                   help="output .png path (a .json sidecar is written beside it)")


def request(args) -> dict:
    """The flags as a restyle request, checked and normalised by validate_restyle."""
    msg = {"type": protocol.RESTYLE, "mesh": args.mesh, "prompt": args.prompt,
           "sampler": args.sampler, "model": args.model, "out": args.out}
    msg.update({name: getattr(args, name) for name in protocol.RESTYLE_NUMBER_FIELDS})
    return protocol.validate_restyle(msg)


def main(args) -> int:
    from .progress import run_with_bar

    def work(bar) -> dict:
        params = request(args)
        out = Path(params["out"]).resolve()
        outputs.check_writable_texture(out)      # before the model loads or any work
        from .pipeline import Pipeline
        from .restyle import load_mesh
        mesh = load_mesh(params["mesh"], up=args.up)
        pipe = Pipeline.from_pretrained(args.model, device=args.device, allow_online=args.online)
        options = {k: params[k] for k in ("seed", "steps", "guidance", "texture") if k in params}
        result = pipe.restyle(mesh, params["prompt"], params["strength"], progress=bar,
                              sampler=params["sampler"], **options)
        png, sidecar = pipe.export_texture(result, out)
        return {"texture": str(png), "json": str(sidecar), "timings": result.timings}
    return run_with_bar(work)
