"""kiln-mini in the modes of issue 12 (the real weights; scripts/modes_study.py measures
the same on 24 held-out assets): refining a two-picture reconstruction against its
pictures brings it closer to the held-out truth."""

import numpy as np
import pytest

from engine.errors import KilnError
from engine.evaluation import metrics as M


@pytest.fixture(scope="module")
def mini():
    from engine.pipeline import Pipeline
    return Pipeline.from_pretrained("kiln-mini", device="cpu")


def _two_pictures(asset, first: float):
    """Lit RGBA pictures (128 px) of a procedural asset from azimuths first, first + 90."""
    from engine.evaluation.run import one_thread, render_views
    from engine.posed import picture_cameras
    with one_thread():
        views, _ = render_views(asset.sdf, asset.rgb, picture_cameras([first, first + 90],
                                                                      [20.0, 20.0]), 128)
    return [{"image": v[:4].permute(1, 2, 0).numpy(), "azimuth": a, "elevation": 20.0}
            for v, a in zip(views, (first, first + 90))]


def test_refine_brings_two_view_reconstructions_closer_to_held_out_truth(mini):
    from engine.evaluation.run import heldout_asset, one_thread
    plain, refined = [], []
    for i, category in enumerate(("chair", "table", "mug")):
        asset = heldout_asset("vae", i, category)
        with one_thread():
            truth = M.asset_surface(asset, 1024, resolution=48).points_nx3
        views = _two_pictures(asset, 30.0 * i)
        for steps, scores in ((0, plain), (10, refined)):
            try:
                mesh = mini.views_to_3d(views, refine_steps=steps, resolution=48,
                                        texture_mode="vertex").mesh
                got = M.sample_surface(mesh, 1024).points_nx3
            except (KilnError, ValueError):      # no surface: the worst score of all
                got = np.zeros_like(truth)
            scores.append(M.chamfer_l1(got, truth))
    # v5's encoder starts closer, so refine gains less Chamfer-L1 than it did: these three
    # 0.099 -> 0.089 (v4's gained over 20%; the 24-asset study: 0.069 -> 0.068, and novel-
    # view PSNR 15.8 -> 16.5 dB). Without refine, or refining towards wrong cameras, the
    # ratio is 1 or more.
    assert np.mean(refined) < 0.95 * np.mean(plain), (plain, refined)
