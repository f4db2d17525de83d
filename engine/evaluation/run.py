"""`evaluate(model)`: Kiln's quality figures on held-out procedural assets.

Every asset here has a seed >= HELDOUT_SEED_BASE (training never goes there); the roles
(vae/image, reference, prompt, unseen) draw from separate seed blocks. Sections:

- vae: render 4 input views (as the training data does) + 2 novel views of an asset, at
  the encoder's resolution; encode (latent mean) -> decode -> sphere-trace the decoded
  field at the novel views -> PSNR of its albedo against the true albedo render (whole
  image, white background; `psnr_novel_volume`: the same by the training volume
  renderer); extract its mesh -> Chamfer-L1 and normal consistency against the true
  surface (and Chamfer-L1 from 1 input view only).
- generation: per category, k shapes generated from the captions of k held-out reference
  assets of that category, against those k references: COV, MMD (PointFlow CD) and 1-NNA
  on `points` surface points; per category and the mean over categories.
- text: over `n_prompts` prompts (the generation set plus more held-out captions):
  category accuracy (the category of the generated shape's nearest reference by CD among
  all references) and colour accuracy (dominant vertex colour == the prompt's main
  colour, over prompts that name it); the same on captions in the held-out phrasing
  (`captions(..., split="heldout")`). `reference_color_accuracy` is the ceiling: how
  often the prompts' own source assets have their main colour as dominant surface
  colour; `color_accuracy_clear` scores only those prompts. `vae_category_accuracy` is
  the other ceiling: the same nearest-reference test on the VAE section's 4-view
  reconstructions, i.e. what text-to-3D could reach if the DiT made perfect latents.
- image: pipe.image_to_3d on input view 0 (shaded RGBA, like the image condition in
  training) of the vae-section assets -> Chamfer-L1 against the true surface (object
  space: the model must also get the pose right).

Generation runs at low settings (grid 64, vertex colours), the model's default steps.
Metric definitions: engine/evaluation/metrics.py.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import statistics
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..render.views import FOV_DEG, asset_cameras, camera_draws, field_views
from . import metrics as M

# Seed blocks above HELDOUT_SEED_BASE, one per role.
ROLE_OFFSETS = {"vae": 0, "reference": 1_000_000, "prompt": 2_000_000,
                "unseen": 3_000_000, "image": 4_000_000}

# kiln-mini v2 targets (issue 10): (key path, comparison, value).
TARGETS = [
    (("vae", "psnr_novel"), ">=", 26.0),
    (("text", "vae_category_accuracy"), ">=", 90.0),
    (("vae", "refined", "psnr_novel"), ">=", 26.0),          # the same after test-time refine
    (("text", "vae_refined_category_accuracy"), ">=", 90.0),
    (("text", "category_accuracy"), ">=", 85.0),
    (("text", "color_accuracy"), ">=", 90.0),
    (("generation", "cov"), ">=", 45.0),
    (("generation", "one_nna"), "<=", 75.0),
    (("text", "unseen_category_accuracy"), ">=", 75.0),
    (("text", "unseen_color_accuracy"), ">=", 75.0),
]

INPUT_VIEWS = 4
NOVEL_CAMERAS = ((45.0, 30.0), (225.0, 12.0))     # (azimuth from the first input, elevation)
TRACE_STEP = 0.05           # largest sphere-tracing step on a learned (not exact) SDF
VOLUME_SAMPLES = 64         # samples per ray for the volume-rendered PSNR


@dataclass
class EvalSettings:
    n_vae: int = 24
    n_gen_per_category: int = 6
    n_prompts: int = 200
    n_unseen: int = 48
    n_image: int = 24
    points: int = 2048            # surface points per shape (PointFlow uses 2048)
    ref_resolution: int = 64      # marching-cubes grid for true asset surfaces
    gen_resolution: int = 64      # extraction grid for generated / decoded shapes
    steps: int | None = None      # sampling steps (None: the model's default)
    extractor: str | None = None  # mesh extractor of generated shapes (None: the model's default)
    refine_steps: int = 20        # VAE section: test-time refine steps of the "refined" rows (0: none)
    categories: list = field(default_factory=list)   # empty: all categories

    @classmethod
    def quick(cls) -> "EvalSettings":
        """Tiny counts for tests and smoke runs (seconds on a tiny model)."""
        return cls(n_vae=1, n_gen_per_category=2, n_prompts=5, n_unseen=2, n_image=1,
                   points=128, ref_resolution=24, gen_resolution=24, refine_steps=2,
                   categories=["chair", "mug"])


# ----------------------------------------------------------------------------- surface cache

def default_cache_dir() -> Path | None:
    """$KILN_EVAL_CACHE (empty: no cache), else ~/.cache/kiln/eval."""
    env = os.environ.get("KILN_EVAL_CACHE")
    if env is not None:
        return Path(env).expanduser() if env.strip() else None
    return Path.home() / ".cache" / "kiln" / "eval"


def data_version() -> str:
    """Hash of the procedural generator and of the sampler: cached surfaces of an older
    generator are never reused."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha1()
    for rel in ("data/shapes.py", "data/sdf.py", "data/palette.py", "evaluation/metrics.py",
                "geometry/extract.py"):
        path = root / rel
        h.update(path.read_bytes() if path.exists() else rel.encode())
    return h.hexdigest()[:12]


