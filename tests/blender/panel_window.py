"""Run inside a real Blender window (Debian's Blender 3.4 under Xvfb):

    blender --factory-startup -noaudio --enable-event-simulate \
        --python tests/blender/panel_window.py -- OUT.png OUT.json [--glb F] [--model DIR]

Kiln must already be in the user scripts folder as a legacy add-on named `kiln`
(BLENDER_USER_SCRIPTS/addons/kiln). The script enables it, opens View3D > Sidebar >
Kiln, fills in a prompt and lets Blender draw, counting every panel draw and every
exception raised while drawing. With --glb it first re-imports that result through
Kiln's history operator. With --model it presses Generate in the live window: the
engine runs while Blender's own timer polls it, and every poll is timed. Then it saves
a screenshot of the 3D View, writes the report and quits.
"""

import argparse
import json
import os
import sys
import time
import traceback

import bpy


def parse():
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    parser = argparse.ArgumentParser()
    parser.add_argument("png")
    parser.add_argument("report")
    parser.add_argument("--glb", default="")
    parser.add_argument("--model", default="")
    parser.add_argument("--prompt", default="a small wooden treasure chest")
    return parser.parse_args(argv)


ARGS = parse()
STATE = {"blender": bpy.app.version_string, "draws": {}, "errors": [], "ticks": 0,
         "imported": None, "generate": None, "generated": None, "tick_ms": [],
         "job_error": None, "stages": [], "import_ms": [], "thumbnail_icons": {}}
T0 = time.monotonic()


# ---------------------------------------------------------------- instrumentation
def count_draws(classes) -> None:
    """Wrap each panel's draw (re-registering: Blender 3.4 crashes if a registered
    panel's draw is swapped in place). Other classes (UI lists) are left alone."""
    panel_classes = [cls for cls in classes if issubclass(cls, bpy.types.Panel)]
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


def record_icons(history) -> None:
    """Keep the icon the History panel got for each thumbnail (0: none made)."""
    original = history.icon_id

    def icon_id(entry):
        icon = original(entry)
        if entry.thumb:
            STATE["thumbnail_icons"][entry.thumb] = icon
        return icon
    history.icon_id = icon_id


def time_polls(session) -> None:
    """Time every poll Blender's timer makes (SESSION.tick, called by timer_tick)."""
    original = session.SESSION.tick

    def tick():
        before, t0 = session.SESSION.job, time.perf_counter()
        try:
            return original()
        finally:
            job = session.SESSION.job
            ms = (time.perf_counter() - t0) * 1000.0
            if before is not None and job is None:          # this tick imported the result
                STATE["import_ms"].append(ms)
            else:
                STATE["tick_ms"].append(ms)
            if job is not None and (not STATE["stages"] or STATE["stages"][-1] != job.stage):
                STATE["stages"].append(job.stage)
    session.SESSION.tick = tick


# ---------------------------------------------------------------- window helpers
def view3d():
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == 'VIEW_3D':
                return window, area
    raise RuntimeError("no 3D View in the startup file")


def region_of(area, kind):
    return next(r for r in area.regions if r.type == kind)


def simulate(window, area, kind, down=None) -> None:
    """Press + release `kind` over the sidebar; `down` (px from its top) aims at its tabs."""
    region = region_of(area, 'UI')
    x, y = region.x + region.width // 2, region.y + region.height // 2
    if down is not None:
        x, y = region.x + region.width - 8, region.y + region.height - down
    window.event_simulate(type='MOUSEMOVE', value='NOTHING', x=x, y=y)
    window.event_simulate(type=kind, value='PRESS', x=x, y=y)
    window.event_simulate(type=kind, value='RELEASE', x=x, y=y)


def frame(window, area, zoom_out: float = 1.8) -> None:
    space = area.spaces.active
    space.shading.type = 'SOLID'
    space.shading.color_type = 'TEXTURE'
    region = region_of(area, 'WINDOW')
    with bpy.context.temp_override(window=window, area=area, region=region):
        bpy.ops.view3d.view_selected()
    space.region_3d.view_distance *= zoom_out


