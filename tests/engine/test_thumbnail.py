"""The thumbnail beside each result (NAME.png, for Blender's History panel): a small RGBA
render of the mesh, written atomically, and only over a picture Kiln made itself."""

import io
import json
import time

import numpy as np
import pytest
import trimesh
from PIL import Image

from engine.geometry.mesh import Mesh
from engine.io import outputs
from engine.pipeline import Result
from engine.render.thumbnail import THUMB_PX, thumbnail_png, thumbnail_rgba


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _box(**colour) -> Mesh:
    box = trimesh.creation.box(extents=(0.4, 0.3, 0.8))      # off-centre, unit-less
    return Mesh(box.vertices + 5.0, box.faces, **colour)


def _red_box() -> Mesh:
    mesh = _box()
    return mesh.replace(vertex_colors_nx3=np.tile([[200, 20, 20]], (mesh.num_vertices, 1)))


def _blue_textured_box() -> Mesh:
    mesh = _box()
    uvs_nx2 = np.random.default_rng(0).uniform(0.1, 0.9, (mesh.num_vertices, 2))
    texture_hxwx3 = np.zeros((16, 16, 3), np.uint8)
    texture_hxwx3[..., 2] = 220
    return mesh.replace(uvs_nx2=uvs_nx2, texture_hxwx3=texture_hxwx3)


def test_the_thumbnail_is_the_mesh_centred_on_a_transparent_background():
    rgba = thumbnail_rgba(_red_box())
    assert rgba.shape == (THUMB_PX, THUMB_PX, 4) and rgba.dtype == np.uint8
    alpha = rgba[..., 3]
    assert alpha[0, 0] == 0 and alpha[-1, -1] == 0                 # corners: background
    centre = rgba[THUMB_PX // 2, THUMB_PX // 2]
    assert centre[3] == 255 and centre[0] > 2 * max(centre[1], centre[2])    # red, lit
    rows, cols = np.nonzero(alpha > 127)
    assert 0.2 < (rows.max() - rows.min()) / THUMB_PX < 0.95         # framed, not cropped
    assert abs((cols.min() + cols.max()) / 2 - THUMB_PX / 2) < THUMB_PX * 0.15


def test_a_textured_mesh_shows_its_texture():
    centre = thumbnail_rgba(_blue_textured_box())[THUMB_PX // 2, THUMB_PX // 2]
    assert centre[3] == 255 and centre[2] > 2 * max(centre[0], centre[1])


def test_the_png_carries_kilns_mark():
    data = thumbnail_png(_red_box())
    image = Image.open(io.BytesIO(data))
    assert image.size == (THUMB_PX, THUMB_PX) and image.mode == "RGBA"
    assert image.text.get(outputs.THUMB_KEY) == outputs.THUMB_VALUE


# ---------------------------------------------------------------- beside the result
def _result(mesh: Mesh) -> Result:
    return Result(mesh=mesh, meta={"mode": "text", "prompt": "a red box", "seed": 1})


def test_export_writes_the_thumbnail_and_names_it_in_the_sidecar(pipe, tmp_path):
    glb, sidecar = pipe.export(_result(_red_box()), tmp_path / "box.glb")
    meta = json.loads(sidecar.read_text())
    assert meta["thumbnail"] == "box.png"
    assert outputs.png_text(tmp_path / "box.png") == {outputs.THUMB_KEY: outputs.THUMB_VALUE}
    assert Image.open(tmp_path / "box.png").size == (THUMB_PX, THUMB_PX)
    assert meta["timings"]["thumbnail"] > 0
    assert not list(tmp_path.glob("*.part"))


def test_export_replaces_its_own_thumbnail(pipe, tmp_path):
    pipe.export(_result(_red_box()), tmp_path / "box.glb")
    red = (tmp_path / "box.png").read_bytes()
    pipe.export(_result(_blue_textured_box()), tmp_path / "box.glb")
    assert (tmp_path / "box.png").read_bytes() != red


def test_a_users_picture_at_the_thumbnail_path_is_kept(pipe, tmp_path):
    """`engine generate --image chair.png --out chair.glb` must not eat the picture."""
    picture = tmp_path / "chair.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(picture)
    before = picture.read_bytes()
    glb, sidecar = pipe.export(_result(_red_box()), tmp_path / "chair.glb")
    assert picture.read_bytes() == before and glb.is_file()
    assert "thumbnail" not in json.loads(sidecar.read_text())
    assert not list(tmp_path.glob("*.part"))


@pytest.mark.parametrize("occupant", ["folder", "not a png", "link to kiln's"])
def test_anything_else_at_the_thumbnail_path_is_kept(pipe, tmp_path, occupant):
    path = tmp_path / "box.png"
    if occupant == "folder":
        path.mkdir()
    elif occupant == "not a png":
        path.write_text("my notes")
    else:
        kilns = tmp_path / "elsewhere.png"
        kilns.write_bytes(thumbnail_png(_red_box()))
        path.symlink_to(kilns)
    assert not outputs.may_write_thumbnail(tmp_path / "box.glb")
    _, sidecar = pipe.export(_result(_red_box()), tmp_path / "box.glb")
    assert "thumbnail" not in json.loads(sidecar.read_text())
    if occupant == "not a png":
        assert path.read_text() == "my notes"


def test_a_result_without_a_thumbnail_loses_a_stale_sidecar_entry(tmp_path):
    out = tmp_path / "box.glb"
    outputs.write_result(out, b"glb", {"thumbnail": "box.png"}, thumb_png=None)
    assert "thumbnail" not in json.loads(out.with_suffix(".json").read_text())


def test_thumbnail_cost_at_the_default_face_budget(pipe):
    """Printed, not asserted (run with -s): the thumbnail's share of export time."""
    sphere = trimesh.creation.icosphere(subdivisions=5)              # 20,480 faces
    mesh = Mesh(sphere.vertices, sphere.faces,
                vertex_colors_nx3=np.full((len(sphere.vertices), 3), 180, np.uint8))
    t0 = time.perf_counter()
    thumbnail_png(mesh)
    print(f"\nthumbnail of {mesh.num_faces} faces at {THUMB_PX} px: "
          f"{(time.perf_counter() - t0) * 1000:.0f} ms (1 torch thread)")
