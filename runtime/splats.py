"""A Gaussian-splat result (a 3D Gaussian Splatting .ply) as a point cloud in Blender.

The .ply is read here with numpy (no torch, no add-on): one binary little-endian
`vertex` element of scalar properties, the layout engine/io/splat_ply.py writes and the
3DGS reference viewers read. Positions are Kiln's object space, Z up, which is Blender's,
so no axis changes. It becomes a mesh of loose vertices (Blender's own PLY importer makes
point clouds the same way), one vertex per splat, carrying:

- every property of the file but the position as a FLOAT point attribute of the same
  name: f_dc_0..2, opacity (the logit), scale_0..2 (log standard deviations), rot_0..3
  (the quaternion w, x, y, z), nx, ny, nz; f_rest_* only where the file holds a non-zero
  one (Kiln's are all zero: view-independent colour);
- "Col", a colour attribute: rgb = 0.5 + SH_C0 * f_dc, taken from sRGB to Blender's linear
  colour (as the GLB's baked texture is read), alpha = sigmoid(opacity);
- "splat_radius", its size for display (RADIUS_SIGMAS tangent standard deviations).

A "Kiln Splats" geometry-nodes modifier turns the vertices into points of that radius
with a material that reads "Col", so the splats show in the viewport and in renders.
`rescale` keeps scale_* and splat_radius true when the importer scales the vertices.
"""

from __future__ import annotations

import math

import bpy

SH_C0 = 0.28209479177387814
REQUIRED = ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1",
            "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")
TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2",
         "int16": "i2", "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4",
         "uint": "u4", "uint32": "u4", "float": "f4", "float32": "f4", "double": "f8",
         "float64": "f8"}
MAX_HEADER = 1 << 16           # bytes: a splat file's header is about 1.5 kB
COLOR = "Col"
RADIUS = "splat_radius"
RADIUS_SIGMAS = 1.5
MODIFIER = NODE_GROUP = "Kiln Splats"
MATERIAL = "Kiln Splat"


def is_splat_file(path: str) -> bool:
    return str(path).lower().endswith(".ply")


def read_ply(path: str) -> dict:
    """{property name: (N,) numpy array} of the vertex element of a binary little-endian
    PLY; ValueError saying what is wrong for anything else or a file without splats."""
    import numpy as np
    with open(path, "rb") as fh:
        head = fh.read(MAX_HEADER)
        end = head.find(b"end_header\n")
        if not head.startswith(b"ply\n") or end < 0:
            raise ValueError("it is not a PLY file (no 'ply' ... 'end_header' header)")
        lines = head[:end].decode("ascii", "replace").splitlines()
        fields, count, current = [], None, None
        for line in lines[1:]:
            words = line.split()
            if not words or words[0] in ("comment", "obj_info"):
                continue
            if words[0] == "format" and words[1:2] != ["binary_little_endian"]:
                raise ValueError(f"it is a {' '.join(words[1:2])} PLY; Gaussian splats come "
                                 "as binary_little_endian")
            if words[0] == "element":
                current = words[1]
                if current == "vertex":
                    count = int(words[2])
                elif count is None:
                    raise ValueError("its first element is not 'vertex'")
            elif words[0] == "property" and current == "vertex":
                if words[1] == "list" or words[1] not in TYPES:
                    raise ValueError(f"its vertex property {line!r} is not a plain number")
                fields.append((words[2], "<" + TYPES[words[1]]))
        if count is None:
            raise ValueError("it holds no vertex element")
        missing = [name for name in REQUIRED if name not in dict(fields)]
        if missing:
            raise ValueError(f"it is not a Gaussian-splat PLY: no {', '.join(missing)}")
        fh.seek(end + len(b"end_header\n"))
        dtype = np.dtype(fields)
        data = fh.read(dtype.itemsize * count)
    if len(data) < dtype.itemsize * count:
        raise ValueError(f"it is cut short: {count} splats announced, "
                         f"{len(data) // dtype.itemsize} there")
    table = np.frombuffer(data, dtype=dtype, count=count)
    return {name: table[name].astype(np.float32) for name, _ in fields}