# ---------------------------------------------------------------- steps
def setup() -> None:
    bpy.ops.preferences.addon_enable(module="kiln")
    import kiln.panels
    from kiln.runtime import history, session, testing
    count_draws(kiln.panels.CLASSES)
    time_polls(session)
    record_icons(history)
    prefs = bpy.context.preferences.addons["kiln"].preferences
    if ARGS.model:
        prefs.model_source, prefs.model_folder = 'FOLDER', ARGS.model
    out = os.path.dirname(ARGS.glb) if ARGS.glb else os.path.dirname(os.path.abspath(ARGS.report))
    prefs.output_dir = out
    scene = bpy.context.scene
    scene.kiln.prompt, scene.kiln.seed = ARGS.prompt, 42
    if ARGS.model:                       # quick settings for the test model
        scene.kiln.steps, scene.kiln.resolution, scene.kiln.texture = 4, 48, '256'
        # the tiny model samples 4 steps faster than two timer polls on a busy machine:
        # slow each step so the polls are sure to see sampling in progress
        testing.TESTING.step_delay = 0.3
    for obj in list(scene.objects):      # an empty stage, the panel in front
        if obj.type == 'MESH':
            bpy.data.objects.remove(obj)
    window, area = view3d()
    area.spaces.active.show_region_ui = True
    if ARGS.glb:
        with bpy.context.temp_override(window=window, area=area):
            bpy.ops.kiln.history_import(filepath=ARGS.glb)
        STATE["imported"] = bpy.context.active_object.name
        frame(window, area)
    region = region_of(area, 'UI')
    if hasattr(region, "active_panel_category"):      # Blender 4.2+
        region.active_panel_category = "Kiln"


def tick():
    """Close the splash, bring the Kiln tab forward, generate, then screenshot."""
    STATE["ticks"] += 1
    window, area = view3d()
    from kiln.runtime.session import SESSION
    try:
        drawn = STATE["draws"].get("KILN_PT_main", 0)
        if STATE["ticks"] == 1:
            simulate(window, area, 'ESC')             # the first-run splash
        elif not drawn:
            # Blender 3.x has no API for the sidebar tab: click down the tab strip
            # until the Kiln tab is the one drawn.
            simulate(window, area, 'LEFTMOUSE', down=10 + 14 * (STATE["ticks"] - 2))
        elif ARGS.model and STATE["generate"] is None and engine_searching() \
                and time.monotonic() - T0 < 120:
            # the search for the engine's Python runs off the UI thread; until it answers,
            # Generate's poll() refuses (and the Engine panel says it is looking)
            STATE["searching_ticks"] = STATE.get("searching_ticks", 0) + 1
        elif ARGS.model and STATE["generate"] is None:
            with bpy.context.temp_override(window=window, area=area):
                STATE["generate"] = sorted(bpy.ops.kiln.generate())
        elif STATE["generate"] is not None and SESSION.busy and time.monotonic() - T0 < 300:
            return 0.2
        elif STATE["generate"] is not None and "settle" not in STATE:
            STATE["job_error"] = SESSION.last_error
            STATE["busy_at_end"] = SESSION.busy
            obj = bpy.context.active_object
            STATE["generated"] = obj.name if obj is not None else None
            if obj is not None:
                frame(window, area)
            STATE["settle"] = STATE["ticks"] + 3          # let the panels redraw
        elif (drawn >= 3 and STATE["ticks"] >= STATE.get("settle", 0)) \
                or time.monotonic() - T0 > 330:
            return finish(window, area)
        area.tag_redraw()
        return 0.3
    except Exception:
        STATE["errors"].append(traceback.format_exc())
        return finish(window, area)


def finish(window, area):
    try:
        with bpy.context.temp_override(window=window, area=area):
            bpy.ops.screen.screenshot_area(filepath=ARGS.png)
    except Exception:
        STATE["errors"].append(traceback.format_exc())
    try:
        from kiln.runtime.session import SESSION
        SESSION.shutdown()
    except Exception:
        STATE["errors"].append(traceback.format_exc())
    with open(ARGS.report, "w") as fh:
        json.dump(STATE, fh, indent=2)
    bpy.ops.wm.quit_blender()
    return None


def engine_searching() -> bool:
    from kiln.runtime import discovery
    return discovery.DISCOVERY.current().state in (discovery.UNKNOWN, discovery.SEARCHING)


def give_up():
    """setup() failed: report at once instead of clicking for minutes."""
    return finish(*view3d())


try:
    setup()
    bpy.app.timers.register(tick, first_interval=1.0)
except Exception:
    STATE["errors"].append(traceback.format_exc())
    bpy.app.timers.register(give_up, first_interval=1.0)
