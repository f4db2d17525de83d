"""Quality metrics: surface sampling, Chamfer, normal consistency, PSNR, and the
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

from dataclasses import dataclass

import numpy as np

DEFAULT_POINTS = 2048
PSNR_CAP_DB = 100.0


# ----------------------------------------------------------------------------- sampling

@dataclass
class SurfaceSample:
    points_nx3: np.ndarray                  # float32
    normals_nx3: np.ndarray                 # float32, unit (outward for CCW faces)
    face_n: np.ndarray                      # int64, the face each point lies on
    bary_nx3: np.ndarray                    # float32 barycentric weights in that face
    colors_nx3: np.ndarray | None = None    # float32 in [0, 1] where known


def sample_surface(mesh, n: int = DEFAULT_POINTS, seed: int = 0) -> SurfaceSample:
    """n points uniformly on the surface of a Mesh (faces picked by area), with the
    face normal at each point. Raises ValueError for a mesh of zero area."""
    v = mesh.vertices_nx3.astype(np.float64)
    f = mesh.faces_fx3.astype(np.int64)
    if len(f) == 0:
        raise ValueError("cannot sample the surface of a mesh without faces")
    cross = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])      # (F, 3)
    double_area = np.linalg.norm(cross, axis=1)
    total = double_area.sum()
    if not total > 0:
        raise ValueError("cannot sample the surface of a mesh of zero area")
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(double_area) / total
    face = np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right").clip(0, len(f) - 1)
    r1, r2 = np.sqrt(rng.random(n)), rng.random(n)
    bary = np.stack([1.0 - r1, r1 * (1.0 - r2), r1 * r2], axis=1)           # (n, 3)
    points = np.einsum("nk,nkd->nd", bary, v[f[face]])
    normals = cross[face] / np.maximum(double_area[face], 1e-30)[:, None]
    return SurfaceSample(points.astype(np.float32), normals.astype(np.float32), face,
                         bary.astype(np.float32), mesh_colors(mesh, face, bary))


def mesh_colors(mesh, face_n: np.ndarray, bary_nx3: np.ndarray) -> np.ndarray | None:
    """Colours (n, 3) in [0, 1] of surface points given by face and barycentrics: from
    the vertex colours, else from the texture at interpolated UVs; None if neither."""
    f = mesh.faces_fx3[face_n].astype(np.int64)                              # (n, 3)
    if mesh.vertex_colors_nx3 is not None:
        c = mesh.vertex_colors_nx3.astype(np.float64) / 255.0
        return np.einsum("nk,nkd->nd", bary_nx3, c[f]).astype(np.float32)
    if mesh.texture_hxwx3 is not None and mesh.uvs_nx2 is not None:
        from ..geometry.texture import sample_texture
        uv = np.einsum("nk,nkd->nd", bary_nx3, mesh.uvs_nx2.astype(np.float64)[f])
        return (sample_texture(mesh.texture_hxwx3, uv) / 255.0).astype(np.float32)
    return None


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


def chamfer_l1(a_nx3: np.ndarray, b_mx3: np.ndarray) -> float:
    """1/2 (mean_a d(a, B) + mean_b d(b, A)), unsquared Euclidean distances."""
    d_ab, _ = nearest(a_nx3, b_mx3)
    d_ba, _ = nearest(b_mx3, a_nx3)
    return float(0.5 * (d_ab.mean() + d_ba.mean()))


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
    return float(0.5 * (cos_ab.mean() + cos_ba.mean()))


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
