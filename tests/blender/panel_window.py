"""Run inside a real Blender window (Debian's Blender 3.4 under Xvfb):

    blender --factory-startup -noaudio --python tests/blender/panel_window.py -- OUT.png OUT.json

Kiln must already be in the user scripts folder as a legacy add-on named `kiln`
(BLENDER_USER_SCRIPTS/addons/kiln). The script enables it, opens View3D > Sidebar >
Kiln, fills in a prompt, lets Blender draw the panels a few times, counts every draw
and every exception raised while drawing, saves a screenshot of the 3D View and quits.
"""

import json
import sys
import traceback

import bpy

ARGS = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
PNG, REPORT = ARGS[0], ARGS[1]
STATE = {"draws": {}, "errors": [], "ticks": 0, "category": None, "blender": bpy.app.version_string}


def count_draws(panel_classes) -> None:
    """Wrap each panel's draw (re-registering: Blender 3.4 crashes if a registered
    panel's draw is swapped in place)."""
    for cls in reversed(panel_classes):
        bpy.utils.unregister_class(cls)
    for cls in panel_classes:
        cls.draw = counted(cls.draw, cls.__name__)
        bpy.utils.register_class(cls)


def counted(original, name):
    def draw(self, context):
        STATE["draws"][name] = STATE["draws"].get(name, 0) + 1
        try:
            original(self, context)
        except Exception:
            STATE["errors"].append(traceback.format_exc())
            raise
    return draw


def view3d():
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == 'VIEW_3D':
                return window, area
    raise RuntimeError("no 3D View in the startup file")


def setup() -> None:
    bpy.ops.preferences.addon_enable(module="kiln")
    import kiln.panels
    count_draws(kiln.panels.CLASSES)
    scene = bpy.context.scene
    scene.kiln.prompt = "a small wooden treasure chest"
    scene.kiln.seed = 42
    scene.kiln.variations = 4
    window, area = view3d()
    space = area.spaces.active
    space.show_region_ui = True
    for obj in list(scene.objects):              # an empty stage, the panel in front
        if obj.type == 'MESH':
            bpy.data.objects.remove(obj)
    region = next(r for r in area.regions if r.type == 'UI')
    if hasattr(region, "active_panel_category"):  # Blender 4.2+
        region.active_panel_category = "Kiln"
    STATE["category"] = getattr(region, "active_panel_category", None)


def simulate(window, area, kind, down=None, **keys) -> None:
    """Press + release `kind` over the sidebar; `down` (px from its top) aims at its tabs."""
    region = next(r for r in area.regions if r.type == 'UI')
    x, y = region.x + region.width // 2, region.y + region.height // 2
    if down is not None:
        x, y = region.x + region.width - 8, region.y + region.height - down
    window.event_simulate(type='MOUSEMOVE', value='NOTHING', x=x, y=y)
    window.event_simulate(type=kind, value='PRESS', x=x, y=y, **keys)
    window.event_simulate(type=kind, value='RELEASE', x=x, y=y, **keys)


def widen_sidebar(window, area, pixels: int) -> None:
    """Drag the sidebar's left edge outwards so labels are not cut short."""
    region = next(r for r in area.regions if r.type == 'UI')
    x, y = region.x + 2, region.y + region.height // 2
    window.event_simulate(type='MOUSEMOVE', value='NOTHING', x=x, y=y)
    window.event_simulate(type='LEFTMOUSE', value='PRESS', x=x, y=y)
    for step in range(1, 6):
        window.event_simulate(type='MOUSEMOVE', value='NOTHING', x=x - pixels * step // 5, y=y)
    window.event_simulate(type='LEFTMOUSE', value='RELEASE', x=x - pixels, y=y)


def tick():
    """Close the splash, bring the Kiln tab forward, let it draw, then screenshot."""
    STATE["ticks"] += 1
    window, area = view3d()
    print("kiln panel_window tick", STATE["ticks"], STATE["draws"], flush=True)
    try:
        drawn = STATE["draws"].get("KILN_PT_main", 0)
        can_simulate = hasattr(window, "event_simulate")
        if STATE["ticks"] == 1 and can_simulate:
            simulate(window, area, 'ESC')             # the first-run splash
        elif STATE["ticks"] == 2 and can_simulate:
            widen_sidebar(window, area, 110)
        elif not drawn and can_simulate and STATE["category"] != "Kiln":
            # Blender 3.x has no API for the sidebar tab: click down the tab strip
            # until the Kiln tab is the one drawn.
            simulate(window, area, 'LEFTMOUSE', down=10 + 14 * (STATE["ticks"] - 3))
        if (drawn >= 3 and STATE["ticks"] > 3) or STATE["ticks"] >= 40:
            return finish(window, area)
        area.tag_redraw()
        return 0.3
    except Exception:
        STATE["errors"].append(traceback.format_exc())
        return finish(window, area)


def finish(window, area):
    try:
        with bpy.context.temp_override(window=window, area=area):
            bpy.ops.screen.screenshot_area(filepath=PNG)
    except Exception:
        STATE["errors"].append(traceback.format_exc())
    with open(REPORT, "w") as fh:
        json.dump(STATE, fh, indent=2)
    bpy.ops.wm.quit_blender()
    return None


try:
    setup()
except Exception:
    STATE["errors"].append(traceback.format_exc())
bpy.app.timers.register(tick, first_interval=1.0)
