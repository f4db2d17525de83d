"""Kiln's one training-data format: an asset store, from procedural assets, a user's mesh
files, or both. `engine dataset` and `engine train data` write it; every trainer and the
evaluation read it (engine.train.store.Store: store-*.safetensors + store.json, never
pickled).

Tensors, one row per asset (V views, P points, S = SURFACE_BANK):
  views    (V, 10, H, W) f16  what the encoder reads (engine.render.views)
  albedo   (V, 3, H, W)  f16  unshaded colour on white (rendering-loss target)
  c2w      (V, 4, 4)     f32  the cameras (asset_cameras of the asset's key)
  points   (P, 3)        f32  half around the surface (jitter 0.005/0.015/0.04), half
                              uniform in [-1, 1]^3; with
  sdf      (P,)          f32  the signed distance there (negative inside), and
  rgb      (P, 3)        f16  the colour of the nearest surface point. For a mesh these
                              points are the pool that fresh samples are drawn from.
  surface  (S, 3)        f32  points on the zero level set, area-uniform (thin parts too)
  normals  (S, 3)        f16  their outward unit normals
  category ()            i64  index into info["categories"] (-1: none)
  color    ()            i64  index into engine.data.palette.COLOR_NAMES (-1: unknown)
store.json: {"format": "kiln-assets", "version": 2, "fov", "views", "res", "points",
  "assets": one record per row ({"kind": "procedural", "seed"} or {"kind": "mesh",
  "source", "scale", "center", "up", "watertight"}, plus "replay": true for generations
  of an init model), "captions": one list per row, "categories": names, "skipped":
  [{"file", "reason"}] for the mesh files that could not be used}.
A procedural asset's truth is exact at any point (its seed rebuilds it); a mesh's is the
pool above, computed once (engine.data.meshes.MeshField).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..render.views import FOV_DEG, asset_cameras  # noqa: F401  (FOV_DEG: older imports)
from ..train.store import FORMAT, VERSION, Store

SURFACE_BANK = 4096             # points on each asset's zero level set
CAPTIONS_PER_ASSET = 4          # procedural captions written per asset
HALF_KEYS = ("views", "albedo", "rgb", "normals")


class single_thread:
    """Run torch on one intra-op thread inside the block (restored after). The SDF and
    tracing work here is many small ops: on a busy 2-core machine two threads made it
    ~40x slower (spinning workers); processes are the way to use more cores."""

    def __enter__(self):
        self.saved = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.saved)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- points
# (an asset's surface bank: engine.geometry.surface.level_set_points)

def _full_bank(bank_sx3: torch.Tensor, n: int) -> torch.Tensor:
    """A bank of exactly n points: a tiny surface repeats what was found."""
    if len(bank_sx3) >= n:
        return bank_sx3[:n]
    if not len(bank_sx3):
        raise ValueError("the asset has no surface")
    return bank_sx3[torch.arange(n) % len(bank_sx3)]


# ----------------------------------------------------------------------------- sources

@dataclass
class AssetSource:
    """One asset to build: a procedural seed, or a mesh file with its text."""
    kind: str                              # "procedural" | "mesh"
    key: int                               # procedural seed / the mesh's camera key
    path: str | None = None                # mesh file
    name: str = ""                         # how the store records the file
    captions: list = field(default_factory=list)
    category: str | None = None
    up: str = "y"                          # the file's up axis (engine.config.UP_ROTATIONS)
    kiln_space: bool = False               # already in Kiln's object space: not rescaled
    extra: dict = field(default_factory=dict)   # copied into the asset's record


def procedural_sources(seeds) -> list[AssetSource]:
    return [AssetSource("procedural", int(s)) for s in seeds]


def library_sources(folder, up: str = "y", first_key: int = 0, kiln_space: bool = False,
                    extra: dict | None = None) -> list[AssetSource]:
    """Every mesh file under folder with its captions and category (captions.csv, NAME.txt
    or the file name: engine.data.meshes.asset_text); camera keys from first_key on.
    Raises ValueError when there is none."""
    from .meshes import MESH_SUFFIXES, asset_text, library_files, read_captions_csv
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder: give the folder that holds your meshes.")
    files = library_files(folder)
    if not files:
        raise ValueError(f"No mesh files ({', '.join(MESH_SUFFIXES)}) in {folder}: put your "
                         "meshes there (sub-folders are searched too).")
    csv_path = folder / "captions.csv"
    table = read_captions_csv(csv_path) if csv_path.is_file() else {}
    out = []
    for i, path in enumerate(files):
        caps, category = asset_text(path, folder, table)
        out.append(AssetSource("mesh", first_key + i, str(path), path.relative_to(folder).as_posix(),
                               caps, category, up, kiln_space, dict(extra or {})))
    return out


# ----------------------------------------------------------------------------- examples

def make_example(seed: int, n_views: int = 4, res: int = 64, n_points: int = 4096,
                 n_captions: int = CAPTIONS_PER_ASSET) -> dict:
    """One procedural asset as a store row (see the module docstring); deterministic."""
    with single_thread(), torch.no_grad():
        return _procedural(AssetSource("procedural", int(seed)), n_views, res, n_points, n_captions)


def make_mesh_example(path, key: int = 0, n_views: int = 4, res: int = 64,
                      n_points: int = 16384, up: str = "y") -> dict:
    """One mesh file as a store row (see the module docstring). Raises ValueError (or the
    parser's own error) for a file that cannot be used."""
    src = AssetSource("mesh", key, str(path), Path(path).name, up=up)
    with single_thread(), torch.no_grad():
        return _mesh(src, n_views, res, n_points)


def _procedural(src: AssetSource, n_views, res, n_points, n_captions) -> dict:
    from ..geometry.surface import level_set_points, sdf_normals
    from ..train.points import PointDraw, draw_points
    from .captions import captions
    from .shapes import make_asset
    asset = make_asset(src.key)
    ex, _ = _views_of(asset.sdf, asset.rgb, src.key, n_views, res)
    gen = torch.Generator().manual_seed(src.key)
    bank = _full_bank(level_set_points(asset.sdf, SURFACE_BANK, gen), SURFACE_BANK)
    points = draw_points(bank, PointDraw(count=n_points), gen)
    sdf, rgb = asset.node.eval(points)
    rng = np.random.default_rng([src.key, 11])      # kiln-mini's recipe drew them so
    ex.update(points=points, sdf=sdf, rgb=rgb.clamp(0, 1), surface=bank,
              normals=sdf_normals(asset.sdf, bank), color=asset.color_index,
              captions=[captions(asset, rng)[0] for _ in range(n_captions)],
              category=asset.category, record={"kind": "procedural", "seed": src.key})
    return ex


def _views_of(sdf_fn, rgb_fn, key: int, n_views: int, res: int):
    from ..render.views import field_views
    return field_views(sdf_fn, rgb_fn, asset_cameras(key, n_views), res)


def _mesh(src: AssetSource, n_views, res, n_points) -> dict:
    from ..train.points import PointDraw, draw_points
    from ..config import FIT_RADIUS
    from .meshes import MeshField, load_mesh
    from ..render.views import mesh_views
    m = load_mesh(src.path, src.up, None if src.kiln_space else FIT_RADIUS)
    ex, out = mesh_views(m.vertices_nx3, m.faces_fx3, m.colors, asset_cameras(src.key, n_views), res)
    truth = MeshField(m, seed=src.key)
    bank, normals = truth.surface_bank(SURFACE_BANK, np.random.default_rng([src.key, 9]))
    points = draw_points(bank, PointDraw(count=n_points), torch.Generator().manual_seed(src.key))
    sdf, rgb = truth(points)
    if not (sdf < 0).any():
        raise ValueError("nothing inside: the surface encloses no volume (a single open "
                         "sheet?); give it thickness or close it")
    ex.update(points=points, sdf=sdf, rgb=rgb, surface=bank, normals=normals,
              color=_dominant_color(out), captions=list(src.captions) or [src.name],
              category=src.category,
              record={"kind": "mesh", "source": src.name, "scale": m.scale, "center": m.center,
                      "up": src.up, "watertight": m.watertight, **src.extra})
    return ex


def _dominant_color(render_out: dict) -> int:
    from . import palette as pal
    hit = render_out["alpha"] > 0.5
    if not hit.any():
        return -1
    return pal.color_index(pal.classify_rgb(render_out["rgb"][hit].numpy()))


# ----------------------------------------------------------------------------- the store

def _by_value(ex: dict | None, to_numpy: bool) -> dict | None:
    """An example's tensors as numpy arrays (to_numpy) or back. A worker's result crosses
    to the parent by value this way: a torch tensor would travel as a shared-memory file
    descriptor that stays open while the parent holds it, and a store of thousands of
    assets (8 tensors each) runs past the open-file limit."""
    if ex is None:
        return None
    if to_numpy:
        return {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in ex.items()}
    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in ex.items()}


