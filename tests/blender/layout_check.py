"""Draw Kiln's panels in background Blender, where nothing is ever drawn.

Background Blender (the bpy module) has no window to draw panels in, so `draw_all`
calls each panel's draw() with a stand-in for bpy.types.UILayout. The stand-in checks
every call against the running Blender's own RNA -- the layout function exists, its
keywords are real parameters, icons are names this Blender knows, `prop()` names a
property of its data, `operator()` names a registered operator whose properties are
set to real values -- and records what was drawn (labels, thumbnails, operators).

Run by scenarios.py inside the bpy process; imports bpy lazily through the caller.
"""

from __future__ import annotations

import inspect
import traceback

CONTAINERS = {"row", "column", "box", "split", "column_flow", "grid_flow"}


class LayoutProblem(Exception):
    """A call the real UILayout of this Blender would refuse."""


class Recorder:
    def __init__(self, bpy):
        self.bpy = bpy
        self.functions = bpy.types.UILayout.bl_rna.functions
        self.attributes = {p.identifier for p in bpy.types.UILayout.bl_rna.properties}
        self.calls: list[dict] = []

    def check_call(self, name: str, args: tuple, kwargs: dict) -> dict:
        func = self.functions[name]
        params = [p for p in func.parameters if not p.is_output]
        names = [p.identifier for p in params]
        if len(args) > len(names):
            raise LayoutProblem(f"{name}() takes {len(names)} arguments, got {len(args)}")
        given = dict(zip(names, args), **kwargs)
        unknown = set(given) - set(names)
        if unknown:
            raise LayoutProblem(f"{name}() has no parameter {sorted(unknown)}")
        for param in params:
            value = given.get(param.identifier)
            if param.identifier == "icon" and value is not None:
                icons = {item.identifier for item in param.enum_items}
                if value not in icons:
                    raise LayoutProblem(f"{name}(icon={value!r}): no such icon in Blender "
                                        f"{self.bpy.app.version_string}")
        if name.startswith("prop") and "data" in given:
            self.check_property(given["data"], given.get("property"), name)
        return given

    def check_property(self, data, prop: str, where: str) -> None:
        rna = getattr(data, "bl_rna", None)
        if rna is None or prop not in rna.properties:
            raise LayoutProblem(f"{where}(): {type(data).__name__} has no property {prop!r}")


class Layout:
    """Stands in for one UILayout; children are Layouts too."""

    def __init__(self, recorder: Recorder, panel: str):
        object.__setattr__(self, "_rec", recorder)
        object.__setattr__(self, "_panel", panel)

    def __getattr__(self, name):
        rec = self._rec
        if name not in rec.functions:
            raise AttributeError(f"UILayout has no {name}()")

        def call(*args, **kwargs):
            given = rec.check_call(name, args, kwargs)
            rec.calls.append({"panel": self._panel, "call": name,
                              **{k: _plain(v) for k, v in given.items()}})
            if name in CONTAINERS:
                return Layout(rec, self._panel)
            if name == "operator":
                return OperatorProps(rec, given.get("operator", ""))
            return None
        return call

    def __setattr__(self, name, value):
        if name not in self._rec.attributes:
            raise LayoutProblem(f"UILayout has no attribute {name!r}")


class OperatorProps:
    """What layout.operator() returns: setting a property checks it exists and fits."""

    def __init__(self, recorder: Recorder, idname: str):
        module, _, op = idname.partition(".")
        try:
            rna = getattr(getattr(recorder.bpy.ops, module), op).get_rna_type()
        except (AttributeError, KeyError):
            raise LayoutProblem(f"operator({idname!r}): no such operator") from None
        object.__setattr__(self, "_rna", rna)
        object.__setattr__(self, "_idname", idname)

    def __setattr__(self, name, value):
        prop = self._rna.properties.get(name)
        if prop is None:
            raise LayoutProblem(f"{self._idname} has no property {name!r}")
        if prop.type == 'ENUM' and value not in {i.identifier for i in prop.enum_items}:
            raise LayoutProblem(f"{self._idname}.{name} = {value!r}: not one of its items")
        if prop.type == 'STRING' and not isinstance(value, str):
            raise LayoutProblem(f"{self._idname}.{name} = {value!r}: not a string")


class PanelSelf:
    """`self` inside a draw(): the layout, the class's own methods, and (for add-on
    preferences) the real data for everything else."""

    def __init__(self, cls, layout: Layout, data=None):
        self._cls, self.layout, self._data = cls, layout, data

    def __getattr__(self, name):
        try:
            raw = inspect.getattr_static(self._cls, name)
        except AttributeError:
            return getattr(self._data, name)
        if isinstance(raw, staticmethod):
            return raw.__func__
        if inspect.isfunction(raw):
            return raw.__get__(self)
        return getattr(self._cls, name)


def _plain(value):
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def draw_all(bpy, panel_classes, extra=()) -> dict:
    """Draw every panel (and each (cls, data) in `extra`) once.

    Returns {"draws": {name: n}, "errors": [traceback], "calls": [{panel, call, ...}]}.
    """
    rec, draws, errors = Recorder(bpy), {}, []
    targets = [(cls, None) for cls in panel_classes] + list(extra)
    for cls, data in targets:
        for method in ("draw_header_preset", "draw"):
            if method not in vars(cls):
                continue
            me = PanelSelf(cls, Layout(rec, cls.__name__), data)
            try:
                getattr(cls, method)(me, bpy.context)
                draws[cls.__name__] = draws.get(cls.__name__, 0) + (method == "draw")
            except Exception:
                errors.append(f"{cls.__name__}.{method}: {traceback.format_exc()}")
    return {"draws": draws, "errors": errors, "calls": rec.calls}
