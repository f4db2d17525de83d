"""Procedural world (engine/data): SDF primitives, categories, captions, examples, shards,
and the mesh dataset CLI."""

import json
import re

import numpy as np
import pytest
import torch

from engine.data import CATEGORIES, COLOR_NAMES, make_asset
from engine.data import palette as pal
from engine.data import sdf as S
from engine.data.captions import (CATEGORY_SYNONYMS_HELDOUT, captions, category_words,
                                  color_words, heldout_only_words)


pytestmark = pytest.mark.usefixtures("one_torch_thread")

# ----------------------------------------------------------------------------- primitives

EXACT = {
    "sphere": S.Sphere(0.5),
    "box": S.Box((0.4, 0.3, 0.2)),
    "round_box": S.RoundBox((0.4, 0.3, 0.2), 0.08),
    "capsule": S.Capsule((-0.3, 0.1, 0.0), (0.3, -0.1, 0.2), 0.15),
    "cylinder": S.Cylinder(0.3, 0.4),
    "capped_cone": S.CappedCone(0.4, 0.4, 0.15),
    "cone": S.CappedCone(0.4, 0.35, 0.0),
    "torus": S.Torus(0.4, 0.12),
    "revolve": S.Revolve([(0, -0.4), (0.3, -0.4), (0.4, 0.0), (0.2, 0.3), (0, 0.4)]),
    "extrude": S.Extrude([(-0.4, -0.3), (0.4, -0.3), (0.0, 0.2), (0.1, 0.4), (-0.3, 0.3)], 0.2),
    "moved_rotated_scaled": S.Box((0.3, 0.2, 0.1)).rot("x", 30).rot("z", 50).scale(1.5).move(0.1, 0, 0.2),
}


def _near_surface(node, n=3000, seed=0):
    """Points projected onto the zero set of `node` (Newton steps on the SDF)."""
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(8 * n, 3, generator=g) * 2 - 1
    p = p[node.sdf(p).abs() < 0.15][:n]
    for _ in range(4):
        q = p.clone().requires_grad_(True)
        d = node.sdf(q)
        (grad,) = torch.autograd.grad(d.sum(), q)
        p = (p - d.detach()[:, None] * grad / grad.norm(dim=1, keepdim=True).clamp(min=1e-9)).detach()
    return p


def _grad_norm(node, p):
    q = p.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(node.sdf(q).sum(), q)
    return grad.norm(dim=1)


@pytest.mark.parametrize("name", sorted(EXACT))
def test_primitive_sign_and_unit_gradient_near_surface(name):
    node = EXACT[name]
    center = torch.as_tensor(node.bounds()[0], dtype=torch.float32)[None]
    if name == "torus":
        center = torch.tensor([[0.4, 0.0, 0.0]])
    assert float(node.sdf(center)) < 0                              # inside
    assert float(node.sdf(torch.tensor([[3.0, 3.0, 3.0]]))) > 0      # outside
    surf = _near_surface(node)
    assert len(surf) > 500
    assert float(node.sdf(surf).abs().max()) < 1e-3
    shell = surf + 0.02 * torch.randn(len(surf), 3, generator=torch.Generator().manual_seed(1))
    gn = _grad_norm(node, shell)
    assert float((gn - 1).abs().median()) < 1e-3
    assert float(((gn - 1).abs() < 0.02).float().mean()) > 0.97     # kinks (medial axis) aside


def test_exact_primitives_agree_with_each_other():
    p = torch.rand(4000, 3) * 2.4 - 1.2
    cyl = S.Cylinder(0.3, 0.4).sdf(p)
    assert torch.allclose(S.Revolve([(0, -0.4), (0.3, -0.4), (0.3, 0.4), (0, 0.4)]).sdf(p), cyl, atol=1e-5)
    assert torch.allclose(S.CappedCone(0.4, 0.3, 0.3).sdf(p), cyl, atol=1e-5)
    box = S.Box((0.4, 0.3, 0.2)).sdf(p)
    assert torch.allclose(S.Extrude([(-0.4, -0.3), (0.4, -0.3), (0.4, 0.3), (-0.4, 0.3)], 0.2).sdf(p), box, atol=1e-5)
    assert torch.allclose(S.RoundBox((0.4, 0.3, 0.2), 0.0).sdf(p), box, atol=1e-6)
    sph = S.Sphere(0.5).sdf(p)
    assert torch.allclose(S.Capsule((0, 0, 0), (0, 0, 0), 0.5).sdf(p), sph, atol=1e-5)
    assert torch.allclose(S.Ellipsoid((0.5, 0.5, 0.5)).sdf(p), sph, atol=1e-5)