def _srgb_to_linear(c):
    import numpy as np
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def read_splats(context, path: str):
    """The .ply at `path` as a new object (linked to the scene's collection, as Blender's
    importers link theirs) of loose vertices with the splat attributes."""
    import numpy as np
    table = read_ply(path)
    n = len(table["x"])
    if n == 0:
        raise ValueError("it holds no splats")
    if context.object is not None and context.object.mode != 'OBJECT':
        bpy.ops.object.mode_set(mode='OBJECT')
    mesh = bpy.data.meshes.new("splats")
    mesh.vertices.add(n)
    co = np.stack([table["x"], table["y"], table["z"]], 1).astype(np.float32)
    mesh.vertices.foreach_set("co", co.ravel())
    for name, values in table.items():
        if name in ("x", "y", "z") or (name.startswith("f_rest_") and not values.any()):
            continue
        mesh.attributes.new(name, 'FLOAT', 'POINT').data.foreach_set("value", values)
    dc = np.stack([table[f"f_dc_{i}"] for i in range(3)], 1)
    rgb = _srgb_to_linear(np.clip(0.5 + SH_C0 * dc, 0.0, 1.0))
    alpha = 1.0 / (1.0 + np.exp(-table["opacity"].astype(np.float64)))
    rgba = np.concatenate([rgb, alpha[:, None]], 1).astype(np.float32)
    colors = mesh.color_attributes.new(COLOR, 'FLOAT_COLOR', 'POINT')
    colors.data.foreach_set("color", rgba.ravel())
    sigma = np.exp(0.5 * (table["scale_0"] + table["scale_1"]))        # tangent geometric mean
    mesh.attributes.new(RADIUS, 'FLOAT', 'POINT').data.foreach_set(
        "value", (RADIUS_SIGMAS * sigma).astype(np.float32))
    mesh.update()
    obj = bpy.data.objects.new("splats", mesh)
    context.scene.collection.objects.link(obj)
    _show_as_points(obj)
    return obj


def rescale(mesh, scale: float) -> None:
    """After the vertices were scaled by `scale`: the splats' sizes follow."""
    import numpy as np
    if not scale > 0 or scale == 1.0:
        return
    n = len(mesh.vertices)
    for name, shift, factor in [(f"scale_{i}", math.log(scale), 1.0) for i in range(3)] \
            + [(RADIUS, 0.0, scale)]:
        attr = mesh.attributes.get(name)
        if attr is None:
            continue
        values = np.empty(n, dtype=np.float32)
        attr.data.foreach_get("value", values)
        attr.data.foreach_set("value", (values * factor + shift).astype(np.float32))
    mesh.update()


def _material():
    mat = bpy.data.materials.get(MATERIAL)
    if mat is not None:
        return mat
    mat = bpy.data.materials.new(MATERIAL)
    if not mat.use_nodes:                       # Blender 4.2 (5.0 always uses nodes)
        mat.use_nodes = True
    nodes = mat.node_tree.nodes
    bsdf = next(n for n in nodes if n.type == 'BSDF_PRINCIPLED')
    attr = nodes.new('ShaderNodeAttribute')
    attr.attribute_name = COLOR
    attr.attribute_type = 'GEOMETRY'
    mat.node_tree.links.new(attr.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


def _node_group():
    group = bpy.data.node_groups.get(NODE_GROUP)
    if group is not None:
        return group
    group = bpy.data.node_groups.new(NODE_GROUP, 'GeometryNodeTree')
    group.interface.new_socket("Geometry", in_out='INPUT', socket_type='NodeSocketGeometry')
    group.interface.new_socket("Geometry", in_out='OUTPUT', socket_type='NodeSocketGeometry')
    nodes, links = group.nodes, group.links
    given, out = nodes.new('NodeGroupInput'), nodes.new('NodeGroupOutput')
    points = nodes.new('GeometryNodeMeshToPoints')
    radius = nodes.new('GeometryNodeInputNamedAttribute')
    radius.data_type = 'FLOAT'
    radius.inputs["Name"].default_value = RADIUS
    material = nodes.new('GeometryNodeSetMaterial')
    material.inputs["Material"].default_value = _material()
    links.new(given.outputs[0], points.inputs["Mesh"])
    links.new(radius.outputs["Attribute"], points.inputs["Radius"])
    links.new(points.outputs["Points"], material.inputs["Geometry"])
    links.new(material.outputs["Geometry"], out.inputs[0])
    for i, node in enumerate((given, radius, points, material, out)):
        node.location = (200 * i, 0)
    return group


def _show_as_points(obj) -> None:
    modifier = obj.modifiers.new(MODIFIER, 'NODES')
    modifier.node_group = _node_group()
