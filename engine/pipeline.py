"""Prompt or picture -> textured mesh: the whole engine behind one object.

    pipe = Pipeline.from_pretrained("kiln-mini")
    res = pipe.text_to_3d("a red chair", seed=1)
    pipe.export(res, "chair.glb")            # chair.glb + chair.json
    pipe.export_splat(res, "chair.ply")      # the same result as 3D Gaussian splats
    pipe.image_to_3d("ref.png", refine_steps=20)
    pipe.views_to_3d([{"image": "front.png", "direction": "front"},
                      {"image": "side.png", "azimuth": 90, "elevation": 20}])
    pipe.unconditional_to_3d(seed=3)          # "Surprise me": the null condition
    res = pipe.restyle("chair.npz", "a blue chair", strength=0.75)   # engine/restyle.py
    pipe.export_texture(res, "chair-blue.png")                     # + chair-blue.json

Stages (each timed, each reported to `progress(stage, step, total)`):
condition -> sample (views mode: encode) [-> refine, one report per step] -> decode ->
extract -> texture (-> export). Inside extract and texture
the geometry code ticks between pieces of work, and each tick reports the stage again (at
most every TICK_SECONDS): a progress callback that raises (the server's `Cancelled`) stops
those stages within a fraction of a second. Restyle: condition -> render -> encode ->
sample (from t = strength) -> decode -> texture (-> export).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import __version__
from .config import ModelConfig
from .errors import BAD_IMAGE, BAD_PROMPT, BAD_REQUEST, KilnError, NoSurface
from .protocol import EXTRACTORS, MAX_PROMPT_CHARS, check_prompt  # noqa: F401 (one limit)
from . import protocol
from .io import outputs, weights
from .models import Condition, build_model
from .reading import PromptReader, Reading
from .sampling import SAMPLERS, add_noise, cfg_velocity, initial_noise, partial_grid, time_grid

POINT_CHUNK = 131072
TICK_SECONDS = 0.02              # a stage's ticks report it again at most this often


@dataclass
class Result:
    mesh: object                          # engine.geometry.mesh.Mesh (None for restyle)
    timings: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    texture: object = None                # restyle: (S, S, 3) uint8 on the mesh's own UVs
    planes: object = None                 # the decoded tri-planes (1, 3, C, H, W): splats


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise KilnError("bad_request", "CUDA was asked for but torch sees no CUDA GPU: choose "
                        "device 'cpu' or 'auto', or install the CUDA build of torch.")
    return torch.device(device)


def no_surface(mode: str) -> NoSurface:
    """The sentence for a field that gave no surface at all (nothing to mesh or paint)."""
    if mode == "image":
        return NoSurface(BAD_IMAGE, "No surface came out of this picture: the model saw no "
                         "object in it at this seed. Try another seed, or a picture of one "
                         "object, large and centred, on a plain or transparent background.")
    if mode == "views":
        return NoSurface(BAD_IMAGE, "No surface came out of these pictures: the encoder saw "
                         "no object in them. Check each picture's direction, and use "
                         "pictures of one object, large and centred, on a plain background.")
    if mode == "unconditional":
        return NoSurface(BAD_REQUEST, "No surface came out at this seed: try another seed.")
    return NoSurface(BAD_PROMPT, "No surface came out of this prompt at this seed: try "
                     "another seed, or name one everyday object, e.g. 'a red chair'.")


def _fit_weights(model, state: dict, folder: Path) -> None:
    """Load `state` into `model`; KilnError(WEIGHTS_INVALID) unless every tensor fits."""
    own = model.state_dict()
    missing, unexpected = own.keys() - state.keys(), state.keys() - own.keys()
    wrong = sorted(k for k in own.keys() & state.keys() if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        example = (wrong or sorted(missing) or sorted(unexpected))[0]
        raise KilnError(weights.WEIGHTS_INVALID, f"The weights in {folder} do not fit its "
                        f"config.json ({len(missing)} missing, {len(unexpected)} unexpected, "
                        f"{len(wrong)} of the wrong shape, e.g. {example!r}): the folder "
                        f"mixes files of different models. {weights.REFETCH}")
    model.load_state_dict({k: v.float() for k, v in state.items()})


class Pipeline:
    def __init__(self, model, config: ModelConfig, device: torch.device, name: str,
                 text_encoder=None, folder: Path | None = None):
        self.model = model.eval().to(device)
        self.config = config
        self.device = device
        self.name = name
        self.folder = folder
        self._text_encoder = text_encoder
        self._reader = PromptReader.for_folder(folder, lambda texts: self.text_encoder(texts))
        self.reading = True               # read_prompt on (eval --no-reading turns it off)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, name_or_path: str = "kiln-mini", device: str = "auto",
                        allow_online: bool = False) -> "Pipeline":
        folder = weights.resolve(name_or_path, allow_online)
        config, state = weights.load_model_folder(folder)  # checksums before parsing
        model = build_model(config)
        _fit_weights(model, state, folder)
        return cls(model, config, pick_device(device), config.name, folder=folder)

    @property
    def text_encoder(self):
        if self._text_encoder is None:
            from .models.conditioners import offline_env, text_encoder
            offline_env()
            self._text_encoder = text_encoder(self.config, self.folder).to(self.device)
        return self._text_encoder

    def warm_up(self) -> None:
        """Load the text encoder so the first request pays no load time."""
        self.text_encoder

    # ------------------------------------------------------------------ conditions
    def encode_text(self, prompts: list[str]) -> Condition:
        tokens, mask, pooled = self.text_encoder(prompts)
        return Condition(tokens, mask, pooled).to(self.device)

    def read_prompt(self, prompt: str) -> Reading:
        """The prompt as the model reads it (engine/reading.py): words it never trained on
        read as the nearest names it knows; unchanged for a folder without a vocabulary."""
        if not self.reading or self._reader is None:
            return Reading(prompt)
        return self._reader.read(prompt)

    def encode_prompt(self, prompt: str, meta: dict) -> Condition:
        """One prompt's condition, as read; `meta` gains what the reading changed."""
        reading = self.read_prompt(prompt)
        meta.update(reading.meta())
        return self.encode_text([reading.text])

    def encode_image(self, images_bx4xSxS: torch.Tensor) -> Condition:
        tokens, mask, pooled = self.model.image_encoder(images_bx4xSxS.to(self.device))
        return Condition(tokens, mask, pooled)

    # ------------------------------------------------------------------ public API
    def text_to_3d(self, prompt: str, **settings) -> Result:
        prompt = check_prompt(prompt)
        meta = {"mode": "text", "prompt": prompt}
        return self._generate(lambda: self.encode_prompt(prompt, meta), meta, **settings)

    def image_to_3d(self, image, **settings) -> Result:
        """One picture -> DiT (image condition). refine_steps > 0 then fits the result to
        the picture, seen from the orbit camera that matches it best (refine.find_camera)."""
        from .imaging import frame_alike, load_reference
        pixels = load_reference(image, self.config.cond.image_size)          # (4, S, S)
        source = str(image) if isinstance(image, (str, Path)) else "array"

        def refine_to(z, settings, report, tick):
            from .posed import REACH, with_rays
            from .refine import find_camera
            target = frame_alike([image], self.config.vae.image_size, REACH)  # (1, 4, S, S)
            with torch.no_grad():
                cam = find_camera(self.model.vae, self.model.vae.decoder(z), target[0],
                                  tick=tick)
            return self.refine(z, with_rays(target, cam[None]), settings, report)

        return self._generate(lambda: self.encode_image(pixels[None]), {"mode": "image",
                              "image": source}, refine_to=refine_to, **settings)

    def views_to_3d(self, views, progress=None, **settings) -> Result:
        """1-4 pictures of one object with their directions -> VAE encoder -> latent.

        views: [{"image": path or (H, W, 3|4) array, "direction": "front"}, or {"image":
        .., "azimuth": degrees, "elevation": degrees}] (engine.protocol's convention:
        azimuth 0 front, 90 right, 180 back, 270 left). Backgrounds are removed and the
        pictures framed like training views (engine.posed). The latent is the encoder's
        mean (seed, steps, guidance and sampler play no part, except refine's ray draws)."""
        from .posed import posed_views
        protocol.check_view_count(views)
        angles = [protocol.view_direction(v, protocol.view_name(i, len(views)))
                  for i, v in enumerate(views)]
        settings = self._settings(mode="views", **settings)
        report = progress or (lambda stage, step, total: None)
        timings: dict[str, float] = {}
        with self._stage("encode", timings, report):
            x = posed_views([v["image"] for v in views], [a for a, _ in angles],
                            [e for _, e in angles], self.config.vae.image_size)  # (V, 10, S, S)
            z = self.model.vae.encoder(x[None].to(self.device))[0]          # mean (1, 3, c, h, w)
        meta = {"mode": "views", "views": [
            {"image": str(v["image"]) if isinstance(v["image"], (str, Path)) else "array",
             "azimuth": a, "elevation": e} for v, (a, e) in zip(views, angles)]}
        return self._finish(z, meta, settings, timings, report,
                            lambda z, st, rep, tick: self.refine(z, x, st, rep))

    def unconditional_to_3d(self, **settings) -> Result:
        """"Surprise me": the DiT's null condition (what it learned from condition dropout);
        guidance has no meaning without a condition and is not used."""
        settings.pop("guidance", None)
        return self._generate(lambda: self.model.dit.null_condition(1),
                              {"mode": "unconditional"}, **settings)

    def generate(self, params: dict, progress=None) -> Result:
        """Run a request checked by protocol.validate_generate (the CLI's and the
        server's): the mode picks the method, the request's fields are its settings."""
        settings = {k: params[k] for k in protocol.NUMBER_FIELDS if k in params}
        settings.update(texture_mode=params.get("texture_mode", "uv"), progress=progress,
                        sampler=params.get("sampler"), extractor=params.get("extractor"))
        mode = params["mode"]
        if mode == "image":
            return self.image_to_3d(params["image"], **settings)
        if mode == "views":
            return self.views_to_3d(params["views"], **settings)
        if mode == "unconditional":
            return self.unconditional_to_3d(**settings)
        return self.text_to_3d(params["prompt"], **settings)

    def restyle(self, mesh, prompt: str, strength: float = protocol.DEFAULT_STRENGTH,
                progress=None, **options) -> Result:
        """New colours for an existing mesh on its own UV layout (engine/restyle.py has
        the road): `mesh` is a path (the add-on's .npz, or a mesh file with UVs) or a
        restyle.RestyleMesh; options: seed, steps, guidance, texture, sampler. The Result
        carries the texture and no mesh: the geometry is the caller's, untouched."""
        from .geometry.texture import bake_uv_layout
        from .restyle import RestyleMesh, check_mesh, encoder_views, load_mesh, normalised
        prompt = check_prompt(prompt)
        strength = protocol.check_number("strength", strength, protocol.RESTYLE_NUMBER_FIELDS)
        mesh = check_mesh(mesh) if isinstance(mesh, RestyleMesh) else load_mesh(mesh)
        settings = dict(self._settings("restyle", **options), strength=float(strength))
        report = progress or (lambda stage, step, total: None)
        timings: dict[str, float] = {}
        read: dict = {}
        with self._stage("condition", timings, report):
            cond = self.encode_prompt(prompt, read)
        with self._stage("render", timings, report):
            points_nx3 = normalised(mesh.positions_nx3, mesh.triangles_tx3)
            views = encoder_views(mesh, points_nx3, self.config.vae.image_size)  # (4, 10, S, S)
        with self._stage("encode", timings, report):
            z0 = self.model.vae.encoder(views[None].to(self.device))[0]       # mean (1, 3, c, h, w)
        with self._stage("sample", timings, report):
            z = self.sample_latent(cond, settings, report, start=z0)
        with self._stage("decode", timings, report):
            planes = self.model.vae.decoder(z)                               # (1, 3, C, H, W)
        with self._stage("texture", timings, report) as tick:
            _, rgb_fn = self.field_fns(planes, tick)
            texture, covered = bake_uv_layout(points_nx3[mesh.triangles_tx3], mesh.uvs_tx3x2,
                                              rgb_fn, settings["texture"], tick=tick)
        meta = dict(mode="restyle", prompt=prompt, model=self.name, engine_version=__version__,
                    device=str(self.device), **settings, triangles=mesh.num_triangles,
                    texels_baked=round(covered, 4), **read)
        return Result(mesh=None, timings=timings, meta=meta, texture=texture)

    def export_texture(self, result: Result, out_png) -> tuple[Path, Path]:
        """Write a restyle's NAME.png (marked as Kiln's) + NAME.json; refuses (KilnError)
        to replace files Kiln did not write."""
        from .restyle import texture_png
        out_png = Path(out_png).expanduser()
        outputs.check_writable_texture(out_png)            # before any work is spent
        t0 = time.perf_counter()
        data = texture_png(result.texture)
        result.timings["export"] = time.perf_counter() - t0
        size = result.texture.shape
        sidecar = dict(result.meta, timings=result.timings,
                       counts={"triangles": result.meta.get("triangles"),
                               "texture": [int(size[1]), int(size[0])]})
        try:
            return outputs.write_texture(out_png.resolve(), data, sidecar)
        except OSError as exc:
            raise KilnError(BAD_REQUEST, f"Kiln cannot write {out_png} ("
                            f"{exc.strerror or type(exc).__name__}): choose another output "
                            "folder or check its permissions and free space.") from exc

    def refine(self, z, views_vx10xSxS, settings: dict, report):
        """refine.refine_latent with this pipeline's model, seed and step reports."""
        from .refine import refine_latent
        return refine_latent(self.model.vae, z, views_vx10xSxS, settings["refine_steps"],
                             seed=settings["seed"],
                             report=lambda step, total: report("refine", step, total))

    def export(self, result: Result, out_glb) -> tuple[Path, Path]:
        """Write NAME.glb + NAME.json + a thumbnail NAME.png; refuses (KilnError) to
        replace files Kiln did not write, such as a user's NAME.json or a model folder's
        config.json (a NAME.png not Kiln's is kept, and the result has no thumbnail)."""
        from .io.glb import glb_bytes
        from .render.thumbnail import thumbnail_png
        out_glb = Path(out_glb).expanduser()
        outputs.check_writable(out_glb)                   # before any work is spent
        out_glb = out_glb.resolve()
        t0 = time.perf_counter()
        data = glb_bytes(result.mesh, extras={"kiln": result.meta})
        t1 = time.perf_counter()
        thumb = thumbnail_png(result.mesh) if outputs.may_write_thumbnail(out_glb) else None
        result.timings["export"] = t1 - t0
        result.timings["thumbnail"] = time.perf_counter() - t1
        sidecar = dict(result.meta, timings=result.timings,
                       counts={"vertices": int(len(result.mesh.vertices_nx3)),
                               "faces": int(len(result.mesh.faces_fx3))})
        try:
            return outputs.write_result(out_glb, data, sidecar, thumb)
        except OSError as exc:
            raise KilnError(BAD_REQUEST, f"Kiln cannot write {out_glb} ("
                            f"{exc.strerror or type(exc).__name__}): choose another output "
                            "folder or check its permissions and free space.") from exc

    def export_splat(self, result: Result, out_ply) -> tuple[Path, Path]:
        """Write NAME.ply (the result as 3D Gaussian splats on its mesh, in the field's
        colours when the result carries its planes: engine/geometry/splats.py) + NAME.json
        + a thumbnail NAME.png of the splats; refuses (KilnError) as `export` does."""
        from .geometry.splats import splats_from_mesh
        from .io.splat_ply import splat_ply_bytes
        from .render.thumbnail import rgba_png, splat_thumbnail_rgba
        out_ply = Path(out_ply).expanduser()
        outputs.check_writable(out_ply, ".ply")           # before any work is spent
        out_ply = out_ply.resolve()
        t0 = time.perf_counter()
        sdf_fn, rgb_fn = (None, None) if result.planes is None else self.field_fns(result.planes)
        with torch.inference_mode():
            splats = splats_from_mesh(result.mesh, rgb_fn=rgb_fn, sdf_fn=sdf_fn,
                                      seed=int(result.meta.get("seed", 0)))
        t1 = time.perf_counter()
        data = splat_ply_bytes(splats, [f"kiln {__version__} model {self.name}"])
        t2 = time.perf_counter()
        thumb = (rgba_png(splat_thumbnail_rgba(splats))
                 if outputs.may_write_thumbnail(out_ply) else None)
        result.timings.update(splat=t1 - t0, export=t2 - t1,
                              thumbnail=time.perf_counter() - t2)
        result.meta.update(format="splat", splats=splats.num_splats)
        sidecar = dict(result.meta, timings=result.timings,
                       counts={"splats": splats.num_splats,
                               "vertices": int(len(result.mesh.vertices_nx3)),
                               "faces": int(len(result.mesh.faces_fx3))})
        try:
            return outputs.write_result(out_ply, data, sidecar, thumb, suffix=".ply")
        except OSError as exc:
            raise KilnError(BAD_REQUEST, f"Kiln cannot write {out_ply} ("
                            f"{exc.strerror or type(exc).__name__}): choose another output "
                            "folder or check its permissions and free space.") from exc

    # ------------------------------------------------------------------ stages
    def _settings(self, mode: str, seed: int = 0, steps: int | None = None,
                  guidance: float | None = None, resolution: int | None = None,
                  faces: int | None = None, texture: int | None = None,
                  texture_mode: str = "uv", sampler: str | None = None,
                  extractor: str | None = None, refine_steps: int | None = 0) -> dict:
        """The settings of one job, the model's defaults filled in; what plays no part in
        `mode` is left out (views: steps, guidance, sampler; unconditional: guidance)."""
        s = self.config.sampling
        settings = dict(seed=int(seed), steps=int(steps or s.steps),
                        guidance=float(s.guidance if guidance is None else guidance),
                        sampler=sampler or s.sampler, resolution=int(resolution or s.resolution),
                        faces=int(s.faces if faces is None else faces),
                        texture=int(texture or s.texture), texture_mode=texture_mode,
                        extractor=extractor or s.extractor,
                        refine_steps=protocol.check_number("refine_steps", refine_steps or 0))
        for name, choices in (("extractor", EXTRACTORS), ("sampler", protocol.SAMPLERS)):
            if settings[name] not in choices:
                raise KilnError(BAD_REQUEST, f"Unknown {name} '{settings[name]}': use one "
                                f"of {', '.join(choices)}.")
        protocol.check_refine(mode, settings["refine_steps"])
        drop = {"views": ("steps", "guidance", "sampler"), "unconditional": ("guidance",),
                "restyle": ("resolution", "faces", "texture_mode", "extractor", "refine_steps")}
        for name in drop.get(mode, ()):
            settings.pop(name)
        return settings

    def _generate(self, make_condition, meta: dict, progress=None, refine_to=None,
                  **options) -> Result:
        """Condition -> sampled latent -> `_finish`."""
        settings = self._settings(meta["mode"], **options)
        report = progress or (lambda stage, step, total: None)
        timings: dict[str, float] = {}
        with self._stage("condition", timings, report):
            cond = make_condition()
        with self._stage("sample", timings, report):
            z = self.sample_latent(cond, settings, report)
        return self._finish(z, meta, settings, timings, report, refine_to)

    def _finish(self, z, meta: dict, settings: dict, timings: dict, report,
                refine_to=None) -> Result:
        """Latent z (1, 3, c, h, w) [-> refine] -> decode -> extract -> texture.
        refine_to(z, settings, report, tick) -> z runs when settings ask for refine steps."""
        if settings["refine_steps"]:
            with self._stage("refine", timings, report, grad=True) as tick:
                z = refine_to(z, settings, report, tick)
        with self._stage("decode", timings, report):
            planes = self.model.vae.decoder(z)                               # (1, 3, C, H, W)
        with self._stage("extract", timings, report) as tick:
            mesh = self.extract(planes, settings["resolution"], settings["faces"],
                                settings["extractor"], tick=tick)
        if mesh.num_faces == 0:
            raise no_surface(meta["mode"])
        with self._stage("texture", timings, report) as tick:
            mesh = self.paint(planes, mesh, settings["texture"], settings["texture_mode"],
                              tick=tick)
        meta = dict(meta, model=self.name, engine_version=__version__, device=str(self.device),
                    **settings)
        return Result(mesh=mesh, timings=timings, meta=meta, planes=planes)

    @contextmanager
    def _stage(self, name: str, timings: dict, report, grad: bool = False):
        """Report, time and run one stage; yields its tick (see `_ticker`). Stages run in
        inference mode, except with `grad` (refine optimises the latent)."""
        report(name, 0, 1)
        t0 = time.perf_counter()
        with torch.inference_mode(not grad), torch.set_grad_enabled(grad):
            yield _ticker(report, name)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        timings[name] = time.perf_counter() - t0

    def sample_latent(self, cond: Condition, settings: dict, report,
                      start: torch.Tensor | None = None, noise: torch.Tensor | None = None,
                      velocity=None) -> torch.Tensor:
        """Noise -> latent z (1, 3, c, h, w) by the flow ODE with CFG (no guidance in the
        settings: the plain conditional model, as for the null condition). With `start`
        (a latent (1, 3, c, h, w), restyle) the path begins at t = settings["strength"]
        between it and the noise, and the steps are that part of the grid's. Morph gives
        its own starting `noise` (1, 3, c, h, w) and `velocity(x, t)` (engine/morph.py)."""
        x = self.start_noise(settings["seed"]) if noise is None else noise
        ts = time_grid(settings["steps"])
        if start is not None:
            x0 = (start - self.config.latent_shift) * self.config.latent_scale
            x = add_noise(x0, x, settings["strength"])
            ts = partial_grid(settings["steps"], settings["strength"])
        velocity = velocity or self.velocity(cond, settings)
        sampler = SAMPLERS[settings["sampler"]]
        x = sampler(velocity, x, ts.tolist(), lambda i, n, _x: report("sample", i, n))
        return x / self.config.latent_scale + self.config.latent_shift

    def start_noise(self, seed: int) -> torch.Tensor:
        """The flow's starting noise (1, 3, c, h, w) for `seed`."""
        v = self.config.vae
        shape = (1, 3, v.latent_channels, v.latent_size, v.latent_size)
        return initial_noise(shape, seed, self.device)

    def velocity(self, cond: Condition, settings: dict):
        """velocity(x, t) of the DiT under `cond` with the settings' guidance (CFG)."""
        return cfg_velocity(self.model.dit, cond, self.model.dit.null_condition(1),
                            settings.get("guidance", 1.0))

    def _chunked(self, fn, tick=None):
        """fn(points (1, K, 3) on the device) -> (1, K, ...) as a CPU function of (N, 3);
        tick() before each chunk of POINT_CHUNK points."""
        tick = tick or (lambda: None)

        def query(points_nx3):
            out = []
            for chunk in points_nx3.split(POINT_CHUNK):
                tick()
                out.append(fn(chunk.to(self.device, torch.float32)[None])[0])
            return torch.cat(out).float().cpu()
        return query

    def field_fns(self, planes, tick=None):
        """sdf_fn / rgb_fn over object-space points (N, 3) for the geometry stages."""
        field = self.model.vae.field
        return (self._chunked(lambda p: field(planes, p)[0], tick),
                self._chunked(lambda p: field(planes, p)[1], tick))

    def flexi_head_fn(self, planes):
        """points (K, 3) -> the field's raw FlexiCubes outputs (K, 24), or None when this
        model's FlexiCubes head was never fine-tuned."""
        field, v = self.model.vae.field, self.config.vae
        if not (v.flexi and v.flexi_res):
            return None
        return self._chunked(lambda p: field.flexi(planes, p))

    def extract(self, planes, resolution: int, faces: int, extractor: str = "mc", tick=None):
        """Field -> closed mesh within the face budget; extractor "mc" (marching cubes) or
        "flexicubes" (Kiln's FlexiCubes: the field's own weights and deformation where the
        model was fine-tuned for them, else sharp-feature vertex placement). tick: called
        between pieces of work (it may raise to stop)."""
        from .geometry.extract import extract_surface
        from .geometry.mesh import Mesh
        from .geometry.mesh_ops import clean
        sdf_fn, _ = self.field_fns(planes, tick)
        if extractor == "flexicubes":
            from .geometry.flexicubes import extract_flexicubes
            mesh = Mesh(*extract_flexicubes(sdf_fn, resolution,
                                            head_fn=self.flexi_head_fn(planes), tick=tick))
        else:
            mesh = extract_surface(sdf_fn, resolution=resolution, tick=tick)
        return clean(mesh, target_faces=faces, tick=tick)

    def paint(self, planes, mesh, size: int, mode: str, tick=None):
        from .geometry.texture import bake_texture, vertex_colors
        sdf_fn, rgb_fn = self.field_fns(planes, tick)
        if mode == "vertex":
            return vertex_colors(mesh, rgb_fn, tick=tick)
        return bake_texture(mesh, rgb_fn, size=size, sdf_fn=sdf_fn, tick=tick)


def _ticker(report, stage: str):
    """tick() for the work inside a stage: reports (stage, 0, 1) again -- the stage's own
    start event, so nothing new for a listener -- at most every TICK_SECONDS; the server's
    progress callback raises there once the job is cancelled."""
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        if now - last[0] >= TICK_SECONDS:
            last[0] = now
            report(stage, 0, 1)
    return tick
