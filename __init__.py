"""Kiln: a prompt or a picture in, a textured mesh in the scene.

The Blender add-on entry point. Registration is thin: the modules below hold the
preferences, the one Scene PropertyGroup, the runtime (the engine session, its timer
and handlers, the search for the engine's Python), the operators and the sidebar
panels, registered in that order and unregistered in reverse.
Nothing here imports bpy at module level, so importing the repository as a package
(tests, tools) stays cheap; Blender calls `register()` / `unregister()`.

Blender 4.2+ loads Kiln as an extension (blender_manifest.toml); older Blender
versions load it as a legacy add-on through `bl_info`.
"""

bl_info = {
    "name": "Kiln",
    "author": "Kiln developers",
    "version": (0, 1, 0),
    "blender": (3, 4, 0),
    "location": "View3D > Sidebar > Kiln",
    "description": "Text or picture to a textured 3D mesh, generated locally",
    "category": "3D View",
}

_MODULE_NAMES = ("preferences", "props", "runtime", "operators", "panels")


def _modules():
    import importlib
    return [importlib.import_module(f".{name}", __name__) for name in _MODULE_NAMES]


def register():
    for module in _modules():
        module.register()


def unregister():
    for module in reversed(_modules()):
        module.unregister()
