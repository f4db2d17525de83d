"""Speed figures of the mesh stages, for `python -m engine bench` (medians in seconds).

Inputs are synthetic (engine.bench.shapes): an analytic torus SDF, and a field shaped like
the real decoder's (a 32-channel 64x64 tri-plane and a 2-layer 64-wide MLP) with a random
init around a sphere.
"""

from __future__ import annotations

from . import median_seconds
from .shapes import TriplaneSDF, smooth_rgb, torus_sdf


def bench_extract(resolutions=(64, 128, 256), repeats: int = 5) -> dict:
    """Median seconds of extract_surface on a torus SDF and on the tri-plane MLP field.

    Keys: extract_torus_<res>, extract_mlp_<res>. The torus isolates the extraction's own
    cost; the MLP adds the field queries of a decoder-sized field.
    """
    from ..geometry.extract import extract_surface

    field = TriplaneSDF().eval()
    out = {}
    for res in resolutions:
        reps = repeats if res <= 128 else max(1, repeats // 2)
        out[f"extract_torus_{res}"] = median_seconds(lambda: extract_surface(torus_sdf, res), reps)
        out[f"extract_mlp_{res}"] = median_seconds(lambda: extract_surface(field, res), reps)
    return out


def bench_texture(faces: int = 20000, size: int = 1024, repeats: int = 3) -> dict:
    """Median seconds of the mesh stages after extraction, on a torus extracted at 128.

    Keys: decimate_<faces>f (quadric decimation alone), clean_<faces>f (clean-up, decimation,
    normals), texture_<faces>f_<size> (unwrap + raster + colour query + padding, analytic
    colour), texture_<faces>f_<size>_snap (same, with a Newton step onto the SDF), and
    vertex_colors_<faces>f.
    """
    from ..geometry.extract import extract_surface
    from ..geometry.mesh_ops import clean, decimate
    from ..geometry.texture import bake_texture, vertex_colors

    dense = extract_surface(torus_sdf, 128)
    mesh = clean(dense, target_faces=faces)
    return {
        f"decimate_{faces}f": median_seconds(lambda: decimate(dense, faces), repeats),
        f"clean_{faces}f": median_seconds(lambda: clean(dense, faces), repeats),
        f"texture_{faces}f_{size}": median_seconds(lambda: bake_texture(mesh, smooth_rgb, size), repeats),
        f"texture_{faces}f_{size}_snap": median_seconds(
            lambda: bake_texture(mesh, smooth_rgb, size, sdf_fn=torus_sdf), repeats),
        f"vertex_colors_{faces}f": median_seconds(lambda: vertex_colors(mesh, smooth_rgb), repeats),
    }
