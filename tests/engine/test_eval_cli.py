"""`python -m engine eval --quick` end to end on a random tiny model."""

import json
import math

import pytest

from engine import cli
from engine.evaluation.cli import format_table


@pytest.fixture(scope="module")
def quick_run(tiny_model_dir):
    """stdout and stderr of one in-process `eval --quick --json` run."""
    capture = pytest.MonkeyPatch()
    import io
    import sys
    out, err = io.StringIO(), io.StringIO()
    capture.setattr(sys, "stdout", out)
    capture.setattr(sys, "stderr", err)
    try:
        code = cli.main(["eval", "--model", str(tiny_model_dir), "--quick", "--json",
                         "--device", "cpu"])
    finally:
        capture.undo()
    return code, out.getvalue(), err.getvalue()


def leaves(tree, path=()):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from leaves(value, path + (key,))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from leaves(value, path + (i,))
    else:
        yield path, tree


def test_quick_eval_prints_json_with_every_figure(quick_run):
    code, stdout, stderr = quick_run
    assert code == 0
    result = json.loads(stdout)                       # stdout is JSON only
    assert "vae" in stderr                            # progress went to stderr
    expected = {
        "vae": {"psnr_novel", "psnr_novel_volume", "chamfer_l1", "normal_consistency", "chamfer_l1_1view", "near_sign_error", "n"},
        "generation": {"cov", "mmd_cd", "one_nna", "k", "per_category"},
        "text": {"category_accuracy", "color_accuracy", "color_accuracy_clear", "n",
                 "color_n", "clear_n", "unseen_category_accuracy", "unseen_color_accuracy",
                 "unseen_color_accuracy_clear", "reference_color_accuracy", "vae_category_accuracy",
                 "per_category"},
        "image": {"chamfer_l1", "n"},
        "timings": {"vae", "generation_and_text", "image", "total", "per_generation_median"},
    }
    for section, keys in expected.items():
        assert keys <= set(result[section]), section
    assert set(result["generation"]["per_category"]) == {"chair", "mug"}
    numbers = [(p, v) for p, v in leaves(result)
               if isinstance(v, (int, float)) and not isinstance(v, bool)]
    assert len(numbers) > 30
    bad = [p for p, v in numbers if not math.isfinite(v)]
    assert not bad, bad


def test_quick_eval_figures_are_in_range(quick_run):
    result = json.loads(quick_run[1])
    v, g, t = result["vae"], result["generation"], result["text"]
    assert 0.0 < v["psnr_novel"] <= 100.0
    assert v["chamfer_l1"] > 0.0 and 0.0 <= v["normal_consistency"] <= 1.0
    assert 0.0 <= v["near_sign_error"] <= 1.0
    for m in [g] + list(g["per_category"].values()):
        assert 0.0 <= m["cov"] <= 100.0 and 0.0 <= m["one_nna"] <= 100.0 and m["mmd_cd"] >= 0.0
    for key in ("category_accuracy", "color_accuracy", "unseen_category_accuracy",
                "vae_category_accuracy"):
        assert 0.0 <= t[key] <= 100.0
    assert t["n"] == 5 and t["unseen_n"] == 2
    assert t["prompt_reading"] is True and 0 <= t["unseen_read_n"] <= 2
    assert t["color_n"] == 5                          # every caption names its colour
    assert t["reference_color_accuracy"] >= 50.0      # true assets mostly show their main colour
    assert result["timings"]["generations"] == 5 + 2 + 1
    assert len(result["targets"]) == 10
    # the 4-view reconstructions again after test-time refine (quick: 2 steps)
    f = v["refined"]
    assert f["steps"] == 2 and f["refine_seconds"] > 0.0
    assert {"psnr_novel", "chamfer_l1", "near_sign_error"} <= set(f)
    assert 0.0 <= t["vae_refined_category_accuracy"] <= 100.0


def test_table_lists_figures_and_targets(quick_run):
    table = format_table(json.loads(quick_run[1]))
    for word in ("novel-view PSNR", "refine steps", "COV", "1-NNA", "category accuracy", "colour accuracy",
                 "Image to 3D", "Targets", "chair", "mug"):
        assert word in table


def test_heldout_seeds_never_overlap_training():
    from engine.evaluation.run import ROLE_OFFSETS, heldout_seed
    from engine.train.cli import HELDOUT_SEED_BASE
    seeds = {role: heldout_seed(role, 0) for role in ROLE_OFFSETS}
    assert min(seeds.values()) >= HELDOUT_SEED_BASE
    assert len(set(seeds.values())) == len(seeds)


def test_names_color_sees_synonyms_only_as_words():
    from engine.evaluation.run import names_color
    assert names_color("a crimson stool, three legs", "red")
    assert names_color("a tall red chair", "red")
    assert not names_color("a tall chair", "red")
    assert names_color("cream-colored desk", "white")
    assert names_color("a chair, mostly lime green", "green")
    assert not names_color("a reddish blue mug", "red")


def test_eval_views_match_training_views():
    """The VAE section feeds the encoder views rendered exactly as its training data."""
    import torch
    from engine.data import CATEGORIES, make_asset
    from engine.evaluation.run import render_views, training_cameras
    from engine.data.dataset import make_example
    seed = 10**8 + (CATEGORIES.index("donut") - 10**8) % len(CATEGORIES)   # a cheap shape
    ex = make_example(seed, n_views=4, res=16, n_points=8)
    asset = make_asset(seed)
    views, out = render_views(asset.sdf, asset.rgb, training_cameras(seed), 16)
    assert torch.allclose(views, ex["views"].float(), atol=1e-4)
    assert torch.allclose(out["rgb"].permute(0, 3, 1, 2), ex["albedo"].float(), atol=1e-4)


def test_reconstruction_ceiling_scores_reconstructions_by_their_nearest_reference():
    import numpy as np
    from engine.evaluation import metrics as M
    from engine.evaluation.run import EvalSettings, Evaluator, SurfaceCache
    rng = np.random.default_rng(0)
    refs = [rng.normal(size=(64, 3)) + 5.0 * k for k in range(3)]         # 3 far-apart blobs
    cats = ["chair", "mug", "vase"]
    ev = Evaluator(None, EvalSettings(), lambda *a: None, SurfaceCache(None))
    assert math.isnan(ev.recon_category_accuracy(M.CloudSet(refs), cats))
    ev._recon = [("chair", refs[0] + 0.01), ("mug", refs[1] - 0.01), ("vase", refs[0])]
    assert ev.recon_category_accuracy(M.CloudSet(refs), cats) == pytest.approx(200.0 / 3)


def test_a_generation_without_a_surface_is_scored_as_a_miss_not_a_crash():
    """The pipeline refuses an empty result with NoSurface (the artist's sentence); the
    eval counts it as an empty mesh and goes on (a weak model's one empty sample stopped
    a whole run). Any other error still stops it."""
    from engine.errors import KilnError
    from engine.evaluation.run import EvalSettings, Evaluator, SurfaceCache
    from engine.pipeline import no_surface

    class Pipe:
        def __init__(self, error):
            self.error = error

        def text_to_3d(self, *a, **k):
            raise self.error
    ev = Evaluator(Pipe(no_surface("text")), EvalSettings(), lambda *a: None, SurfaceCache(None))
    assert ev.generate("a red chair", seed=0) is None
    assert ev.cloud(None) is None and ev.empty_meshes == 1 and len(ev.gen_seconds) == 1
    ev.pipe = Pipe(KilnError("bad_request", "something else"))
    with pytest.raises(KilnError, match="something else"):
        ev.generate("a red chair", seed=0)