def test_ellipsoid_is_a_bound_exact_on_the_surface():
    e = S.Ellipsoid((0.5, 0.3, 0.2))
    surf = _near_surface(e)
    assert float(e.sdf(surf).abs().max()) < 1e-3
    p = torch.rand(2000, 3) * 2 - 1
    # never overestimates the distance to a dense sample of its surface
    dense = _near_surface(e, 6000, 3)
    true = torch.cdist(p, dense).min(1).values
    outside = e.sdf(p) > 0
    assert (e.sdf(p)[outside] <= true[outside] + 5e-3).all()


def test_union_colours_blends_and_culling_is_exact():
    red, blue = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)
    a, b = S.Sphere(0.3, red).move(-0.4, 0, 0), S.Sphere(0.3, blue).move(0.4, 0, 0)
    parts = [S.Box((0.05, 0.05, 0.05), (k / 20, 0.5, 0.5)).move(np.cos(k) * 0.7, np.sin(k) * 0.7, 0.1 * k - 1)
             for k in range(20)]
    p = torch.rand(5000, 3) * 2.4 - 1.2
    tree = S.union(a, b, *parts)                                    # arranged as a tree, culled
    naive = torch.stack([n.sdf(p) for n in [a, b, *parts]]).min(0).values
    assert torch.allclose(tree.sdf(p), naive)
    d, col = tree.eval(p)
    assert torch.allclose(d, naive)
    x = torch.tensor([[-0.4, 0.0, 0.0], [0.4, 0.0, 0.0]])
    assert torch.allclose(tree.eval(x)[1], torch.tensor([red, blue]))
    smooth = S.smooth_union(a, b, k=0.2)
    mid = torch.tensor([[0.0, 0.0, 0.0]])
    assert float(smooth.sdf(mid)) < float(S.union(a, b).sdf(mid))   # blended bridge
    assert torch.allclose(smooth.eval(mid)[1], torch.tensor([[0.5, 0.0, 0.5]]), atol=1e-5)
    assert (smooth.sdf(p) <= S.union(a, b).sdf(p) + 1e-6).all()
    cut = S.subtract(S.Box((0.5, 0.5, 0.5), red), S.Sphere(0.3))
    assert float(cut.sdf(torch.zeros(1, 3))) == pytest.approx(0.3, abs=1e-6)
    assert float(cut.sdf(torch.tensor([[0.45, 0.45, 0.45]]))) < 0
    # smooth operators stay 1-Lipschitz (what sphere tracing needs)
    for node in (smooth, S.subtract(a, b, k=0.1), S.smooth_union(*parts[:5], k=0.05)):
        q = (torch.rand(3000, 3) * 2 - 1).requires_grad_(True)
        (g,) = torch.autograd.grad(node.sdf(q).sum(), q)
        assert float(g.norm(dim=1).max()) < 1 + 1e-4


def test_patterns():
    c1, c2 = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)
    p = torch.rand(20000, 3) * 2 - 1
    for fn, share in [(S.stripes(c1, c2, period=0.2, duty=0.62), 0.62),
                      (S.two_tone(c1, c2, split=-0.36), 0.68),
                      (S.checks(c1, c2, 0.25, fill=1.0), 0.5)]:
        col = fn(p)
        is1 = (col == torch.tensor(c1)).all(1)
        assert ((col == torch.tensor(c2)).all(1) | is1).all()
        assert abs(float(is1.float().mean()) - share) < 0.03


# ----------------------------------------------------------------------------- assets

