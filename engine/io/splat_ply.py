"""3D Gaussian Splatting .ply files (numpy only): the layout the reference viewers read.

One binary little-endian `vertex` element, every property a float32, in this order:

    x y z                  the mean
    nx ny nz               the surface normal (the reference trainer writes zeros; unused)
    f_dc_0 f_dc_1 f_dc_2   degree-0 spherical harmonics: rgb = 0.5 + SH_C0 * f_dc
    f_rest_0 .. f_rest_44  higher degrees (3 x 15 for degree 3), all zero: the colour does
                           not change with the view, and viewers that expect degree 3 load it
    opacity                the logit: alpha = sigmoid(opacity)
    scale_0 scale_1 scale_2    log standard deviations along the Gaussian's own axes
    rot_0 rot_1 rot_2 rot_3    the unit quaternion (w, x, y, z), local axes -> object

Coordinates are Kiln's object space (right-handed, Z up, as Blender's), which the header
says in a comment; the reference viewers take the file's axes as they are.
"""

from __future__ import annotations

import numpy as np

SH_C0 = 0.28209479177387814          # the degree-0 spherical harmonic, 1 / (2 sqrt(pi))
REST = 45                            # f_rest_* of degree 3: 15 coefficients x 3 colours
PROPERTIES = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
              + [f"f_rest_{i}" for i in range(REST)]
              + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])
ALPHA_LIMIT = 1e-6                   # alphas are kept in [limit, 1 - limit]: finite logits
SCALE_LIMIT = 1e-9                   # smallest standard deviation written (finite logs)


def rgb_to_dc(rgb_nx3: np.ndarray) -> np.ndarray:
    return (np.asarray(rgb_nx3, np.float64) - 0.5) / SH_C0


def dc_to_rgb(dc_nx3: np.ndarray) -> np.ndarray:
    return np.clip(0.5 + SH_C0 * np.asarray(dc_nx3, np.float64), 0.0, 1.0)


def header(count: int, comments=()) -> bytes:
    lines = ["ply", "format binary_little_endian 1.0"]
    lines += [f"comment {c}" for c in comments]
    lines.append(f"element vertex {int(count)}")
    lines += [f"property float {name}" for name in PROPERTIES]
    lines.append("end_header")
    return ("\n".join(lines) + "\n").encode("ascii")


def splat_ply_bytes(splats, comments=()) -> bytes:
    """The .ply bytes of an engine.geometry.splats.Splats; `comments` (ASCII lines) go
    into the header after Kiln's own."""
    n = splats.num_splats
    table = np.zeros((n, len(PROPERTIES)), dtype="<f4")
    table[:, 0:3] = splats.means_nx3
    table[:, 3:6] = splats.normals_nx3
    table[:, 6:9] = rgb_to_dc(splats.colors_nx3)
    col = 9 + REST
    alpha = np.clip(np.asarray(splats.opacities_n, np.float64), ALPHA_LIMIT, 1 - ALPHA_LIMIT)
    table[:, col] = np.log(alpha / (1.0 - alpha))
    table[:, col + 1:col + 4] = np.log(np.maximum(splats.scales_nx3, SCALE_LIMIT))
    q = np.asarray(splats.rotations_nx4, np.float64)
    table[:, col + 4:col + 8] = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    if not np.isfinite(table).all():
        raise ValueError("the splats hold values that are not finite numbers")
    own = ["generator kiln", "object space: right-handed, +z up (Blender's axes)"]
    return header(n, [*own, *comments]) + table.tobytes()
