"""GLB export (engine/io/glb.py): valid container, loads in trimesh with UVs and texture."""

import json
import struct

import numpy as np
import pytest
import torch

from engine.bench.shapes import smooth_rgb, torus_sdf
from engine.geometry.extract import extract_surface
from engine.geometry.mesh import Mesh
from engine.geometry.mesh_ops import clean
from engine.geometry.texture import bake_texture, vertex_colors
from engine.io.glb import glb_bytes, write_glb, z_up_to_y_up

trimesh = pytest.importorskip("trimesh")


@pytest.fixture(scope="module")
def mesh():
    return clean(extract_surface(torus_sdf, 48), 3000)


@pytest.fixture(scope="module")
def textured(mesh):
    return bake_texture(mesh, smooth_rgb, 256)


def load_single(path):
    scene = trimesh.load(path, force="scene", process=False)
    assert len(scene.geometry) == 1
    name, geom = next(iter(scene.geometry.items()))
    return scene, geom


def parse(data):
    magic, version, length = struct.unpack_from("<III", data, 0)
    json_len, json_type = struct.unpack_from("<II", data, 12)
    gltf = json.loads(data[20:20 + json_len])
    bin_len, bin_type = struct.unpack_from("<II", data, 20 + json_len)
    return magic, version, length, json_len, json_type, gltf, bin_len, bin_type


def test_container_layout(textured):
    data = glb_bytes(textured)
    magic, version, length, json_len, json_type, gltf, bin_len, bin_type = parse(data)
    assert (magic, version, length) == (0x46546C67, 2, len(data))
    assert json_type == 0x4E4F534A and bin_type == 0x004E4942
    assert json_len % 4 == 0 and bin_len % 4 == 0
    assert 20 + json_len + 8 + bin_len == len(data)
    assert gltf["buffers"][0]["byteLength"] == bin_len
    assert all(view["byteOffset"] % 4 == 0 for view in gltf["bufferViews"])
    pbr = gltf["materials"][0]["pbrMetallicRoughness"]
    assert pbr["metallicFactor"] == 0.0 and 0.5 <= pbr["roughnessFactor"] <= 1.0
    assert pbr["baseColorTexture"]["index"] == 0
    assert gltf["images"][0]["mimeType"] == "image/png"
    position = gltf["accessors"][gltf["meshes"][0]["primitives"][0]["attributes"]["POSITION"]]
    assert "min" in position and "max" in position


def test_textured_mesh_loads_in_trimesh(tmp_path, textured):
    path = write_glb(tmp_path / "out" / "asset.glb", textured,
                     extras={"prompt": "a red chair", "seed": np.int64(7), "timings": {"x": 0.5}})
    assert path.exists() and not (tmp_path / "out" / "asset.glb.part").exists()
    scene, geom = load_single(path)
    assert len(geom.vertices) == textured.num_vertices and len(geom.faces) == textured.num_faces
    np.testing.assert_allclose(geom.vertices, z_up_to_y_up(textured.vertices_nx3), atol=1e-6)
    np.testing.assert_array_equal(geom.faces, textured.faces_fx3)
    np.testing.assert_allclose(geom.visual.uv, textured.uvs_nx2, atol=1e-6)
    image = np.asarray(geom.visual.material.baseColorTexture.convert("RGB"))
    np.testing.assert_array_equal(image, textured.texture_hxwx3)
    node = scene.graph.transforms.edge_data[("world", next(iter(scene.geometry)))]
    assert node["metadata"]["prompt"] == "a red chair" and node["metadata"]["seed"] == 7


def test_texture_lookup_survives_the_round_trip(tmp_path, textured):
    """Colour at a vertex via trimesh's UV convention equals the field there."""
    _, geom = load_single(write_glb(tmp_path / "a.glb", textured))
    colors = geom.visual.to_color().vertex_colors[:, :3].astype(np.float64)
    want = smooth_rgb(torch.from_numpy(textured.vertices_nx3)).numpy() * 255
    assert np.abs(colors - want).mean() < 4.0


def test_vertex_colours_without_texture(tmp_path, mesh):
    coloured = vertex_colors(mesh, smooth_rgb)
    data = glb_bytes(coloured)
    gltf = parse(data)[5]
    attributes = gltf["meshes"][0]["primitives"][0]["attributes"]
    assert "COLOR_0" in attributes and "TEXCOORD_0" not in attributes and "images" not in gltf
    _, geom = load_single(write_glb(tmp_path / "vc.glb", coloured))
    np.testing.assert_array_equal(geom.visual.vertex_attributes["color"][:, :3],
                                  coloured.vertex_colors_nx3)
    assert geom.is_watertight


def test_bare_mesh_and_large_index_count(tmp_path):
    n = 70000                                                        # > 65535: uint32 indices
    verts = np.random.default_rng(0).random((n, 3)).astype(np.float32)
    faces = np.stack([np.arange(n - 2), np.arange(1, n - 1), np.arange(2, n)], axis=1)
    _, geom = load_single(write_glb(tmp_path / "big.glb", Mesh(verts, faces)))
    assert len(geom.vertices) == n and len(geom.faces) == n - 2


def test_axis_conversion_is_a_rotation():
    basis = z_up_to_y_up(np.eye(3, dtype=np.float32))
    assert np.linalg.det(basis) == pytest.approx(1.0)
    np.testing.assert_allclose(z_up_to_y_up(np.array([[0, 0, 1.0]])), [[0, 1, 0]])   # up stays up


def test_empty_mesh_is_refused(tmp_path):
    with pytest.raises(ValueError):
        write_glb(tmp_path / "e.glb", Mesh(np.zeros((0, 3)), np.zeros((0, 3))))