class SurfaceCache:
    """True asset surfaces (points, normals, colours) on disk, keyed by seed, category,
    point count, grid resolution and data_version(): references are deterministic, and
    meshing them is the slowest part of a re-run."""

    def __init__(self, folder: Path | None):
        self.folder = folder
        self.version = data_version() if folder is not None else ""

    def get(self, asset, points: int, resolution: int) -> M.SurfaceSample:
        with one_thread():
            return self._get(asset, points, resolution)

    def _get(self, asset, points: int, resolution: int) -> M.SurfaceSample:
        seed = asset.seed % 100_000
        if self.folder is None:
            return M.asset_surface(asset, points, seed=seed, resolution=resolution)
        path = self.folder / f"{asset.seed}-{asset.category}-{points}-{resolution}-{self.version}.npz"
        if path.exists():
            with np.load(path) as z:
                return M.SurfaceSample(z["points"], z["normals"], z["face"], z["bary"], z["colors"])
        sample = M.asset_surface(asset, points, seed=seed, resolution=resolution)
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, points=sample.points_nx3, normals=sample.normals_nx3,
                 face=sample.face_n, bary=sample.bary_nx3, colors=sample.colors_nx3)
        tmp.replace(path)
        return sample


# ----------------------------------------------------------------------------- held-out data

def heldout_seed(role: str, index: int) -> int:
    from ..train.cli import HELDOUT_SEED_BASE
    return HELDOUT_SEED_BASE + ROLE_OFFSETS[role] + int(index)


def heldout_asset(role: str, index: int, category: str | None = None):
    from ..data import make_asset
    with one_thread():
        return make_asset(heldout_seed(role, index), category=category)


