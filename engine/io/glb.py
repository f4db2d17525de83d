"""A minimal glTF 2.0 binary (.glb) writer for Kiln meshes (numpy + json + struct; Pillow for
the PNG texture).

One mesh, one node, one material: POSITION, NORMAL, TEXCOORD_0 (when the mesh has UVs and a
texture, embedded as PNG in a pbrMetallicRoughness material) or COLOR_0 (uint8 vertex
colours), and uint32/uint16 indices. Kiln works Z-up; glTF is Y-up: `z_up_to_y_up` is the one
place where that conversion happens. glTF puts v = 0 at the top of the image, Mesh at the
bottom: the writer flips v.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np

from .outputs import write_atomic

GLB_MAGIC = 0x46546C67          # "glTF"
CHUNK_JSON = 0x4E4F534A         # "JSON"
CHUNK_BIN = 0x004E4942          # "BIN\0"
FLOAT, UNSIGNED_BYTE, UNSIGNED_SHORT, UNSIGNED_INT = 5126, 5121, 5123, 5125
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
LINEAR, LINEAR_MIPMAP_LINEAR, CLAMP_TO_EDGE = 9729, 9987, 33071


def z_up_to_y_up(vectors_nx3: np.ndarray) -> np.ndarray:
    """Kiln object space (right-handed, Z-up) -> glTF (right-handed, Y-up): (x, y, z) -> (x, z, -y).

    The only axis conversion of the export path; positions and normals both go through it.
    """
    v = np.asarray(vectors_nx3, dtype=np.float32)
    return np.stack([v[:, 0], v[:, 2], -v[:, 1]], axis=1)


class _BinBuilder:
    """Collects buffer views and accessors over one binary buffer (4-byte aligned)."""

    def __init__(self):
        self.data = bytearray()
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def view(self, payload: bytes, target: int | None = None) -> int:
        while len(self.data) % 4:
            self.data.append(0)
        entry = {"buffer": 0, "byteOffset": len(self.data), "byteLength": len(payload)}
        if target is not None:
            entry["target"] = target
        self.data.extend(payload)
        self.views.append(entry)
        return len(self.views) - 1

    def accessor(self, array: np.ndarray, component: int, kind: str, target: int | None,
                 normalized: bool = False, bounds: bool = False) -> int:
        array = np.ascontiguousarray(array)
        entry = {"bufferView": self.view(array.tobytes(), target), "componentType": component,
                 "count": int(array.shape[0]), "type": kind}
        if normalized:
            entry["normalized"] = True
        if bounds:
            entry["min"] = [float(x) for x in array.min(axis=0)]
            entry["max"] = [float(x) for x in array.max(axis=0)]
        self.accessors.append(entry)
        return len(self.accessors) - 1


def _png_bytes(image_hxwx3: np.ndarray, compress_level: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image_hxwx3, dtype=np.uint8), "RGB").save(
        out, format="PNG", compress_level=compress_level)
    return out.getvalue()


def _material(builder: _BinBuilder, gltf: dict, mesh, compress_level: int) -> dict:
    pbr = {"metallicFactor": 0.0, "roughnessFactor": 0.8}
    if mesh.texture_hxwx3 is not None and mesh.uvs_nx2 is not None:
        image_view = builder.view(_png_bytes(mesh.texture_hxwx3, compress_level))
        gltf["images"] = [{"bufferView": image_view, "mimeType": "image/png", "name": "kiln_albedo"}]
        gltf["samplers"] = [{"magFilter": LINEAR, "minFilter": LINEAR_MIPMAP_LINEAR,
                             "wrapS": CLAMP_TO_EDGE, "wrapT": CLAMP_TO_EDGE}]
        gltf["textures"] = [{"source": 0, "sampler": 0}]
        pbr["baseColorTexture"] = {"index": 0, "texCoord": 0}
    return {"name": "kiln_material", "pbrMetallicRoughness": pbr, "doubleSided": False}


def _attributes(builder: _BinBuilder, mesh) -> dict:
    attributes = {"POSITION": builder.accessor(z_up_to_y_up(mesh.vertices_nx3), FLOAT, "VEC3",
                                               ARRAY_BUFFER, bounds=True)}
    if mesh.normals_nx3 is not None:
        attributes["NORMAL"] = builder.accessor(z_up_to_y_up(mesh.normals_nx3), FLOAT, "VEC3",
                                                ARRAY_BUFFER)
    if mesh.texture_hxwx3 is not None and mesh.uvs_nx2 is not None:
        uv = np.asarray(mesh.uvs_nx2, dtype=np.float32).copy()
        uv[:, 1] = 1.0 - uv[:, 1]                                       # glTF: v = 0 on top
        attributes["TEXCOORD_0"] = builder.accessor(uv, FLOAT, "VEC2", ARRAY_BUFFER)
    elif mesh.vertex_colors_nx3 is not None:
        colors = np.asarray(mesh.vertex_colors_nx3, dtype=np.uint8)
        colors = np.concatenate([colors, np.full((len(colors), 1), 255, np.uint8)], axis=1)
        attributes["COLOR_0"] = builder.accessor(colors, UNSIGNED_BYTE, "VEC4", ARRAY_BUFFER,
                                                 normalized=True)
    return attributes


def _json_safe(value):
    """extras may carry numpy scalars/arrays or Paths; glTF JSON wants plain values."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def glb_bytes(mesh, extras: dict | None = None, name: str = "kiln_asset",
              png_compress_level: int = 1) -> bytes:
    """The .glb file for `mesh` as bytes. extras land on the node (Blender: custom properties)."""
    mesh.check()
    if mesh.num_faces == 0:
        raise ValueError("Cannot write a GLB for a mesh with no faces.")
    builder = _BinBuilder()
    faces = np.asarray(mesh.faces_fx3).reshape(-1)
    if mesh.num_vertices < 65536:
        indices = builder.accessor(faces.astype(np.uint16), UNSIGNED_SHORT, "SCALAR", ELEMENT_ARRAY_BUFFER)
    else:
        indices = builder.accessor(faces.astype(np.uint32), UNSIGNED_INT, "SCALAR", ELEMENT_ARRAY_BUFFER)
    gltf: dict = {"asset": {"version": "2.0", "generator": "Kiln"}}
    primitive = {"attributes": _attributes(builder, mesh), "indices": indices, "material": 0, "mode": 4}
    gltf["materials"] = [_material(builder, gltf, mesh, png_compress_level)]
    node = {"name": name, "mesh": 0}
    if extras:
        node["extras"] = _json_safe(extras)
    gltf.update({"scene": 0, "scenes": [{"name": "Scene", "nodes": [0]}], "nodes": [node],
                 "meshes": [{"name": name, "primitives": [primitive]}],
                 "accessors": builder.accessors, "bufferViews": builder.views})
    while len(builder.data) % 4:
        builder.data.append(0)
    gltf["buffers"] = [{"byteLength": len(builder.data)}]
    text = json.dumps(gltf, separators=(",", ":"), allow_nan=False).encode("utf-8")
    text += b" " * (-len(text) % 4)
    total = 12 + 8 + len(text) + 8 + len(builder.data)
    return b"".join([struct.pack("<III", GLB_MAGIC, 2, total),
                     struct.pack("<II", len(text), CHUNK_JSON), text,
                     struct.pack("<II", len(builder.data), CHUNK_BIN), bytes(builder.data)])


def write_glb(path, mesh, extras: dict | None = None, name: str = "kiln_asset",
              png_compress_level: int = 1) -> Path:
    """Write `mesh` (engine.geometry.Mesh) to `path` as glTF 2.0 binary; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, glb_bytes(mesh, extras, name, png_compress_level))
