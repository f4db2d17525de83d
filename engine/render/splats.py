"""A small differentiable Gaussian-splat rasteriser (3D Gaussian Splatting, Kerbl et al.
2023, with degree-0 colour), in plain torch on whatever device the splats are on.

    out = render_splats(means_nx3, scales_nx3, quats_nx4, colors_nx3, opacities_n,
                        c2w, fov_deg=40.0, res=128)
    out["rgb"] (res, res, 3) over a white background, out["alpha"] (res, res),
    out["depth"] (res, res): expected camera-space depth (0 where nothing is drawn)

Cameras follow cameras.py (OpenCV style, the tracer's and the training renders'), so a
splat render and `tracer.render_mesh` from the same c2w see the same picture. Scales are
standard deviations along the Gaussian's own axes (the .ply stores their logarithms),
quaternions are (w, x, y, z), opacities and colours lie in [0, 1].

The steps, as the paper's rasteriser takes them, without its CUDA tiles:
  1. world -> camera; splats behind NEAR are dropped;
  2. EWA projection: the image-plane covariance is Σ' = J W Σ Wᵀ Jᵀ, with Σ = R S Sᵀ Rᵀ,
     W the world-to-camera rotation and J the perspective Jacobian at the mean; then a
     low-pass filter widens it to Σ' + DILATION·I, and the opacity is scaled by
     sqrt(det Σ' / det(Σ' + DILATION·I)) so a splat smaller than a pixel keeps its mass
     instead of growing into a blob (Mip-Splatting's 2D filter; the reference 3DGS
     viewers widen by 0.3 px² without the scale, which shows only while splats are
     smaller than a pixel);
  3. each splat covers the pixels within 3 standard deviations of its projected mean;
  4. per pixel, the splats over it in depth order are composited front to back,
     C = Σ_i c_i α_i Π_{j<i} (1 - α_j), α_i = min(MAX_ALPHA, o_i exp(-½ dᵀ Σ'⁻¹ d)),
     pairs with α_i < MIN_ALPHA are skipped.
Step 4 runs over (splat, pixel) pairs, a band of image rows at a time, each band holding
at most `chunk` pairs, so memory stays bounded at any splat count. Every step is a torch
op: gradients reach means, scales, rotations, colours and opacities.
"""

from __future__ import annotations

import torch

from .cameras import focal_length

NEAR = 0.05               # camera-space depth below which a splat is not drawn
DILATION = 0.1            # px², the 2D low-pass filter's variance (Mip-Splatting's)
SIGMAS = 3.0              # a splat's footprint: this many standard deviations
MIN_ALPHA = 1.0 / 255.0   # pairs fainter than this are skipped (3DGS)
MAX_ALPHA = 0.99          # no single splat is fully opaque (keeps 1 - alpha > 0)
PAIR_CHUNK = 1 << 21      # (splat, pixel) pairs composited at once