def _build_one(job):
    src, ex, error = _build_example(job)
    return src, _by_value(ex, to_numpy=True), error


def _build_example(job):
    src, n_views, res, n_points = job
    torch.set_num_threads(1)   # small ops: threads cost more than they give; use processes
    if src.kind == "procedural":
        return src, make_example(src.key, n_views, res, n_points), None
    try:
        with single_thread(), torch.no_grad():
            return src, _mesh(src, n_views, res, n_points), None
    except Exception as exc:  # a broken file (parsers raise all kinds): skip it, say why
        reason = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        return src, None, reason.strip()[:300]


def build_store(sources: list[AssetSource], n_views: int = 4, res: int = 64,
                n_points: int = 4096, workers: int = 2, progress=None):
    """Sources -> Store (rows in source order; broken mesh files skipped, one stderr line
    each and a summary). progress(done, total) after each asset. Raises ValueError when
    no asset could be built."""
    import multiprocessing as mp
    jobs = [(s, n_views, res, n_points) for s in sources]
    examples, skipped = [], []
    pool = mp.get_context("fork").Pool(workers) if workers > 1 and len(jobs) > 1 else None
    results = pool.imap(_build_one, jobs, chunksize=1) if pool else map(_build_one, jobs)
    try:
        for i, (src, ex, error) in enumerate(results):
            ex = _by_value(ex, to_numpy=False)
            if ex is None:
                log(f"skipping {src.name}: {error}")
                skipped.append({"file": src.name, "reason": error})
            else:
                examples.append(ex)
            if progress:
                progress(i + 1, len(jobs))
    finally:
        if pool:
            pool.close()
            pool.join()
    if skipped:
        log(f"{len(skipped)} of {len(jobs)} files skipped: "
            + ", ".join(s["file"] for s in skipped))
    if not examples:
        raise ValueError("No asset could be built: every mesh file was skipped (the reasons "
                         "are above). Repair or re-export them (e.g. as .glb) and run again.")
    return assemble(examples, {"views": n_views, "res": res, "points": n_points,
                               "skipped": skipped})


def assemble(examples: list[dict], meta: dict):
    """Store rows -> a Store (the category names become indices; see the module docstring)."""
    from .shapes import CATEGORIES
    names = list(CATEGORIES)
    names += sorted({ex["category"] for ex in examples} - set(names) - {None})
    keys = ("views", "albedo", "c2w", "points", "sdf", "rgb", "surface", "normals")
    tensors = {k: torch.stack([ex[k].float() for ex in examples]) for k in keys}
    tensors = {k: v.half() if k in HALF_KEYS else v for k, v in tensors.items()}
    tensors["category"] = torch.tensor([names.index(ex["category"]) if ex["category"] else -1
                                        for ex in examples])
    tensors["color"] = torch.tensor([int(ex["color"]) for ex in examples])
    info = {"format": FORMAT, "version": VERSION, "fov": FOV_DEG, **meta,
            "assets": [ex["record"] for ex in examples],
            "captions": [list(ex["captions"]) for ex in examples], "categories": names}
    return Store(tensors, info)