def test_every_category_builds_inside_the_unit_cube():
    from engine.geometry.surface import level_set_points, sdf_normals
    assert len(CATEGORIES) >= 24 and len(set(CATEGORIES)) == len(CATEGORIES)
    corners = torch.tensor([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=torch.float32)
    sphere = torch.nn.functional.normalize(torch.randn(2000, 3), dim=1) * 0.93
    for seed in range(24 * 7, 24 * 9):    # every category twice
        k, cat = seed % 24, CATEGORIES[seed % 24]
        a = make_asset(seed)
        assert a.category == cat and a.category_index == k
        assert a.main_color in COLOR_NAMES and a.color_index == COLOR_NAMES.index(a.main_color)
        assert (a.sdf(corners) > 0).all(), cat
        assert (a.sdf(sphere) > 0).all(), cat            # surface inside the radius-0.9 ball
        surf = level_set_points(a.sdf, 300, torch.Generator().manual_seed(seed))
        assert len(surf) > 100 and float(a.sdf(surf).abs().max()) < 1e-3, cat
        inward = surf - 0.004 * sdf_normals(a.sdf, surf)
        assert float((a.sdf(inward) < 0).float().mean()) > 0.95, cat    # a real inside
        assert float(surf.norm(dim=1).max()) > 0.7, cat                # scaled to fill the ball
        rgb = a.rgb(surf)
        assert rgb.min() >= 0 and rgb.max() <= 1
        assert a.features and isinstance(a.params, dict)


def test_assets_are_deterministic_per_seed():
    p = torch.rand(2000, 3) * 2 - 1
    for seed in (0, 5, 123457):
        a, b = make_asset(seed), make_asset(seed)
        assert a.params == b.params and a.colors == b.colors
        assert torch.equal(a.sdf(p), b.sdf(p)) and torch.equal(a.rgb(p), b.rgb(p))
        c = make_asset(seed, a.category)                 # naming the category changes nothing
        assert torch.equal(a.sdf(p), c.sdf(p))
        r1, r2 = np.random.default_rng(9), np.random.default_rng(9)
        assert captions(a, r1, n=4) == captions(b, r2, n=4)
    x, y = make_asset(30), make_asset(30 + 24)           # same category, other seed
    assert x.category == y.category and not torch.equal(x.sdf(p), y.sdf(p))
    assert make_asset(10 ** 12).category == CATEGORIES[10 ** 12 % len(CATEGORIES)]
    with pytest.raises(ValueError):
        make_asset(1, "spaceship-carrier")


def test_main_colour_dominates_the_surface():
    from engine.geometry.surface import level_set_points
    agree = []
    for seed in range(200, 296):        # 96 assets, every category 4 times
        a = make_asset(seed)
        pts = level_set_points(a.sdf, 300, torch.Generator().manual_seed(seed))
        agree.append(pal.classify_rgb(a.rgb(pts).numpy()) == a.main_color)
    assert np.mean(agree) >= 0.9        # ~97% over 480 seeds; patterns and roofs take the rest


def test_palette_jitter_keeps_the_colour_name():
    rng = np.random.default_rng(0)
    for name in COLOR_NAMES:
        assert pal.classify_rgb(pal.PALETTE[name]) == name
        assert all(pal.classify_rgb(pal.jitter(name, rng)) == name for _ in range(200))
    votes = np.array([pal.PALETTE["red"]] * 6 + [pal.PALETTE["blue"]] * 4)
    assert pal.classify_rgb(votes) == "red"


# ----------------------------------------------------------------------------- captions

def _has(text, phrases):
    return any(re.search(rf"(?<![\w-]){re.escape(w)}(?![\w])", text) for w in phrases)


def test_captions_name_colour_and_category_and_keep_heldout_words_out():
    rng = np.random.default_rng(0)
    heldout = heldout_only_words()
    seen_templates = set()
    for seed in range(60):
        a = make_asset(seed)
        train = captions(a, rng, "train", n=4)
        held = captions(a, rng, "heldout", n=3)
        assert len(train) == 4 and len(set(train)) == 4
        for text in train:
            assert _has(text, color_words(a.main_color, "train"))
            assert _has(text, category_words(a.category, "train", a.params))
            assert not _has(text, heldout), text
            seen_templates.add(re.sub(r"\w+", "w", text))
        for text in held:
            assert _has(text, color_words(a.main_color, "heldout"))
            assert _has(text, category_words(a.category, "heldout"))
    assert len(seen_templates) > 15                        # varied phrasing
    from engine.data import captions as C
    vocabulary = " | ".join(C.TEMPLATES_TRAIN + C.TEMPLATES_PATTERN_TRAIN + C.SIZE_WORDS_TRAIN
                            + [w for ws in C.CATEGORY_SYNONYMS_TRAIN.values() for w in ws]
                            + [w for ws in pal.COLOR_SYNONYMS_TRAIN.values() for w in ws])
    assert not _has(vocabulary, heldout)
    assert set(CATEGORY_SYNONYMS_HELDOUT) == set(CATEGORIES)
    assert "cup" in heldout and "little" in heldout
    with pytest.raises(ValueError):
        captions(make_asset(0), rng, "validation")


# ----------------------------------------------------------------------------- examples

def test_make_example_tensors():
    from engine.data.dataset import SURFACE_BANK, make_example
    from engine.render import plucker
    ex = make_example(7, n_views=3, res=32, n_points=512)
    assert ex["views"].shape == (3, 10, 32, 32) and ex["albedo"].shape == (3, 3, 32, 32)
    assert ex["c2w"].shape == (3, 4, 4) and ex["surface"].shape == (SURFACE_BANK, 3)
    assert ex["normals"].shape == (SURFACE_BANK, 3)
    assert ex["points"].shape == (512, 3) and ex["sdf"].shape == (512,) and ex["rgb"].shape == (512, 3)
    alpha = ex["views"][:, 3]
    assert ((alpha == 0) | (alpha == 1)).all() and alpha.mean() > 0.05
    assert torch.allclose(ex["albedo"].permute(0, 2, 3, 1)[alpha == 0], torch.ones(3))
    from engine.render import camera_rays
    o, d = camera_rays(ex["c2w"], 40.0, 32)
    assert torch.allclose(ex["views"][:, 4:].permute(0, 2, 3, 1), plucker(o, d), atol=1e-6)
    asset = make_asset(7)
    assert torch.allclose(ex["sdf"], asset.sdf(ex["points"]))
    near = ex["sdf"][:256].abs()
    assert float(near.median()) < 0.05                    # half the points hug the surface
    assert (ex["points"].abs() <= 1).all()
    assert ex["category"] == asset.category and ex["color"] == asset.color_index
    assert len(ex["captions"]) == 4 and ex["record"] == {"kind": "procedural", "seed": 7}
    again = make_example(7, n_views=3, res=32, n_points=512)
    assert torch.equal(again["points"], ex["points"]) and torch.equal(again["views"], ex["views"])


def _run_dataset(*argv):
    import argparse
    from engine.data import cli
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.main(parser.parse_args([str(a) for a in argv]))


def test_procedural_and_mesh_assets_share_one_store_format(tmp_path):
    """`engine dataset` writes the store the trainers read: the same tensors and record
    fields for a procedural asset and a mesh."""
    trimesh = pytest.importorskip("trimesh")
    from engine.train.store import Store, check_assets
    assert _run_dataset("--procedural", "3", "--out", tmp_path / "proc", "--views", "2",
                        "--res", "24", "--points", "256", "--workers", "1") == 0
    meshes = tmp_path / "meshes"
    meshes.mkdir()
    trimesh.creation.icosphere(subdivisions=2).export(meshes / "ball.obj")
    assert _run_dataset("--meshes", meshes, "--out", tmp_path / "mesh", "--views", "2",
                        "--res", "24", "--points", "256", "--workers", "1") == 0
    proc, mesh = (check_assets(Store.load(tmp_path / k), k) for k in ("proc", "mesh"))
    assert [r["seed"] for r in proc.info["assets"]] == [0, 1, 2]
    assert mesh.info["assets"][0]["kind"] == "mesh" and mesh.info["captions"] == [["ball"]]
    assert set(proc.tensors) == set(mesh.tensors)
    for key, t in proc.tensors.items():
        assert t.shape[1:] == mesh.tensors[key].shape[1:] and t.dtype == mesh.tensors[key].dtype, key
    assert not list(tmp_path.rglob("*.pkl")) and not list(tmp_path.rglob("index.json"))


def test_a_store_of_many_assets_does_not_run_out_of_file_descriptors():
    """Worker processes hand their assets back by value: with tensors shared through file
    descriptors, a store of 16 assets x 8 tensors held 128 open files and died past the
    limit (as `train data --assets 4320` did under a limit of 20,000)."""
    import subprocess
    import sys
    script = ("import os, resource\n"
              "from engine.data.dataset import build_store, procedural_sources\n"
              "resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))\n"
              "store = build_store(procedural_sources(range(16)), n_views=1, res=16, "
              "n_points=64, workers=2)\n"
              "print(len(store), len(os.listdir('/proc/self/fd')))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    built, open_files = map(int, out.stdout.split())
    assert built == 16 and open_files < 24


def test_dataset_cli_meshes(tmp_path):
    trimesh = pytest.importorskip("trimesh")
    from engine.train.store import Store
    meshes = tmp_path / "meshes"
    meshes.mkdir()
    box = trimesh.creation.box((1.0, 1.6, 0.6))
    box.visual.vertex_colors = [220, 20, 20, 255]
    box.export(meshes / "red_box.glb")
    trimesh.creation.icosphere(subdivisions=2).export(meshes / "ball.obj")
    (meshes / "ball.txt").write_text("a plain ball\n")
    open_mesh = trimesh.creation.box((1, 1, 1))
    open_mesh.update_faces(np.arange(len(open_mesh.faces)) > 1)     # drop two triangles
    open_mesh.export(meshes / "open.stl")
    (meshes / "notes.md").write_text("not a mesh")
    assert _run_dataset("--meshes", meshes, "--out", tmp_path / "mesh", "--views", "2",
                        "--res", "24", "--points", "512", "--workers", "1") == 0
    store = Store.load(tmp_path / "mesh")
    rows = {r["source"]: i for i, r in enumerate(store.info["assets"])}
    assert set(rows) == {"red_box.glb", "ball.obj", "open.stl"}
    t, caps = store.tensors, store.info["captions"]
    ball, red, hole = rows["ball.obj"], rows["red_box.glb"], rows["open.stl"]
    assert caps[ball] == ["a plain ball"] and caps[red] == ["red box"]
    assert store.info["assets"][ball]["watertight"] and not store.info["assets"][hole]["watertight"]
    # every mesh gets signs, the open box too (winding numbers): inside is inside the box
    inside = t["points"][hole][t["sdf"][hole] < 0]
    assert len(inside) > 50 and inside.abs().max() < 0.56
    # the ball is normalised to radius 0.9: its SDF is |p| - 0.9 up to the facets
    r = t["points"][ball].norm(dim=1)
    assert (t["sdf"][ball] - (r - 0.9)).abs().max() < 0.03
    assert store.info["assets"][ball]["scale"] == pytest.approx(0.9, rel=1e-3)
    assert t["color"][red] == COLOR_NAMES.index("red")
    hit = t["views"][red][:, 3] > 0.5
    assert hit.float().mean() > 0.05
    albedo = t["albedo"][red].float().permute(0, 2, 3, 1)[hit]
    assert (albedo - torch.tensor([220, 20, 20]) / 255).abs().max() < 0.01
    # glTF is Y-up: the box's 1.6 (glTF y) becomes Kiln's z, the tallest extent
    inside = t["points"][red][t["sdf"][red] < 0]
    assert inside[:, 2].abs().max() > inside[:, 1].abs().max() + 0.1
    # surface normals point outside
    bank, normals = t["surface"][ball], t["normals"][ball].float()
    assert ((bank / bank.norm(dim=1, keepdim=True)) * normals).sum(1).min() > 0.9


def _broken_meshes(folder):
    folder.mkdir()
    (folder / "a.glb").write_bytes(b"not a mesh")
    (folder / "b.obj").write_text("v 1 2\nf 9 9 9\n")                # IndexError in trimesh
    (folder / "c.stl").write_bytes(b"")
    return ["--meshes", str(folder)], f"No example came out of {folder}"


def _no_procedural(folder):
    return ["--procedural", "0"], "--procedural 0 writes no examples"


@pytest.mark.parametrize("source", [_broken_meshes, _no_procedural],
                         ids=["only-broken-meshes", "procedural-0"])
def test_dataset_cli_that_writes_nothing_fails_with_a_sentence(tmp_path, source):
    """Only broken meshes used to exit 0 with "examples": 0 (or raise an IndexError)."""
    import argparse
    from engine.data import cli
    argv, words = source(tmp_path / "meshes")
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args([*argv, "--out", str(tmp_path / "out"), "--res", "16"])
    with pytest.raises(SystemExit) as info:
        cli.main(args)
    assert isinstance(info.value.code, str), info.value.code    # exit status 1, a sentence
    assert words in info.value.code and info.value.code.endswith(".")
    assert not (tmp_path / "out" / "store.json").exists()


def test_textured_glb_colours_follow_uv_and_base_colour(tmp_path):
    trimesh = pytest.importorskip("trimesh")
    from PIL import Image
    from engine.data.meshes import load_mesh
    img = np.zeros((16, 16, 3), np.uint8)
    img[:, :8], img[:, 8:], img[:4] = [255, 0, 0], [0, 0, 255], [0, 255, 0]
    box = trimesh.creation.box((1, 1, 1))
    uv = np.stack([box.vertices[:, 0] + 0.5, (box.vertices[:, 2] + 0.5) * 0.5], 1)
    box.visual = trimesh.visual.TextureVisuals(uv=uv, image=Image.fromarray(img))
    box.export(tmp_path / "tex.glb")
    loaded = load_mesh(tmp_path / "tex.glb")
    f, colors = loaded.faces_fx3, loaded.colors
    part = list(trimesh.load(tmp_path / "tex.glb").geometry.values())[0]
    factor = np.asarray(part.visual.material.baseColorFactor[:3]) / 255.0
    expected = part.visual.to_color().vertex_colors[:, :3] / 255.0 * factor   # per vertex
    for k in range(3):
        bary = torch.zeros(len(f), 3)
        bary[:, k] = 1
        got = colors(torch.arange(len(f)), bary).numpy()
        np.testing.assert_allclose(got, expected[f[:, k]], atol=1e-6)
    assert loaded.watertight               # UV seams split vertices; welded for the check