def quaternion_matrices(quats_nx4: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (n, 3, 3) of quaternions (w, x, y, z), normalised first."""
    q = quats_nx4 / quats_nx4.norm(dim=1, keepdim=True).clamp(min=1e-12)
    w, x, y, z = q.unbind(1)
    rows = [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]
    return torch.stack(rows, 1).reshape(-1, 3, 3)


def covariances(scales_nx3: torch.Tensor, quats_nx4: torch.Tensor) -> torch.Tensor:
    """World-space covariances (n, 3, 3) = R S Sᵀ Rᵀ."""
    m = quaternion_matrices(quats_nx4) * scales_nx3[:, None, :]              # R S
    return m @ m.transpose(1, 2)


def project_splats(means_nx3, cov_nx3x3, c2w, fov_deg: float, res: int):
    """Screen-space splats: centres (n, 2) as (column, row) in pixel units (pixel
    centres at +0.5, as cameras.project), depth (n,), conics (n, 3) = the inverse 2D
    covariance's (a, b, c) for a dx² + 2 b dx dy + c dy², radii (n,) in pixels, the
    mask (n,) of splats in front of the camera and the factor (n,) that keeps each
    splat's drawn mass as the dilation spreads it (sqrt(det Σ' / det(Σ' + DILATION·I)))."""
    rot, pos = c2w[:3, :3], c2w[:3, 3]
    pc = (means_nx3 - pos) @ rot                                          # (n, 3) camera
    z = pc[:, 2]
    front = z > NEAR
    zc = torch.where(front, z, torch.full_like(z, 1.0))
    f = focal_length(fov_deg, res)
    centre = pc[:, :2] / zc[:, None] * f + res / 2
    zero = torch.zeros_like(zc)
    jac = torch.stack([f / zc, zero, -f * pc[:, 0] / zc ** 2,
                       zero, f / zc, -f * pc[:, 1] / zc ** 2], 1).reshape(-1, 2, 3)
    m = jac @ rot.T                                                       # J W, (n, 2, 3)
    cov2 = m @ cov_nx3x3 @ m.transpose(1, 2)                              # (n, 2, 2)
    a0, b, c0 = cov2[:, 0, 0], cov2[:, 0, 1], cov2[:, 1, 1]
    a, c = a0 + DILATION, c0 + DILATION
    det = (a * c - b * b).clamp(min=1e-12)
    kept = ((a0 * c0 - b * b).clamp(min=1e-12) / det).sqrt()             # (n,)
    conic = torch.stack([c / det, -b / det, a / det], 1)
    half = 0.5 * (a + c)
    big = half + (half * half - det).clamp(min=0).sqrt()                  # largest eigenvalue
    radius = SIGMAS * big.sqrt()
    return centre, z, conic, radius, front, kept


def _boxes(centre, radius, res: int):
    """Pixel boxes [lo, hi] (inclusive, (n, 2) each as (column, row)) of the pixel
    centres within `radius` of each centre; empty boxes have hi < lo."""
    r = radius.detach()[:, None]
    c = centre.detach()
    lo = torch.ceil(c - r - 0.5).long().clamp(0, res)
    hi = torch.floor(c + r - 0.5).long().clamp(-1, res - 1)
    return lo, hi


def _bands(lo_y, hi_y, width, res: int, chunk: int) -> list[tuple[int, int]]:
    """Row bands [r0, r1) holding at most `chunk` pairs each (a band is at least a row)."""
    per_row = torch.zeros(res + 1, dtype=torch.long, device=lo_y.device)
    per_row.index_add_(0, lo_y, width)
    per_row.index_add_(0, hi_y + 1, -width)
    counts = per_row.cumsum(0)[:res].tolist()
    bands, start, held = [], 0, 0
    for row, n in enumerate(counts):
        if held and held + n > chunk:
            bands.append((start, row))
            start, held = row, 0
        held += n
    bands.append((start, res))
    return bands


def _pairs(ids, lo, hi, r0: int, r1: int, res: int):
    """(splat, pixel) pairs of the splats `ids` whose boxes meet rows [r0, r1)."""
    y0, y1 = lo[ids, 1].clamp(min=r0), hi[ids, 1].clamp(max=r1 - 1)
    nx, ny = hi[ids, 0] - lo[ids, 0] + 1, y1 - y0 + 1
    keep = (nx > 0) & (ny > 0)
    ids, y0, nx, ny = ids[keep], y0[keep], nx[keep], ny[keep]
    counts = nx * ny
    splat = torch.repeat_interleave(ids, counts)
    start = torch.repeat_interleave(counts.cumsum(0) - counts, counts)
    k = torch.arange(splat.numel(), device=ids.device) - start
    nx_k = torch.repeat_interleave(nx, counts)
    px = lo[splat, 0] + k % nx_k
    py = torch.repeat_interleave(y0, counts) + k // nx_k
    return splat, px, py


def _composite(alpha_k, splat_k, pixel_k, rank_n, n: int):
    """Front-to-back weights α_k T_k of pairs: sorted by (pixel, depth rank), then an
    exclusive cumulative sum of log(1 - α) within each pixel's run gives T."""
    order = torch.sort(pixel_k * n + rank_n[splat_k], stable=True).indices
    alpha_k, splat_k, pixel_k = alpha_k[order], splat_k[order], pixel_k[order]
    log_keep = torch.log1p(-alpha_k.double())
    before = log_keep.cumsum(0) - log_keep                                # exclusive
    first = torch.ones_like(pixel_k, dtype=torch.bool)
    first[1:] = pixel_k[1:] != pixel_k[:-1]
    run = first.long().cumsum(0) - 1
    transmit = torch.exp(before - before[first][run]).to(alpha_k.dtype)
    return alpha_k * transmit, splat_k, pixel_k


def render_splats(means_nx3: torch.Tensor, scales_nx3: torch.Tensor, quats_nx4: torch.Tensor,
                  colors_nx3: torch.Tensor, opacities_n: torch.Tensor, c2w: torch.Tensor,
                  fov_deg: float = 40.0, res: int = 128, *, background=1.0,
                  supersample: int = 1, chunk: int = PAIR_CHUNK) -> dict:
    """Draw Gaussian splats from one camera c2w (4, 4); see the module docstring.
    `background`: a grey level or an RGB triple behind the splats. `supersample` s
    draws at s x res and averages s x s blocks (smoother edges for pictures)."""
    device, dtype = means_nx3.device, means_nx3.dtype
    c2w = torch.as_tensor(c2w, dtype=dtype, device=device)
    s = max(1, int(supersample))
    size = res * s
    n = means_nx3.shape[0]
    centre, z, conic, radius, front, kept = project_splats(
        means_nx3, covariances(scales_nx3, quats_nx4), c2w, fov_deg, size)
    opacities_n = opacities_n * kept
    lo, hi = _boxes(centre, radius, size)
    ids = (front & (hi >= lo).all(1) & (opacities_n.detach() >= MIN_ALPHA)).nonzero()[:, 0]
    rank = torch.empty(n, dtype=torch.long, device=device)
    rank[torch.argsort(z.detach())] = torch.arange(n, device=device)
    rgb = torch.zeros(size * size, 3, dtype=dtype, device=device)
    alpha = torch.zeros(size * size, dtype=dtype, device=device)
    depth = torch.zeros(size * size, dtype=dtype, device=device)
    width = (hi[ids, 0] - lo[ids, 0] + 1).clamp(min=0)
    for r0, r1 in _bands(lo[ids, 1], hi[ids, 1], width, size, chunk):
        inside = ids[(lo[ids, 1] < r1) & (hi[ids, 1] >= r0)]
        splat, px, py = _pairs(inside, lo, hi, r0, r1, size)
        if not splat.numel():
            continue
        dx = px.to(dtype) + 0.5 - centre[splat, 0]
        dy = py.to(dtype) + 0.5 - centre[splat, 1]
        a, b, c = conic[splat].unbind(1)
        power = -0.5 * (a * dx * dx + 2 * b * dx * dy + c * dy * dy)
        a_k = (opacities_n[splat] * torch.exp(power.clamp(max=0))).clamp(max=MAX_ALPHA)
        keep = a_k.detach() >= MIN_ALPHA
        w, splat, pixel = _composite(a_k[keep], splat[keep], (py * size + px)[keep], rank, n)
        rgb = rgb.index_add(0, pixel, w[:, None] * colors_nx3[splat])
        alpha = alpha.index_add(0, pixel, w)
        depth = depth.index_add(0, pixel, w * z[splat])
    bg = torch.as_tensor(background, dtype=dtype, device=device).expand(3)
    rgb = rgb + (1 - alpha)[:, None] * bg
    depth = depth / alpha.clamp(min=1e-8)
    out = {"rgb": rgb.reshape(size, size, 3), "alpha": alpha.reshape(size, size),
           "depth": depth.reshape(size, size)}
    if s > 1:
        out = {k: v.reshape(res, s, res, s, *v.shape[2:]).mean(dim=(1, 3))
               for k, v in out.items()}
    return out


def lit_colors(colors_nx3: torch.Tensor, normals_nx3: torch.Tensor, means_nx3: torch.Tensor,
               c2w: torch.Tensor) -> torch.Tensor:
    """The splats' colours under the tracer's simple lighting (tracer.shade) as seen from
    camera c2w, for pictures beside a `render_mesh(..., shaded=True)`: each normal is
    turned to face the camera, as the mesh renderer turns a hit face's."""
    from .tracer import shade
    c2w = torch.as_tensor(c2w, dtype=means_nx3.dtype, device=means_nx3.device)
    dirs = means_nx3 - c2w[:3, 3]
    dirs = dirs / dirs.norm(dim=1, keepdim=True).clamp(min=1e-12)
    facing = torch.where(((normals_nx3 * dirs).sum(1, keepdim=True) > 0), -normals_nx3,
                         normals_nx3)
    ones = torch.ones(len(means_nx3), dtype=means_nx3.dtype, device=means_nx3.device)
    return shade(colors_nx3, facing, ones, dirs, background=None)
