"""Quality metrics: Chamfer, normal consistency, PSNR, and the
generation metrics of PointFlow (Yang et al. 2019): COV, MMD and 1-NNA.

Definitions (points are object-space, no per-shape normalisation; every asset already
fits the ball of radius 0.9):

- d(x, Y) = min_{y in Y} ||x - y||_2, the Euclidean nearest-neighbour distance
  (exact, by a k-d tree; scipy).
- Chamfer-L1 (reconstruction, as Occupancy Networks report it):
      CD_L1(X, Y) = 1/2 * ( mean_{x in X} d(x, Y) + mean_{y in Y} d(y, X) )
  i.e. the mean of the two directions of mean (unsquared) nearest distances.
- PointFlow Chamfer (generation metrics), squared distances summed over both directions:
      CD(X, Y) = mean_{x in X} d(x, Y)^2 + mean_{y in Y} d(y, X)^2
- Normal consistency: 1/2 * ( mean_x |n_x . n_NN(x in Y)| + mean_y |n_y . n_NN(y in X)| ),
  orientation-agnostic (absolute cosine), 1 for identical surfaces.
- Against an exact SDF (the FlexiCubes benchmark's analytic shapes): the same Chamfer-L1,
  with mesh -> surface |sdf| at mesh samples and surface -> mesh the exact
  point-to-triangle distance from true-surface samples; normal consistency there is
  oriented (a flipped face counts -1): `exact_surface_quality`.
- PSNR = 10 log10(max^2 / MSE) over all pixels and channels, capped at 100 dB.
- Over a generated set G and a reference set R with D = CD:
      COV  = |{ argmin_{r in R} D(g, r) : g in G }| / |R|      (ties: the first reference)
      MMD  = mean_{r in R} min_{g in G} D(g, r)
      1-NNA: every cloud of G u R is labelled by the set of its leave-one-out nearest
             neighbour; 1-NNA is the fraction labelled correctly (50% is ideal). Ties
             count fractionally: a cloud whose nearest distance is shared by several
             others scores the fraction of those from its own set (random tie-breaking
             in expectation). So two independent samples of one distribution give ~50%;
             G = R exactly (memorisation) gives 0% because each cloud's nearest
             neighbour is its twin in the other set; one shape repeated in both sets
             (all ties) gives (k-1)/(2k-1); disjoint distributions give 100%.
"""

from __future__ import annotations

import numpy as np

from ..geometry.surface import SurfaceSample, mesh_colors, sample_surface  # noqa: F401 (re-exported)

DEFAULT_POINTS = 2048
PSNR_CAP_DB = 100.0


# ----------------------------------------------------------------------------- sampling
# (sample_surface, SurfaceSample, mesh_colors: engine.geometry.surface, the one mesh sampler)

def surface_from_sdf(sdf_fn, n: int = DEFAULT_POINTS, seed: int = 0,
                     resolution: int = 64) -> tuple[SurfaceSample, object]:
    """Extract a mesh from an SDF callable (marching cubes at `resolution`) and sample
    it -> (SurfaceSample, Mesh)."""
    from ..geometry.extract import extract_surface
    mesh = extract_surface(sdf_fn, resolution=resolution)
    return sample_surface(mesh, n, seed), mesh


def asset_surface(asset, n: int = DEFAULT_POINTS, seed: int = 0,
                  resolution: int = 64) -> SurfaceSample:
    """Surface points, normals and true colours of a procedural asset (engine.data):
    its SDF meshed at `resolution` (64-96), then sampled by area."""
    import torch
    sample, _ = surface_from_sdf(asset.sdf, n, seed, resolution)
    with torch.no_grad():
        rgb = asset.rgb(torch.from_numpy(sample.points_nx3))
    sample.colors_nx3 = rgb.float().clamp(0, 1).numpy()
    return sample


# ----------------------------------------------------------------------------- distances

def _tree(points_nx3):
    from scipy.spatial import cKDTree
    return cKDTree(np.asarray(points_nx3, dtype=np.float64))


def nearest(points_nx3: np.ndarray, target_mx3, tree=None) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance (n,) from each point to its nearest target point, and that
    point's index (n,)."""
    tree = tree if tree is not None else _tree(target_mx3)
    dist, idx = tree.query(np.asarray(points_nx3, dtype=np.float64), k=1)
    return dist, idx