@contextmanager
def one_thread():
    """Procedural SDFs are many small torch ops: one intra-op thread runs them faster
    (far faster on a busy machine, where spinning worker threads starve)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def caption_for(asset, split: str = "train") -> str:
    """One caption of an asset, deterministic per asset seed and split."""
    from ..data.captions import captions
    rng = np.random.default_rng([asset.seed, 7, 0 if split == "train" else 1])
    caps = captions(asset, rng, split=split)
    return caps if isinstance(caps, str) else caps[0]


def names_color(caption: str, color: str) -> bool:
    """Whether a caption names `color` (its base name or any synonym) as a word
    ("cream-colored" names white; "reddish" does not name red)."""
    from ..data import palette as pal
    words = [color] + pal.COLOR_SYNONYMS_TRAIN.get(color, []) + pal.COLOR_SYNONYMS_HELDOUT.get(color, [])
    text = caption.lower()
    return any(re.search(rf"(?<![a-z]){re.escape(w)}(?![a-z])", text) for w in words)


# ----------------------------------------------------------------------------- rendering

def training_cameras(seed: int, n: int = INPUT_VIEWS) -> torch.Tensor:
    """The cameras training renders asset `seed` from (engine.render.views.asset_cameras)."""
    return asset_cameras(seed, n)


def novel_cameras(seed: int) -> torch.Tensor:
    """Views the encoder never sees: halfway between the input azimuths, other elevations."""
    from ..render import orbit_cameras
    _, start = camera_draws(seed, INPUT_VIEWS)
    az, el = zip(*NOVEL_CAMERAS)
    return orbit_cameras(len(az), azimuth_deg=[start + a for a in az], elevation_deg=list(el),
                         fov_deg=FOV_DEG)


def render_views(sdf_fn, rgb_fn, c2w: torch.Tensor, res: int) -> tuple[torch.Tensor, dict]:
    """Views as the VAE encoder reads them (engine.render.views): (V, 10, H, W), and the raw
    render dict (its "rgb" is the albedo)."""
    tensors, out = field_views(sdf_fn, rgb_fn, c2w, res)
    return tensors["views"], out


def capped(sdf_fn, step: float = TRACE_STEP):
    """A learned SDF with its values capped, so sphere tracing takes bounded steps."""
    return lambda p: sdf_fn(p).clamp(max=step)


# ----------------------------------------------------------------------------- sections

@dataclass
class Prompt:
    text: str
    category: str
    color: str          # the source asset's main colour (what the caption names)
    seed: int           # the source asset's seed (the generation seed derives from it)
    named: bool         # the caption names the colour
    clear: bool         # the source asset's own dominant surface colour is that colour


class Evaluator:
    def __init__(self, pipe, settings: EvalSettings, report, cache: SurfaceCache):
        from ..data import CATEGORIES
        self.pipe = pipe
        self.cache = cache
        self.s = settings
        self.report = report
        self.categories = list(settings.categories) or list(CATEGORIES)
        self.gen_seconds: list[float] = []
        self.empty_meshes = 0
        self._items: dict[int, dict] = {}
        self._recon: list[tuple[str, np.ndarray]] = []  # (category, VAE reconstruction cloud)
        self._recon_refined: list[tuple[str, np.ndarray]] = []   # the same after refine
        self._true_color: dict[int, str | None] = {}     # asset seed -> dominant colour

    # ---- helpers
    def true_surface(self, asset) -> M.SurfaceSample:
        return self.cache.get(asset, self.s.points, self.s.ref_resolution)

    def cloud(self, mesh, seed: int = 0) -> M.SurfaceSample | None:
        """Surface samples of a mesh; None (counted in empty_meshes) when it has none or
        the generation gave none (mesh None)."""
        if mesh is None:
            self.empty_meshes += 1
            return None
        try:
            return M.sample_surface(mesh, self.s.points, seed)
        except ValueError:
            self.empty_meshes += 1
            return None

    def empty_cloud(self) -> np.ndarray:
        return np.zeros((self.s.points, 3), np.float32)

    def generate(self, prompt: str, seed: int):
        return self.timed_mesh(lambda: self.pipe.text_to_3d(
            prompt, seed=seed, steps=self.s.steps, extractor=self.s.extractor,
            resolution=self.s.gen_resolution, texture_mode="vertex"))

    def timed_mesh(self, make):
        """make() -> a pipeline result: its mesh, or None when the sample gave no surface
        (a miss to score, not a reason to stop the eval); the seconds go to gen_seconds."""
        from ..errors import NoSurface
        t0 = time.perf_counter()
        try:
            return make().mesh
        except NoSurface:
            return None
        finally:
            self.gen_seconds.append(time.perf_counter() - t0)

    def decode_planes(self, views_vx10xhxw: torch.Tensor, refine_steps: int = 0) -> torch.Tensor:
        """Encode views (latent mean, no sampling) [-> refine_steps of test-time refine
        against those views] -> decoded tri-planes (1, 3, C, H, W)."""
        vae = self.pipe.model.vae
        views = views_vx10xhxw.to(self.pipe.device)
        with torch.inference_mode():
            _, z, _ = vae.encode(views[None])
        if refine_steps:
            from ..refine import refine_latent
            z = refine_latent(vae, z, views, refine_steps, seed=0)
        with torch.inference_mode():
            return vae.decoder(z)

    def volume_render(self, planes, c2w: torch.Tensor, res: int, chunk: int = 4096):
        """RGB (V, res, res, 3) of the decoded field by the training renderer (VolSDF)."""
        from ..render import camera_rays
        from ..render.volume import render_rays
        origins, dirs = camera_rays(c2w, FOV_DEG, res)
        o, d = origins.reshape(1, -1, 3), dirs.reshape(1, -1, 3)
        gen = torch.Generator().manual_seed(0)
        field = self.pipe.model.vae.field
        colors = []
        with torch.inference_mode():
            for a in range(0, o.shape[1], chunk):
                c, _, _ = render_rays(lambda p: field(planes, p.to(self.pipe.device)),
                                      o[:, a:a + chunk], d[:, a:a + chunk],
                                      samples=VOLUME_SAMPLES, generator=gen)
                colors.append(c.float().cpu())
        return torch.cat(colors, 1).reshape(*dirs.shape)

    # ---- VAE
    def sign_error(self, sdf_fn, item: dict) -> float:
        """Near-surface (|sdf| < 0.05) sign error of a decoded field at the true surface
        points jittered by N(0, 0.02) (as the training store's near points)."""
        gen = torch.Generator().manual_seed(item["asset"].seed % (2**31))
        surface = torch.as_tensor(item["surface"].points_nx3, dtype=torch.float32)
        pts = surface + 0.02 * torch.randn(surface.shape, generator=gen)
        with torch.inference_mode():
            return M.near_sign_error(sdf_fn(pts).float().cpu(), item["asset"].sdf(pts))

    def view_item(self, i: int) -> dict:
        """Held-out asset i of the VAE / image sections (memoised): the asset, its 4 input
        views + 2 novel views (V, 10, S, S) at the encoder's resolution S rendered as the
        training data is, their albedo "rgb" (V, S, S, 3), cameras, and its true surface."""
        if i not in self._items:
            asset = heldout_asset("vae", i, self.categories[i % len(self.categories)])
            size = self.pipe.model.vae.cfg.image_size
            cams = torch.cat([training_cameras(asset.seed), novel_cameras(asset.seed)])
            with one_thread():
                views, out = render_views(asset.sdf, asset.rgb, cams, size)
            self._items[i] = {"asset": asset, "views": views, "rgb": out["rgb"], "cams": cams,
                              "alpha": out["alpha"], "surface": self.true_surface(asset)}
        return self._items[i]

    def vae(self) -> dict:
        """Reconstructions of held-out assets: from 1 and 4 input views as encoded, and
        from 4 views after `refine_steps` of test-time refine ("refined": what Kiln's
        Pictures mode with refine makes)."""
        rows = {"chamfer_l1_1view": []}
        refined = {}
        for i in range(self.s.n_vae):
            self.report("vae", i, self.s.n_vae)
            item = self.view_item(i)
            views = item["views"]
            pts = self.surface_of(self.decode_planes(views[:1]))[1]
            rows["chamfer_l1_1view"].append(M.chamfer_l1(pts, item["surface"].points_nx3))
            scores, pts = self.score_planes(self.decode_planes(views[:INPUT_VIEWS]), item)
            self._recon.append((item["asset"].category, pts))
            for key, value in scores.items():
                rows.setdefault(key, []).append(value)
            if self.s.refine_steps:
                t0 = time.perf_counter()
                planes = self.decode_planes(views[:INPUT_VIEWS], self.s.refine_steps)
                scores, pts = self.score_planes(planes, item)
                scores["refine_seconds"] = time.perf_counter() - t0
                self._recon_refined.append((item["asset"].category, pts))
                for key, value in scores.items():
                    refined.setdefault(key, []).append(value)
        out = {k: _mean(v) for k, v in rows.items()}
        out["n"] = self.s.n_vae
        if refined:
            out["refined"] = {k: _mean(v) for k, v in refined.items()}
            out["refined"]["steps"] = self.s.refine_steps
        return out

    def score_planes(self, planes, item: dict) -> tuple[dict, np.ndarray]:
        """Chamfer-L1, normal consistency, near-surface sign error and novel-view PSNR
        (sphere-traced and volume-rendered) of decoded tri-planes against a held-out
        asset -> (scores, the reconstruction's surface points (N, 3))."""
        true = item["surface"]
        got, pts, sdf_fn, rgb_fn = self.surface_of(planes)
        truth, cams_novel = item["rgb"][INPUT_VIEWS:], item["cams"][INPUT_VIEWS:]
        res = item["views"].shape[-1]
        _, pred = render_views(capped(sdf_fn), rgb_fn, cams_novel, res)
        scores = {"chamfer_l1": M.chamfer_l1(pts, true.points_nx3),
                  "normal_consistency": 0.0 if got is None else M.normal_consistency(
                      got.points_nx3, got.normals_nx3, true.points_nx3, true.normals_nx3),
                  "near_sign_error": self.sign_error(sdf_fn, item),
                  "psnr_novel": M.psnr(pred["rgb"], truth),
                  "psnr_novel_volume": M.psnr(self.volume_render(planes, cams_novel, res), truth)}
        return scores, pts

    def surface_of(self, planes):
        """The decoded field's extracted surface: (its SurfaceSample or None when empty,
        surface points (N, 3), sdf_fn, rgb_fn)."""
        from ..geometry.extract import extract_surface
        sdf_fn, rgb_fn = self.pipe.field_fns(planes)
        got = self.cloud(extract_surface(sdf_fn, resolution=self.s.gen_resolution))
        return got, (got.points_nx3 if got is not None else self.empty_cloud()), sdf_fn, rgb_fn

    # ---- references, generation, text
    def references(self) -> dict:
        """{category: (assets, CloudSet)} of k held-out references per category; also
        remembers each reference's true dominant colour."""
        k, refs = self.s.n_gen_per_category, {}
        for ci, cat in enumerate(self.categories):
            self.report("references", ci, len(self.categories))
            assets = [heldout_asset("reference", ci * 1000 + j, cat) for j in range(k)]
            samples = [self.true_surface(a) for a in assets]
            for a, smp in zip(assets, samples):
                self._true_color[a.seed] = M.dominant_color(smp.colors_nx3)
            refs[cat] = (assets, M.CloudSet([smp.points_nx3 for smp in samples]))
        return refs

    def prompt(self, asset, split: str = "train") -> Prompt:
        if asset.seed not in self._true_color:
            self._true_color[asset.seed] = M.dominant_color(self.true_surface(asset).colors_nx3)
        text = caption_for(asset, split)
        return Prompt(text, asset.category, asset.main_color, asset.seed,
                      named=names_color(text, asset.main_color),
                      clear=self._true_color[asset.seed] == asset.main_color)

    def prompt_set(self, refs: dict) -> list[Prompt]:
        """The references' captions first (the generation set), then more held-out
        captions round-robin over categories, up to n_prompts."""
        items = [self.prompt(a) for cat in self.categories for a in refs[cat][0]]
        i = 0
        while len(items) < self.s.n_prompts:
            self.report("prompts", len(items), self.s.n_prompts)
            items.append(self.prompt(heldout_asset(
                "prompt", i, self.categories[i % len(self.categories)])))
            i += 1
        return items

    def unseen_set(self) -> list[Prompt]:
        """Captions in the held-out phrasing (words and sentence shapes never trained on)."""
        return [self.prompt(heldout_asset("unseen", i, self.categories[i % len(self.categories)]),
                            "heldout") for i in range(self.s.n_unseen)]

    def run_prompts(self, items: list[Prompt], stage: str):
        """Generate every prompt -> (clouds (list of arrays), dominant colours)."""
        clouds, colors = [], []
        for i, item in enumerate(items):
            self.report(stage, i, len(items))
            mesh = self.generate(item.text, seed=item.seed % 100_000)
            got = self.cloud(mesh, seed=i)
            clouds.append(got.points_nx3 if got is not None else self.empty_cloud())
            colors.append(None if got is None or got.colors_nx3 is None
                          else M.dominant_color(got.colors_nx3))
        return clouds, colors

    def faithfulness(self, items: list[Prompt], clouds, colors, all_refs, ref_cats) -> dict:
        """Category accuracy (nearest reference by CD) and colour accuracy (over prompts
        naming the main colour; `color_accuracy_clear`: over those whose source asset's
        own dominant colour is its main colour), in %, overall and per category."""
        cat_ok = M.category_hits(clouds, [it.category for it in items], all_refs, ref_cats)
        col_ok = [c == it.color for c, it in zip(colors, items)]

        def summary(rows: list[int]) -> dict:
            named = [i for i in rows if items[i].named]
            clear = [i for i in named if items[i].clear]
            return {"category_accuracy": 100.0 * _mean([cat_ok[i] for i in rows]),
                    "color_accuracy": 100.0 * _mean([col_ok[i] for i in named]),
                    "color_accuracy_clear": 100.0 * _mean([col_ok[i] for i in clear]),
                    "n": len(rows), "color_n": len(named), "clear_n": len(clear)}

        out = summary(list(range(len(items))))
        out["per_category"] = {}
        for cat in self.categories:
            rows = [i for i, it in enumerate(items) if it.category == cat]
            if rows:
                part = summary(rows)
                out["per_category"][cat] = {"category": part["category_accuracy"],
                                            "color": part["color_accuracy"]}
        return out

    def generation_and_text(self) -> tuple[dict, dict]:
        refs = self.references()
        ref_cats = [c for c in self.categories for _ in range(len(refs[c][0]))]
        all_refs = M.CloudSet([p for c in self.categories for p in refs[c][1].clouds])
        items = self.prompt_set(refs)
        clouds, colors = self.run_prompts(items, "text")
        k = self.s.n_gen_per_category
        per_cat, start = {}, 0
        for cat in self.categories:
            per_cat[cat] = M.generation_metrics(clouds[start:start + k], refs[cat][1])
            start += k
        gen = {key: _mean([v[key] for v in per_cat.values()]) for key in ("cov", "mmd_cd", "one_nna")}
        gen.update(k=k, per_category=per_cat)
        text = self.faithfulness(items, clouds, colors, all_refs, ref_cats)
        text["vae_category_accuracy"] = self.recon_category_accuracy(all_refs, ref_cats)
        if self._recon_refined:
            text["vae_refined_category_accuracy"] = self.recon_category_accuracy(
                all_refs, ref_cats, refined=True)
        unseen_items = self.unseen_set()
        u_clouds, u_colors = self.run_prompts(unseen_items, "unseen")
        unseen = self.faithfulness(unseen_items, u_clouds, u_colors, all_refs, ref_cats)
        every = items + unseen_items
        text.update({f"unseen_{key}": unseen[key] for key in
                     ("category_accuracy", "color_accuracy", "color_accuracy_clear", "n",
                      "color_n")})
        text.update(prompt_reading=self.pipe.reading, unseen_read_n=sum(
            bool(self.pipe.read_prompt(it.text).words) for it in unseen_items))
        text.update(reference_color_accuracy=100.0 * _mean([it.clear for it in every]),
                    examples=[it.text for it in items[:3]] + [it.text for it in unseen_items[:3]])
        return gen, text

    def recon_category_accuracy(self, all_refs, ref_cats, refined: bool = False) -> float:
        """Category accuracy (%) of the VAE section's reconstructions (NaN without them)."""
        recon = self._recon_refined if refined else self._recon
        if not recon:
            return math.nan
        cats, clouds = zip(*recon)
        return 100.0 * _mean(M.category_hits(list(clouds), cats, all_refs, ref_cats))

    # ---- image to 3D
    def image(self) -> dict:
        """pipe.image_to_3d on input view 0 (RGBA) of the held-out VAE-section assets."""
        scores = []
        for i in range(self.s.n_image):
            self.report("image", i, self.s.n_image)
            item = self.view_item(i)
            rgba = item["views"][0, :4].permute(1, 2, 0).numpy()                # (S, S, 4)
            mesh = self.timed_mesh(lambda: self.pipe.image_to_3d(
                rgba, seed=i, steps=self.s.steps, resolution=self.s.gen_resolution,
                extractor=self.s.extractor, texture_mode="vertex"))
            got = self.cloud(mesh)
            pts = got.points_nx3 if got is not None else self.empty_cloud()
            scores.append(M.chamfer_l1(pts, item["surface"].points_nx3))
        return {"chamfer_l1": _mean(scores), "n": self.s.n_image}


def _mean(values) -> float:
    values = [float(v) for v in values]
    return float(np.mean(values)) if values else 0.0


# ----------------------------------------------------------------------------- entry point

def evaluate(model_name: str = "kiln-mini", n_vae: int | None = None,
             n_gen_per_category: int | None = None, n_prompts: int | None = None,
             n_unseen: int | None = None, n_image: int | None = None, quick: bool = False,
             device: str = "auto", steps: int | None = None, categories=None,
             extractor: str | None = None, refine_steps: int | None = None,
             progress=None, cache_dir: Path | str | None = "default",
             library: Path | None = None, library_prompts: int = 3,
             library_only: bool = False, reading: bool = True) -> dict:
    """All evaluation figures for a model (name, folder or hub id) as a JSON-ready dict.
    `quick` starts from EvalSettings.quick() (tiny counts); explicit counts override.
    progress(stage, i, total) is called as work advances. True surfaces are cached in
    `cache_dir` (default: default_cache_dir(); None: no cache; quick runs: no cache).
    `library`: an asset store of a user's meshes; adds the library section
    (engine.evaluation.library), alone with `library_only`. `reading`: prompts as the
    model reads them (engine/reading.py), the product's path; False: the DiT alone."""
    from ..pipeline import Pipeline
    s = EvalSettings.quick() if quick else EvalSettings()
    for name, value in (("n_vae", n_vae), ("n_gen_per_category", n_gen_per_category),
                        ("n_prompts", n_prompts), ("n_unseen", n_unseen), ("n_image", n_image),
                        ("steps", steps), ("categories", categories), ("extractor", extractor),
                        ("refine_steps", refine_steps)):
        if value is not None:
            setattr(s, name, list(value) if name == "categories" else value)
    report = progress or (lambda stage, i, total: None)
    t_all = time.perf_counter()
    pipe = Pipeline.from_pretrained(model_name, device=device)
    pipe.reading = reading
    pipe.warm_up()
    if cache_dir == "default":
        cache_dir = None if quick else default_cache_dir()
    ev = Evaluator(pipe, s, report, SurfaceCache(Path(cache_dir) if cache_dir else None))
    timings, result = {}, {}
    if library is not None:
        from .library import library_section
        t0 = time.perf_counter()
        result["library"] = library_section(pipe, Path(library), library_prompts,
                                            resolution=s.gen_resolution, steps=s.steps,
                                            extractor=s.extractor, report=report)
        timings["library"] = time.perf_counter() - t0
    if library_only:
        result.update(model=pipe.name, device=str(pipe.device), quick=bool(quick), timings=timings)
        return result
    t0 = time.perf_counter()
    result["vae"] = ev.vae()
    timings["vae"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result["generation"], result["text"] = ev.generation_and_text()
    timings["generation_and_text"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result["image"] = ev.image()
    timings["image"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_all
    timings["per_generation_median"] = statistics.median(ev.gen_seconds) if ev.gen_seconds else 0.0
    timings["generations"] = len(ev.gen_seconds)
    result.update(model=pipe.name, device=str(pipe.device), quick=bool(quick),
                  settings=asdict(s), empty_meshes=ev.empty_meshes, timings=timings,
                  targets=check_targets(result))
    return result


def check_targets(result: dict) -> dict:
    """{"vae.psnr_novel >= 26": {"value": .., "met": bool}, ...}"""
    out = {}
    for path, op, target in TARGETS:
        value = result
        for key in path:
            value = value.get(key, math.nan) if isinstance(value, dict) else math.nan
        met = value >= target if op == ">=" else value <= target
        out[f"{'.'.join(path)} {op} {target:g}"] = {"value": value, "met": bool(met)}
    return out
