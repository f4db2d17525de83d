"""Ground-truth renderers: sphere tracing of SDF callables, and ray casting of triangle
meshes, both giving the same outputs.

`render(sdf_fn, rgb_fn, c2w, fov_deg, res)` and `render_mesh(vertices, faces, c2w, ...)`
return a dict for camera(s) c2w of shape (4, 4) or (V, 4, 4) (leading V kept):
  rgb    (..., H, W, 3)  colour composited over a white background (albedo, or shaded)
  alpha  (..., H, W)     1 on the object, 0 on the background (fractional if supersampled)
  depth  (..., H, W)     distance along the unit ray to the surface, 0 on the background
  normal (..., H, W, 3)  unit world-space surface normal facing the camera, 0 on background
  rays   (origins, dirs) each (..., H, W, 3), dirs unit (cameras.camera_rays)
Cameras follow cameras.py (OpenCV style). No gradients flow (these make training data).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from ..geometry.surface import sdf_normals
from .cameras import camera_rays, project

SdfFn = Callable[[torch.Tensor], torch.Tensor]


# ----------------------------------------------------------------------------- SDF tracing

def _sphere_interval(o, d, radius: float):
    """Entry and exit distances of rays with the ball |x| <= radius (o, d: (N, 3))."""
    b = (o * d).sum(-1)
    c = (o * o).sum(-1) - radius * radius
    disc = b * b - c
    s = disc.clamp(min=0).sqrt()
    return (-b - s).clamp(min=0), -b + s, disc > 0


def _march(sdf_fn, o, d, idx, t, t_far, max_steps: int, footprint: float, eps: float,
           min_step: float = 0.0):
    """March rays `idx` in place (t is updated). Returns (stopped, ran_out) index tensors:
    rays with sdf < max(eps, footprint * t), and rays still marching after max_steps.
    Steps are at least `min_step` (to leave a grazing contact; may skip thinner parts)."""
    stopped = []
    alive = idx
    for _ in range(max_steps):
        if alive.numel() == 0:
            break
        ta = t[alive]
        dist = sdf_fn(o[alive] + ta[:, None] * d[alive])
        done = dist < torch.clamp(footprint * ta, min=eps)
        stopped.append(alive[done])
        t_new = ta + dist.clamp(min=min_step)
        t[alive] = torch.where(done, ta, t_new)
        alive = alive[~done & (t_new < t_far[alive])]
    stopped = torch.cat(stopped) if stopped else idx[:0]
    return stopped, alive


def _refine(sdf_fn, o, d, t, iters: int):
    """Root polishing along rays that stopped just in front of a surface. Keeps `a`, the
    last point in front (sdf >= 0), and `hi`, the first point found behind (sdf < 0);
    steps by secant (fast even at oblique incidence, where sphere steps crawl) until the
    root is bracketed, then by regula falsi inside the bracket, so it never jumps through
    a thin part. Returns (t, sdf at t) of the best point found."""
    def f(tt):
        return sdf_fn(o + tt[:, None] * d)

    a, fa = t, f(t)
    hi, fhi = torch.full_like(t, float("inf")), torch.zeros_like(t)
    b = a + fa.clamp(min=0)
    for _ in range(iters):
        fb = f(b)
        step = b - a
        slope = (fb - fa) / torch.where(step.abs() > 1e-12, step, torch.ones_like(step))
        front = fb >= 0
        a, fa = torch.where(front, b, a), torch.where(front, fb, fa)
        hi, fhi = torch.where(front, hi, b), torch.where(front, fhi, fb)
        secant = torch.where(slope < -1e-3, b - fb / slope.clamp(max=-1e-3), a + fa)
        falsi = a - fa * (hi - a) / (fhi - fa).clamp(max=-1e-12)
        b = torch.where(torch.isfinite(hi), falsi, secant)
    fb = f(b)
    use_b = fb.abs() < fa.abs()
    return torch.where(use_b, b, a), torch.where(use_b, fb, fa)


def sphere_trace(sdf_fn: SdfFn, origins_nx3: torch.Tensor, dirs_nx3: torch.Tensor,
                 bound: float = 1.0, max_steps: int = 64, footprint: float = 0.0,
                 eps: float = 1e-4, refine: int = 4, accept: float = 1e-3
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances t (N,) to the first zero crossing of a 1-Lipschitz field along each ray
    and a hit mask (N,).

    1. Rays march from where they enter the ball of radius `bound` until
       sdf < max(eps, footprint * t) (cone tracing: `footprint` is about half a pixel's
       angle, so rays grazing an edge stop at the pixel's resolution instead of crawling).
    2. Stopped rays are polished together (`_refine`); |sdf| < `accept` is a hit.
    3. Rays that only passed close to an edge march on strictly (eps) from just past it
       and may hit what lies behind; those that find nothing certain within the step
       budget count as hits where they first stopped (the surface covers part of their
       pixel), those that leave the bound as misses."""
    o, d = origins_nx3, dirs_nx3
    t0, t_far, through = _sphere_interval(o, d, bound)
    t = t0.clone()
    hit = torch.zeros_like(through)
    stopped, ran_out = _march(sdf_fn, o, d, through.nonzero().squeeze(1), t, t_far,
                              max_steps, footprint, eps)
    stopped = torch.cat([stopped, ran_out])
    if stopped.numel() == 0:
        return t, hit
    t_stop = t[stopped].clone()
    t_ref, f_ref = _refine(sdf_fn, o[stopped], d[stopped], t_stop, refine)
    good = f_ref.abs() < accept
    t[stopped[good]] = t_ref[good]
    hit[stopped[good]] = True
    grazing, t_graze = stopped[~good], t_stop[~good]
    if grazing.numel() == 0:
        return t, hit
    near = float(footprint * t_far.max()) + accept
    close = sdf_fn(o[grazing] + t_graze[:, None] * d[grazing]).abs() < near
    t[grazing] = t_graze + 2 * near
    found, undecided = _march(sdf_fn, o, d, grazing, t, t_far, max(16, max_steps // 3), 0.0, eps,
                              min_step=near)
    if found.numel():
        ok = sdf_fn(o[found] + t[found, None] * d[found]).abs() < accept
        hit[found[ok]] = True
        undecided = torch.cat([undecided, found[~ok]])
    settle = torch.isin(grazing, undecided) & close      # nothing certain behind: edge pixel
    t[grazing[settle]] = t_graze[settle]
    hit[grazing[settle]] = True
    return t, hit


def shade(rgb: torch.Tensor, normal: torch.Tensor, alpha: torch.Tensor, dirs: torch.Tensor,
          ambient: float = 0.45, background: float = 1.0) -> torch.Tensor:
    """Simple lighting for display or augmentation: ambient + a headlight + a key light
    from above, applied to albedo `rgb` (..., 3) with normals; background stays white."""
    key = torch.tensor([0.3, -0.4, 0.87], dtype=rgb.dtype, device=rgb.device)
    key = key / key.norm()
    head = (-(normal * dirs).sum(-1)).clamp(min=0)
    lam = ambient + 0.35 * head + 0.3 * (normal @ key).clamp(min=0)
    lit = (rgb * lam[..., None]).clamp(0, 1)
    a = alpha[..., None]
    return lit * a + background * (1 - a) if background is not None else lit


def _pool(x: torch.Tensor, s: int) -> torch.Tensor:
    """Mean over s x s blocks of the two axes before the last: (..., H*s, W*s, C)."""
    *lead, H, W, C = x.shape
    return x.reshape(*lead, H // s, s, W // s, s, C).mean(dim=(-4, -2))


@torch.no_grad()
def render(sdf_fn: SdfFn, rgb_fn: Callable[[torch.Tensor], torch.Tensor] | None,
           c2w: torch.Tensor, fov_deg: float = 40.0, res: int = 64, *, supersample: int = 1,
           shaded: bool = False, bound: float = 1.0, max_steps: int = 64) -> dict:
    """Sphere-trace an SDF from camera(s) c2w (see the module docstring for outputs)."""
    c2w = torch.as_tensor(c2w, dtype=torch.float32)
    s = max(1, int(supersample))
    origins, dirs = camera_rays(c2w, fov_deg, res * s)
    shape = dirs.shape[:-1]
    o, d = origins.reshape(-1, 3), dirs.reshape(-1, 3)
    pixel_angle = 2 * math.tan(math.radians(fov_deg) / 2) / (res * s)
    t, hit = sphere_trace(sdf_fn, o, d, bound=bound, max_steps=max_steps, footprint=0.5 * pixel_angle)
    pts = o[hit] + t[hit, None] * d[hit]
    n = pts.shape[0]
    normal = torch.zeros_like(o)
    albedo = torch.zeros_like(o)
    if n:
        normal[hit] = sdf_normals(sdf_fn, pts)
        albedo[hit] = rgb_fn(pts).clamp(0, 1) if rgb_fn is not None else 0.8
    alpha = hit.to(o.dtype)
    depth = torch.where(hit, t, torch.zeros_like(t))
    return _finish(albedo, alpha, depth, normal, d, shape, s, shaded, c2w, fov_deg, res)


def _finish(albedo, alpha, depth, normal, d, shape, s, shaded, c2w, fov_deg, res) -> dict:
    color = shade(albedo, normal, alpha, d, background=None) if shaded else albedo
    rgb = color * alpha[:, None] + (1 - alpha[:, None])             # white background
    out = {"rgb": rgb.reshape(*shape, 3), "alpha": alpha.reshape(*shape),
           "depth": depth.reshape(*shape), "normal": normal.reshape(*shape, 3)}
    if s > 1:
        a = _pool(out["alpha"][..., None], s)
        out["rgb"] = _pool(out["rgb"], s)
        w = a.clamp(min=1e-8)
        out["depth"] = (_pool((out["depth"] * out["alpha"])[..., None], s) / w)[..., 0]
        nrm = _pool(out["normal"], s)
        out["normal"] = nrm / nrm.norm(dim=-1, keepdim=True).clamp(min=1e-8)
        out["alpha"] = a[..., 0]
    out["rays"] = camera_rays(c2w, fov_deg, res)
    return out


# ----------------------------------------------------------------------------- mesh casting

def _pixel_pairs(uv_fx3x2: torch.Tensor, res: int):
    """(triangle, pixel) candidate pairs: every pixel whose centre lies in the projected
    bounding box of a triangle. Returns (tri_k, pix_k, counts_f, tri_f)."""
    lo = torch.ceil(uv_fx3x2.min(dim=1).values - 0.5).long().clamp(0, res - 1)
    hi = torch.floor(uv_fx3x2.max(dim=1).values - 0.5).long().clamp(-1, res - 1)
    nx, ny = (hi[:, 0] - lo[:, 0] + 1).clamp(min=0), (hi[:, 1] - lo[:, 1] + 1).clamp(min=0)
    tri = ((nx > 0) & (ny > 0)).nonzero().squeeze(1)
    return tri, lo[tri], nx[tri], ny[tri]


def _expand(tri, lo, nx, ny, res: int):
    counts = nx * ny
    tri_rep = torch.repeat_interleave(tri, counts)
    start = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    k = torch.arange(tri_rep.numel()) - start                       # index inside the bbox
    nx_rep = torch.repeat_interleave(nx, counts)
    lo_rep = torch.repeat_interleave(lo, counts, dim=0)
    px, py = lo_rep[:, 0] + k % nx_rep, lo_rep[:, 1] + k // nx_rep
    return tri_rep, py * res + px


def raycast_mesh(vertices_vx3: torch.Tensor, faces_fx3: torch.Tensor, c2w: torch.Tensor,
                 fov_deg: float, res: int, chunk: int = 1 << 20):
    """First hit of every pixel ray of one camera (4, 4) with a triangle mesh: each
    triangle is tested (Möller-Trumbore) against the rays of the pixels inside its
    projected bounding box only.
    Returns t (H*W,) (inf on a miss), face index (H*W,) (-1 on a miss), barycentrics (H*W, 3)."""
    v = vertices_vx3.to(torch.float32)
    f = faces_fx3.long()
    origins, dirs = camera_rays(c2w, fov_deg, res)
    o, d = origins.reshape(-1, 3), dirs.reshape(-1, 3)
    uv, z = project(v, c2w, fov_deg, res)
    tri_uv = uv[f]                                                  # (F, 3, 2)
    behind = (z[f] <= 1e-6).any(1)                                  # straddles the camera plane
    tri_uv[behind] = torch.tensor([[0.0, 0.0], [float(res), float(res)], [0.0, 0.0]])
    tri, lo, nx, ny = _pixel_pairs(tri_uv, res)
    best_t = torch.full((res * res,), float("inf"))
    best_f = torch.full((res * res,), -1, dtype=torch.long)
    best_b = torch.zeros(res * res, 2)
    v0, e1, e2 = v[f[:, 0]], v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]
    counts = torch.cumsum(nx * ny, 0)
    a = 0
    while a < tri.numel():
        b = int(torch.searchsorted(counts, counts[a] - nx[a] * ny[a] + chunk, right=True))
        b = max(b, a + 1)
        tr, pix = _expand(tri[a:b], lo[a:b], nx[a:b], ny[a:b], res)
        t, bu, bv, m = _moller_trumbore(o[pix], d[pix], v0[tr], e1[tr], e2[tr])
        t = torch.where(m, t, torch.full_like(t, float("inf")))
        tmp = torch.full((res * res,), float("inf")).scatter_reduce(0, pix, t, "amin")
        win = m & (t == tmp[pix]) & (t < best_t[pix])
        wp = pix[win]
        best_t[wp], best_f[wp] = t[win], tr[win]
        best_b[wp] = torch.stack([bu[win], bv[win]], 1)
        a = b
    bary = torch.cat([1 - best_b.sum(1, keepdim=True), best_b], 1)
    return best_t, best_f, bary


def _moller_trumbore(o, d, v0, e1, e2):
    p = torch.cross(d, e2, dim=1)
    det = (e1 * p).sum(1)
    ok = det.abs() > 1e-12
    inv = 1.0 / torch.where(ok, det, torch.ones_like(det))
    tv = o - v0
    u = (tv * p).sum(1) * inv
    q = torch.cross(tv, e1, dim=1)
    w = (d * q).sum(1) * inv
    t = (e2 * q).sum(1) * inv
    m = ok & (u >= 0) & (w >= 0) & (u + w <= 1) & (t > 0)
    return t, u, w, m


@torch.no_grad()
def render_mesh(vertices_vx3: torch.Tensor, faces_fx3: torch.Tensor, c2w: torch.Tensor,
                fov_deg: float = 40.0, res: int = 64, *,
                color_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                supersample: int = 1, shaded: bool = False) -> dict:
    """Ray-cast a triangle mesh from camera(s) c2w; outputs as `render`, plus `face`
    (..., H, W) hit face index (-1 on background) at the output resolution when
    supersample == 1. `color_fn(face_idx_k, bary_kx3) -> rgb_kx3` colours the hits
    (default light grey)."""
    c2w = torch.as_tensor(c2w, dtype=torch.float32)
    cams = c2w.reshape(-1, 4, 4)
    s = max(1, int(supersample))
    v = torch.as_tensor(vertices_vx3, dtype=torch.float32)
    f = torch.as_tensor(faces_fx3).long()
    fn = torch.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]], dim=1)
    fn = fn / fn.norm(dim=1, keepdim=True).clamp(min=1e-12)
    outs = []
    for cam in cams:
        t, face, bary = raycast_mesh(v, f, cam, fov_deg, res * s)
        _, dirs = camera_rays(cam, fov_deg, res * s)
        d = dirs.reshape(-1, 3)
        hit = face >= 0
        normal = torch.zeros_like(d)
        nh = fn[face[hit]]
        flip = (nh * d[hit]).sum(1, keepdim=True) > 0
        normal[hit] = torch.where(flip, -nh, nh)
        albedo = torch.zeros_like(d)
        if hit.any():
            albedo[hit] = color_fn(face[hit], bary[hit]).clamp(0, 1) if color_fn is not None else 0.8
        alpha = hit.to(d.dtype)
        depth = torch.where(hit, t, torch.zeros_like(t))
        out = _finish(albedo, alpha, depth, normal, d, dirs.shape[:-1], s, shaded, cam, fov_deg, res)
        out["face"] = face.reshape(res * s, res * s)
        outs.append(out)
    if c2w.dim() == 2:
        return outs[0]
    stacked = {k: torch.stack([o[k] for o in outs]) for k in ("rgb", "alpha", "depth", "normal", "face")}
    stacked["rays"] = camera_rays(c2w, fov_deg, res)
    return stacked