def two_way_mean(a_to_b: np.ndarray, b_to_a: np.ndarray) -> float:
    """1/2 (mean of one direction + mean of the other): how Chamfer-L1 and normal
    consistency combine their two directions."""
    return float(0.5 * (np.mean(a_to_b) + np.mean(b_to_a)))


def chamfer_l1(a_nx3: np.ndarray, b_mx3: np.ndarray) -> float:
    """1/2 (mean_a d(a, B) + mean_b d(b, A)), unsquared Euclidean distances."""
    d_ab, _ = nearest(a_nx3, b_mx3)
    d_ba, _ = nearest(b_mx3, a_nx3)
    return two_way_mean(d_ab, d_ba)


def chamfer_pointflow(a_nx3: np.ndarray, b_mx3: np.ndarray) -> float:
    """PointFlow's CD: mean_a d(a, B)^2 + mean_b d(b, A)^2."""
    d_ab, _ = nearest(a_nx3, b_mx3)
    d_ba, _ = nearest(b_mx3, a_nx3)
    return float((d_ab ** 2).mean() + (d_ba ** 2).mean())


def normal_consistency(a_nx3, a_normals_nx3, b_mx3, b_normals_mx3) -> float:
    """Mean absolute cosine between each point's normal and its nearest neighbour's
    normal in the other set, averaged over both directions."""
    _, i_ab = nearest(a_nx3, b_mx3)
    _, i_ba = nearest(b_mx3, a_nx3)
    na, nb = np.asarray(a_normals_nx3, np.float64), np.asarray(b_normals_mx3, np.float64)
    cos_ab = np.abs((na * nb[i_ab]).sum(1))
    cos_ba = np.abs((nb * na[i_ba]).sum(1))
    return two_way_mean(cos_ab, cos_ba)


# ----------------------------------------------------------------------------- to an exact surface

def _point_triangle_distance(p, a, b, c):
    """Exact distance from points p (..., 3) to triangles (a, b, c) (..., 3)."""
    ab, ac = b - a, c - a
    n = np.cross(ab, ac)
    nn = (n * n).sum(-1)
    safe = np.maximum(nn, 1e-30)
    ap = p - a
    w_b = (np.cross(ap, ac) * n).sum(-1) / safe          # barycentrics of the projection
    w_c = (np.cross(ab, ap) * n).sum(-1) / safe
    inside = (w_b >= 0) & (w_c >= 0) & (w_b + w_c <= 1) & (nn > 1e-30)
    plane = np.abs((ap * n).sum(-1)) / np.sqrt(safe)
    edge = np.minimum(np.minimum(_segment_distance(p, a, b), _segment_distance(p, b, c)),
                      _segment_distance(p, c, a))
    return np.where(inside, plane, edge)


def _segment_distance(p, s0, s1):
    d = s1 - s0
    t = np.clip(((p - s0) * d).sum(-1) / np.maximum((d * d).sum(-1), 1e-30), 0, 1)
    return np.linalg.norm(p - (s0 + t[..., None] * d), axis=-1)


def _surface_to_mesh(verts, faces, surface_nx3, normals_nx3):
    """Exact distance of true-surface points to the mesh (nearest of the 16 triangles
    with the nearest centroids) and the oriented cosine of that triangle's normal."""
    from scipy.spatial import cKDTree
    tri = verts.astype(np.float64)[faces]                                    # (F, 3, 3)
    k = min(16, len(faces))
    _, cand = cKDTree(tri.mean(1)).query(surface_nx3, k=k)
    cand = cand.reshape(len(surface_nx3), k)
    d = _point_triangle_distance(surface_nx3[:, None], tri[cand, 0], tri[cand, 1], tri[cand, 2])
    best = cand[np.arange(len(surface_nx3)), d.argmin(1)]
    fn = np.cross(tri[best, 1] - tri[best, 0], tri[best, 2] - tri[best, 0])
    fn /= np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-30)
    return d.min(1), (fn * normals_nx3).sum(1)


def exact_surface_samples(sdf_fn, n: int, seed: int = 0, band: float = 0.02):
    """~n uniform points (n, 3) on the zero level set of an exact SDF and their unit
    normals (n, 3), float64 numpy: band candidates projected twice along exact-step
    gradients, kept where |sdf| < 1e-7 (geometry.surface.level_set_points)."""
    import torch
    from ..geometry.surface import LevelSetDraw, level_set_points, sdf_normals
    draw = LevelSetDraw(band=band, iterations=2, step=1e-6, accept=1e-7, dtype=torch.float64)
    with torch.no_grad():
        p = level_set_points(sdf_fn, n, torch.Generator().manual_seed(seed), draw)
        return p.numpy(), sdf_normals(sdf_fn, p, step=1e-6).numpy()


def exact_surface_quality(verts: np.ndarray, faces: np.ndarray, sdf_fn, samples: int = 20000,
                          seed: int = 0, surface=None) -> dict:
    """Chamfer-L1 and normal consistency of a mesh against the exact surface of sdf_fn
    (an exact SDF of float64 points), both directions on `samples` points each way:
    mesh -> surface |sdf| at area-uniform mesh points; surface -> mesh the exact
    point-to-triangle distance from `surface` = (points (S, 3), unit normals (S, 3)) on
    the true surface (default: exact_surface_samples). Normal consistency here is
    *oriented* (a flipped face counts -1)."""
    import torch
    from ..geometry.surface import area_samples, sdf_normals
    pm, _, _, nm = area_samples(verts, faces, samples, np.random.default_rng(seed))
    pm_t = torch.from_numpy(pm)
    with torch.no_grad():
        to_surface = sdf_fn(pm_t).abs().numpy()
        cos_mesh = (nm * sdf_normals(sdf_fn, pm_t, step=1e-6).numpy()).sum(1)
    surface = surface if surface is not None else exact_surface_samples(sdf_fn, samples, seed)
    to_mesh, cos_surf = _surface_to_mesh(verts, faces, *surface)
    return {"chamfer_l1": two_way_mean(to_surface, to_mesh),
            "normal_consistency": two_way_mean(cos_mesh, cos_surf),
            "mesh_to_surface": float(to_surface.mean()),
            "surface_to_mesh": float(to_mesh.mean())}


def near_sign_error(sdf_pred, sdf_true, band: float = 0.05) -> float:
    """Share of the points within `band` of the true surface whose predicted SDF has the
    wrong sign (a blob that covers a chair's volume scores about 0.5). Arrays or tensors
    of the same shape; NaN when no point is that near."""
    pred = np.asarray(sdf_pred.detach().cpu() if hasattr(sdf_pred, "detach") else sdf_pred)
    true = np.asarray(sdf_true.detach().cpu() if hasattr(sdf_true, "detach") else sdf_true)
    near = np.abs(true) < band
    if not near.any():
        return float("nan")
    return float(((pred > 0) != (true > 0))[near].mean())


def psnr(pred, target, max_val: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB of two images (any shape, same range)."""
    p = np.asarray(pred.detach().cpu() if hasattr(pred, "detach") else pred, np.float64)
    t = np.asarray(target.detach().cpu() if hasattr(target, "detach") else target, np.float64)
    mse = float(((p - t) ** 2).mean())
    if mse <= 0:
        return PSNR_CAP_DB
    return float(min(PSNR_CAP_DB, 10.0 * np.log10(max_val ** 2 / mse)))


# ----------------------------------------------------------------------------- sets of clouds

class CloudSet:
    """Point clouds with their k-d trees built once, for many pairwise Chamfers."""

    def __init__(self, clouds):
        self.clouds = [np.asarray(c, dtype=np.float64) for c in clouds]
        self.trees = [_tree(c) for c in self.clouds]
        self._subsets: dict[int, CloudSet] = {}

    def __len__(self) -> int:
        return len(self.clouds)

    def subset(self, points: int) -> "CloudSet":
        """The first `points` points of every cloud (a random subset for iid samples)."""
        if points not in self._subsets:
            self._subsets[points] = CloudSet([c[:points] for c in self.clouds])
        return self._subsets[points]


def _as_set(x) -> CloudSet:
    return x if isinstance(x, CloudSet) else CloudSet(x)


def pairwise_chamfer(set_a, set_b, rows=None, cols=None) -> np.ndarray:
    """PointFlow CD between every cloud of A and of B -> (|A|, |B|) (or the given
    rows x cols of it). set_a/set_b: CloudSet or a list of (n, 3) arrays."""
    A, B = _as_set(set_a), _as_set(set_b)
    rows = range(len(A)) if rows is None else rows
    cols = range(len(B)) if cols is None else cols
    out = np.zeros((len(rows), len(cols)))
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            d_ab, _ = B.trees[c].query(A.clouds[r], k=1)
            d_ba, _ = A.trees[r].query(B.clouds[c], k=1)
            out[i, j] = (d_ab ** 2).mean() + (d_ba ** 2).mean()
    return out


def nearest_reference(queries, references, coarse_points: int = 256,
                      shortlist: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Index (Q,) and CD (Q,) of the nearest reference of each query cloud by PointFlow
    CD on all points. References are first ranked on `coarse_points` points each; the
    best `shortlist` are then compared exactly (a speed-up that matches a full search
    unless the true nearest falls outside the coarse top-`shortlist`)."""
    Q, R = _as_set(queries), _as_set(references)
    k = min(shortlist, len(R))
    coarse = pairwise_chamfer(Q.subset(coarse_points), R.subset(coarse_points))
    best_idx, best_d = np.zeros(len(Q), dtype=np.int64), np.zeros(len(Q))
    for q in range(len(Q)):
        cand = np.argsort(coarse[q], kind="stable")[:k]
        exact = pairwise_chamfer(Q, R, rows=[q], cols=list(cand))[0]
        j = int(np.argmin(exact))
        best_idx[q], best_d[q] = cand[j], exact[j]
    return best_idx, best_d


def category_hits(clouds, categories, all_refs, ref_cats) -> list[bool]:
    """Per cloud: is its nearest reference (by CD, nearest_reference) of its category?"""
    idx, _ = nearest_reference(clouds, all_refs)
    return [ref_cats[j] == cat for j, cat in zip(idx, categories)]


def coverage(d_gen_ref: np.ndarray) -> float:
    """COV from the (|G|, |R|) distance matrix: fraction of references that are the
    nearest reference of at least one generated cloud."""
    matched = np.unique(np.argmin(d_gen_ref, axis=1))
    return float(len(matched) / d_gen_ref.shape[1])


def mmd(d_gen_ref: np.ndarray) -> float:
    """MMD from the (|G|, |R|) matrix: mean over references of the distance to the
    nearest generated cloud."""
    return float(d_gen_ref.min(axis=0).mean())


def one_nna(d_gg: np.ndarray, d_rr: np.ndarray, d_gr: np.ndarray, rel_tol: float = 1e-9) -> float:
    """1-NN classifier accuracy (leave-one-out) over G u R with fractional ties (see the
    module docstring). d_gg (|G|, |G|), d_rr (|R|, |R|), d_gr (|G|, |R|)."""
    ng, nr = d_gr.shape
    full = np.block([[d_gg, d_gr], [d_gr.T, d_rr]]).astype(np.float64)
    np.fill_diagonal(full, np.inf)
    label = np.r_[np.zeros(ng, bool), np.ones(nr, bool)]
    nearest_d = full.min(axis=1, keepdims=True)
    tied = full <= nearest_d * (1.0 + rel_tol) + 1e-15                       # (n, n)
    same = (tied & (label[None, :] == label[:, None])).sum(1)
    return float((same / tied.sum(1)).mean())


def generation_metrics(generated, references) -> dict:
    """COV, MMD (PointFlow CD) and 1-NNA of generated vs reference clouds. Percentages
    for COV and 1-NNA."""
    G, R = _as_set(generated), _as_set(references)
    d_gr = pairwise_chamfer(G, R)
    d_gg = _symmetric(G)
    d_rr = _symmetric(R)
    return {"cov": 100.0 * coverage(d_gr), "mmd_cd": mmd(d_gr),
            "one_nna": 100.0 * one_nna(d_gg, d_rr, d_gr)}


def _symmetric(S: CloudSet) -> np.ndarray:
    n = len(S)
    d = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            d[i, j] = d[j, i] = pairwise_chamfer(S, S, rows=[i], cols=[j])[0, 0]
    return d


# ----------------------------------------------------------------------------- colour

def dominant_color(mesh_or_colors, n: int = DEFAULT_POINTS, seed: int = 0) -> str | None:
    """Palette name (engine.data.palette) covering most of a surface: each colour sample
    votes for its nearest palette colour. Accepts a Mesh (area-uniform samples of its
    vertex colours or texture) or an (n, 3) array of colours (uint8, or float in [0, 1]).
    None for a mesh without colour or faces."""
    from ..data.palette import classify_rgb
    if hasattr(mesh_or_colors, "faces_fx3"):
        try:
            colors = sample_surface(mesh_or_colors, n, seed).colors_nx3
        except ValueError:
            return None
        if colors is None:
            return None
    else:
        colors = np.asarray(mesh_or_colors)
        if colors.dtype == np.uint8:
            colors = colors.astype(np.float64) / 255.0
    return classify_rgb(np.asarray(colors, np.float64).reshape(-1, 3))
