"""Blender scenarios for tests/blender, each run in a fresh process (bpy imports once).

    .venv/bin/python tests/blender/scenarios.py NAME '{"zip": ..., "model": ..., "out": ...}'

Every scenario installs the built extension zip into the user repository as a user
would (BLENDER_USER_RESOURCES points at a temporary folder), configures it, drives the
add-on through its operators and prints one line `KILN_RESULT {json}` with what it saw;
the pytest files assert on that.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

PKG = "bl_ext.user_default.kiln"
RESULT_TAG = "KILN_RESULT "


# ---------------------------------------------------------------- helpers
def module(name: str):
    return sys.modules[f"{PKG}.{name}"]


def install(bpy, args: dict) -> dict:
    """Install + enable the zip, point Kiln at the test model and output folder."""
    done = bpy.ops.extensions.package_install_files(
        filepath=args["zip"], repo="user_default", enable_on_install=True)
    configure(bpy, args)
    return {"install": sorted(done), "enabled": PKG in bpy.context.preferences.addons}


def configure(bpy, args: dict) -> None:
    """Preferences (reset by Blender when an add-on is disabled) and panel settings.
    With "engine_python" the engine's Python is set as a user would in Preferences
    (Blender 4.2's own venv has no torch: it runs the repository's .venv)."""
    prefs = bpy.context.preferences.addons[PKG].preferences
    if args.get("engine_python"):
        prefs.python_path = args["engine_python"]
    prefs.model_source = 'FOLDER'
    prefs.model_folder = args["model"]
    prefs.device = 'CPU'
    prefs.output_dir = args["out"]
    prefs.timeout = 240.0
    props = bpy.context.scene.kiln
    props.prompt = "a red chair"
    props.seed = 7
    props.steps = args.get("steps", 4)
    props.resolution = args.get("resolution", 48)
    props.texture = '256'
    props.target_size = 2.0


def image_feeds(socket) -> bool:
    """Whether an Image Texture node with an image is upstream of `socket`."""
    seen, todo = set(), [link.from_node for link in socket.links]
    while todo:
        node = todo.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        if node.type == 'TEX_IMAGE' and node.image is not None:
            return True
        todo.extend(link.from_node for inp in node.inputs for link in inp.links)
    return False


def describe(obj) -> dict:
    mesh = obj.data
    mat = obj.active_material
    bsdf = None
    if mat is not None and mat.node_tree is not None:
        bsdf = next((n for n in mat.node_tree.nodes if n.type == 'BSDF_PRINCIPLED'), None)
    return {
        "name": obj.name, "type": obj.type,
        "faces": len(mesh.polygons), "vertices": len(mesh.vertices),
        "uv_layers": len(mesh.uv_layers),
        "smooth": bool(mesh.polygons[0].use_smooth) if len(mesh.polygons) else None,
        "material": mat.name if mat else None,
        "base_color_from_image": bool(bsdf and image_feeds(bsdf.inputs["Base Color"])),
        "collections": [c.name for c in obj.users_collection],
        "location": list(obj.location), "dimensions": list(obj.dimensions),
        "props": {k: obj[k] for k in obj.keys() if k.startswith("kiln_")},
    }


def draw_panels(bpy) -> dict:
    """Every Kiln panel and the preferences drawn once (layout_check.py): draw counts,
    errors raised while drawing, label texts and thumbnail icons shown."""
    import layout_check
    prefs = bpy.context.preferences.addons[PKG].preferences
    drawn = layout_check.draw_all(bpy, module("panels").CLASSES,
                                  extra=[(module("preferences").KilnPreferences, prefs)])
    calls = drawn.pop("calls")
    drawn["labels"] = [c.get("text") for c in calls if c["call"] == "label"]
    drawn["history_labels"] = [c.get("text") for c in calls
                               if c["call"] == "label" and c["panel"] == "KILN_PT_history"]
    drawn["thumbnails"] = [c.get("icon_value") for c in calls if c["call"] == "template_icon"]
    return drawn


def kiln_objects(bpy) -> list:
    coll = bpy.data.collections.get("Kiln")
    return sorted(coll.objects, key=lambda o: o.name) if coll else []


def engine_pid():
    client = module("runtime.session").SESSION.client
    return client.pid if client is not None else None


def alive(pid) -> bool:
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False


def engine_processes(out_dir: str) -> list[int]:
    """Live `engine serve` processes writing to `out_dir` (ours, whatever their pid)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read().split(b"\0")
        except OSError:
            continue
        if b"serve" in cmd and out_dir.encode() in cmd and alive(int(entry)):
            found.append(int(entry))
    return found


def call(op, *args, **kw):
    """Run an operator; return its result set or the error text it raised."""
    try:
        return sorted(op(*args, **kw))
    except RuntimeError as exc:
        return f"RuntimeError: {exc}"


# ---------------------------------------------------------------- background mode
def scenario_background(bpy, args: dict) -> dict:
    """Generate (undoable), variations, regenerate, history, disable/enable lifecycle."""
    res = install(bpy, args)
    scene = bpy.context.scene
    kiln = bpy.ops.kiln
    scene.kiln.prompt = ""
    res["poll_empty_prompt"] = kiln.generate.poll()
    scene.kiln.prompt = "a red chair"
    res["poll_with_prompt"] = kiln.generate.poll()
    res["setup_offline"] = call(kiln.setup_engine)

    scene.cursor.location = (1.0, 2.0, 0.0)
    n_before = len(bpy.data.objects)
    bpy.ops.ed.undo_push(message="before Kiln")
    t0 = time.perf_counter()
    res["generate"] = call(kiln.generate, 'EXEC_DEFAULT', True)      # True: push undo
    res["generate_s"] = time.perf_counter() - t0
    made = kiln_objects(bpy)
    res["object"] = describe(made[0]) if made else None
    res["objects_after_generate"] = len(bpy.data.objects) - n_before
    res["pid"] = engine_pid()
    bpy.ops.ed.undo()
    res["objects_after_undo"] = len(bpy.data.objects) - n_before
    res["kiln_after_undo"] = len(kiln_objects(bpy))
    scene = bpy.context.scene                      # undo replaced the scene's data

    scene.cursor.location = (0.0, 0.0, 0.0)
    scene.kiln.variations = 3
    before = {o.name for o in kiln_objects(bpy)}
    res["variations"] = call(kiln.variations)
    new = [o for o in kiln_objects(bpy) if o.name not in before]
    res["variation_objects"] = [describe(o) for o in sorted(new, key=lambda o: o.location.x)]

    target = new[0] if new else None
    if target is not None:
        bpy.context.view_layer.objects.active = target
        res["regenerate_source"] = {"name": target.name, "location": list(target.location)}
        res["regenerate"] = call(kiln.regenerate, seed_mode='KEEP', prompt="a blue chair")
        active = bpy.context.view_layer.objects.active
        res["regenerated"] = describe(active) if active else None
        res["source_still_there"] = res["regenerate_source"]["name"] in bpy.data.objects \
            and active.name != res["regenerate_source"]["name"]

    res.update(image_input(bpy))

    history = module("runtime.history")
    entries = history.entries(args["out"])
    res["history"] = [{"glb": e.glb, "title": e.title, "thumb": e.thumb} for e in entries]
    res["panels"] = draw_panels(bpy)
    # background Blender makes no icons (icon_id is 0), but the previews are loaded
    previews = history._PREVIEWS["collection"]
    res["previews"] = {key.rsplit(":", 1)[0]: list(p.image_size) for key, p in previews.items()}
    if entries:
        n = len(kiln_objects(bpy))
        res["history_import"] = call(kiln.history_import, filepath=entries[-1].glb)
        res["history_import_added"] = len(kiln_objects(bpy)) - n

    # Lifecycle: disabling stops the engine; enabling again and generating works.
    pid1 = engine_pid()
    bpy.ops.preferences.addon_disable(module=PKG)
    res["pid1"], res["pid1_alive_after_disable"] = pid1, alive(pid1)
    bpy.ops.preferences.addon_enable(module=PKG)
    configure(bpy, args)
    res["generate_after_enable"] = call(kiln.generate)
    pid2 = engine_pid()
    bpy.ops.preferences.addon_disable(module=PKG)
    res["pid2"], res["pid2_alive_after_disable"] = pid2, alive(pid2)
    res["engines_left"] = engine_processes(args["out"])

    path = os.path.join(args["out"], "background.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    res["blend_saved"] = os.path.isfile(path)
    return res


def image_input(bpy) -> dict:
    """Image mode from a Blender image whose white background is colour-keyed away."""
    size = 32
    img = bpy.data.images.new("swatch", size, size, alpha=True)
    rgba = [1.0] * (size * size * 4)                           # white, opaque
    for y in range(8, 24):
        for x in range(8, 24):
            i = (y * size + x) * 4
            rgba[i:i + 3] = [0.8, 0.1, 0.1]                      # a red square
    img.pixels.foreach_set(rgba)
    props = bpy.context.scene.kiln
    props.mode, props.image_source, props.image = 'IMAGE', 'BLENDER', img
    props.background, props.key_color, props.key_tolerance = 'KEY', (1.0, 1.0, 1.0), 0.1
    res = {"image_generate": call(bpy.ops.kiln.generate)}
    obj = bpy.context.active_object
    params = json.loads(obj["kiln_settings"])["params"] if obj else {}
    res["image_params"] = {k: params.get(k) for k in ("mode", "image", "prompt")}
    if params.get("image") and os.path.isfile(params["image"]):
        keyed = bpy.data.images.load(params["image"])
        alpha = list(keyed.pixels)[3::4]
        res["image_alpha_corner"] = alpha[0]
        res["image_alpha_centre"] = alpha[(size // 2) * size + size // 2]
        bpy.data.images.remove(keyed)
    props.mode = 'TEXT'
    return res


# ---------------------------------------------------------------- faults
DAMAGED = {   # kiln_settings a user (or a script) may leave on an object
    "settings_list": [1, 2],
    "params_list": {"params": ["mode", "text"], "target_size": 2.0},
    "seed_text": {"params": {"mode": "text", "prompt": "a red chair", "seed": "abc"}},
    "target_size_text": {"params": {"mode": "text", "prompt": "a red chair", "seed": 3},
                         "target_size": "big", "smooth": True},
}
ODD_SIDECARS = {  # sidecars beside GLBs in the output folder, edited by hand
    "odd": {"image": 5, "seed": "abc", "prompt": ["a", "list"], "thumbnail": 7},
    "listed": [1, 2, 3],
    "escape": {"prompt": "a mug", "seed": 2, "thumbnail": "../../etc/passwd.png"},
}


def damaged_object(bpy, name: str, settings) -> object:
    mesh = bpy.data.meshes.new(name)
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    obj["kiln_settings"] = json.dumps(settings)
    obj["kiln_prompt"] = "a red chair"
    bpy.context.view_layer.objects.active = obj
    return obj


def scenario_faults(bpy, args: dict) -> dict:
    """Every fault of issue 14, item 5 and 10: a sentence from the operator, the panels
    still draw, no job is started."""
    res = install(bpy, args)
    kiln, out = bpy.ops.kiln, args["out"]
    prefs = bpy.context.preferences.addons[PKG].preferences
    find = module("runtime.paths").engine_python      # background Blender: waits for it

    # item 10: environments, not interpreter files, decide whether torch is there
    prefs.python_path = args["torchless_python"]     # a sibling venv of Blender's, no torch
    res["poll_torchless"] = kiln.generate.poll()
    res["why_torchless"] = find(prefs).message
    prefs.python_path = args["repo_python"]          # another venv, with torch
    res["poll_repo_python"] = kiln.generate.poll()
    res["found_repo_python"] = find(prefs).python

    for name, settings in DAMAGED.items():
        damaged_object(bpy, name, settings)
        res[f"regenerate_{name}"] = call(kiln.regenerate, seed_mode='KEEP')
    res["engine_after_regenerate"] = engine_pid()
    res["files_after_regenerate"] = sorted(os.listdir(out))

    blocker = os.path.join(out, "blocker.txt")
    with open(blocker, "w") as fh:
        fh.write("not a folder")
    prefs.output_dir = blocker
    res["generate_folder_is_file"] = call(kiln.generate)
    res["open_folder_is_file"] = call(kiln.open_folder, what='OUTPUT')
    res["panels_folder_is_file"] = draw_panels(bpy)
    prefs.output_dir = os.path.join(blocker, "results")
    res["generate_folder_under_file"] = call(kiln.generate)
    res["engine_after_folders"] = engine_pid()
    prefs.output_dir = out

    for stem, sidecar in ODD_SIDECARS.items():
        with open(os.path.join(out, stem + ".glb"), "wb") as fh:
            fh.write(b"not a glb")
        with open(os.path.join(out, stem + ".json"), "w") as fh:
            json.dump(sidecar, fh)
    history = module("runtime.history")
    history.forget()
    res["history"] = [{"title": e.title, "thumb": e.thumb} for e in history.entries(out)]
    res["panels_odd_sidecars"] = draw_panels(bpy)
    res["history_import_junk"] = call(kiln.history_import, filepath=os.path.join(out, "odd.glb"))
    res["history_import_gone"] = call(kiln.history_import, filepath=os.path.join(out, "x.glb"))
    res["engines_left"] = engine_processes(out)
    return res


# ---------------------------------------------------------------- timer path
def tick_until(session, done, timeout: float, log: list) -> bool:
    """Call the timer function like bpy.app.timers would; record each tick's length."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = session.SESSION.job
        t0 = time.perf_counter()
        session.timer_tick()
        ms = (time.perf_counter() - t0) * 1000.0
        after = session.SESSION.job
        log.append({"ms": ms, "stage": job.stage if job else None,
                    "fraction": job.fraction() if job else None,
                    "ended_job": job is not None and after is None})
        if done():
            return True
        time.sleep(0.02)
    return False


def scenario_interactive(bpy, args: dict) -> dict:
    """The timer path: short ticks, advancing progress, cancel leaves the scene alone."""
    res = install(bpy, args)
    session = module("runtime.session")
    testing = module("runtime.testing").TESTING
    testing.force_timer, testing.step_delay = True, args.get("step_delay", 0.1)
    S = session.SESSION
    n_before = len(bpy.data.objects)
    bpy.ops.ed.undo_push(message="before Kiln")   # a real window has its file-load step

    t0 = time.perf_counter()
    res["generate"] = call(bpy.ops.kiln.generate)
    res["operator_ms"] = (time.perf_counter() - t0) * 1000.0
    res["busy_after_operator"] = S.busy
    res["poll_while_busy"] = bpy.ops.kiln.generate.poll()
    ticks: list = []
    res["finished"] = tick_until(session, lambda: not S.busy, 240, ticks)
    res["ticks"] = ticks
    res["objects_added"] = len(bpy.data.objects) - n_before
    res["last_error"] = S.last_error
    res["undo_after_timer_import"] = call(bpy.ops.ed.undo)
    res["objects_after_undo"] = len(bpy.data.objects) - n_before

    # Cancel in the middle of sampling.
    n_before = len(bpy.data.objects)
    names_before = sorted(o.name for o in bpy.data.objects)
    bpy.context.scene.kiln.seed = 8
    res["generate2"] = call(bpy.ops.kiln.generate)
    ticks2: list = []
    res["reached_sample"] = tick_until(
        session, lambda: S.job is not None and S.job.stage == "sample" and S.job.step >= 1,
        120, ticks2)
    t0 = time.monotonic()
    res["cancel"] = call(bpy.ops.kiln.cancel)
    res["cancel_finished"] = tick_until(session, lambda: not S.busy, 60, ticks2)
    res["cancel_s"] = time.monotonic() - t0
    res["ticks2"] = ticks2
    res["cancelled_flag"] = bool(S.last_job and S.last_job.cancelled)
    res["message_after_cancel"] = S.message
    res["objects_after_cancel"] = len(bpy.data.objects) - n_before
    res["names_unchanged"] = sorted(o.name for o in bpy.data.objects) == names_before
    res["state_after_cancel"] = S.state
    S.shutdown()
    res["engines_left"] = engine_processes(args["out"])
    return res


def scenario_crash(bpy, args: dict) -> dict:
    """Kill the engine mid-job: a clear error; the next Generate restarts and succeeds."""
    res = install(bpy, args)
    session = module("runtime.session")
    testing = module("runtime.testing").TESTING
    testing.force_timer, testing.step_delay = True, args.get("step_delay", 0.1)
    S = session.SESSION
    n_before = len(bpy.data.objects)
    res["generate"] = call(bpy.ops.kiln.generate)
    log: list = []
    res["reached_sample"] = tick_until(
        session, lambda: S.job is not None and S.job.stage == "sample", 120, log)
    pid = engine_pid()
    res["pid"] = pid
    os.kill(pid, signal.SIGKILL)
    res["job_ended"] = tick_until(session, lambda: not S.busy, 30, log)
    res["error"] = S.last_error
    res["state"] = S.state
    res["objects_after_crash"] = len(bpy.data.objects) - n_before
    res["poll_after_crash"] = bpy.ops.kiln.generate.poll()

    res["generate_again"] = call(bpy.ops.kiln.generate)
    res["pid_again"] = engine_pid()
    res["finished_again"] = tick_until(session, lambda: not S.busy, 240, log)
    res["error_again"] = S.last_error
    res["objects_after_retry"] = len(bpy.data.objects) - n_before
    S.shutdown()
    res["engines_left"] = engine_processes(args["out"])
    return res


# ---------------------------------------------------------------- the runtime package
def registered(bpy) -> dict:
    """What Kiln has put into Blender: operators, classes, handlers, timers."""
    session = sys.modules.get(f"{PKG}.runtime.session")
    paths = sys.modules.get(f"{PKG}.runtime.paths")
    timers = []
    if session is not None and bpy.app.timers.is_registered(session.timer_tick):
        timers.append("timer_tick")
    if paths is not None:
        timers += [t.__name__ for t in (paths._start_from_timer, paths._watch_search)
                   if bpy.app.timers.is_registered(t)]
    addon = bpy.context.preferences.addons.get(PKG)
    return {"ops": sorted(dir(bpy.ops.kiln)), "kiln_in_ops": "kiln" in dir(bpy.ops),
            "classes": sorted(n for n in ("KILN_PT_main", "KILN_OT_generate")
                              if hasattr(bpy.types, n)),
            "preferences": addon is not None and addon.preferences is not None,
            "scene_kiln": hasattr(bpy.types.Scene, "kiln"),
            "load_pre": sorted(h.__name__ for h in bpy.app.handlers.load_pre
                               if "kiln" in (h.__module__ or "")),
            "timers": timers}


def scenario_runtime_import(bpy, args: dict) -> dict:
    """Install the zip without enabling it, import the runtime package: nothing of Kiln's
    is registered (no operator, panel, preferences, handler or timer) and no operator,
    panel or preferences module comes along; then enable and disable it once."""
    import importlib
    import pkgutil
    done = bpy.ops.extensions.package_install_files(
        filepath=args["zip"], repo="user_default", enable_on_install=False)
    res = {"install": sorted(done), "enabled": PKG in bpy.context.preferences.addons,
           "before": registered(bpy)}
    runtime = importlib.import_module(f"{PKG}.runtime")
    res["runtime_modules"] = sorted(m.name for m in pkgutil.iter_modules(runtime.__path__))
    for name in res["runtime_modules"]:
        importlib.import_module(f"{PKG}.runtime.{name}")
    res["runtime_file"] = runtime.__file__
    res["after_import"] = registered(bpy)
    res["addon_modules"] = sorted(m[len(PKG) + 1:] for m in sys.modules
                                  if m.startswith(PKG + "."))
    discovery = sys.modules[f"{PKG}.runtime.discovery"]
    res["discovery_after_import"] = discovery.DISCOVERY.current().state
    res["testing"] = sys.modules[f"{PKG}.runtime.testing"].TESTING.engine_args()

    bpy.ops.preferences.addon_enable(module=PKG)
    res["after_enable"] = registered(bpy)
    configure(bpy, args)
    res["poll"] = bpy.ops.kiln.generate.poll()          # background: waits for the search
    res["discovery_after_poll"] = discovery.DISCOVERY.current().state
    res.update(held_search(bpy, discovery))
    session = module("runtime.session").SESSION
    res["restart"] = call(bpy.ops.kiln.restart_engine)   # looks again, then starts it
    res["after_restart"] = {"state": session.state, "pid": alive(engine_pid()),
                            "discovery": discovery.DISCOVERY.current().state}
    res["stop"] = call(bpy.ops.kiln.stop_engine)
    res["state_after_stop"] = session.state
    bpy.ops.preferences.addon_disable(module=PKG)
    res["after_disable"] = registered(bpy)
    res["engines_left"] = engine_processes(args["out"])
    return res


def held_search(bpy, discovery) -> dict:
    """A search for the engine's Python held back for up to 20 s: the panels and the
    preferences draw at once and say Kiln is looking (a timer redraws them when it
    ends); then Generate's poll, which waits in background Blender, sees the answer."""
    import threading
    import layout_check
    gate, real = threading.Event(), discovery.check_torch

    def held(python, root, timeout=discovery.CHECK_TIMEOUT):
        gate.wait(20)
        return real(python, root, timeout)

    def engine_labels() -> list:
        prefs = bpy.context.preferences.addons[PKG].preferences
        drawn = layout_check.draw_all(bpy, module("panels").CLASSES,
                                      extra=[(module("preferences").KilnPreferences, prefs)])
        return [[c["panel"], c.get("text"), c.get("icon")] for c in drawn["calls"]
                if c["call"] == "label" and c["panel"] in ("KILN_PT_engine", "KilnPreferences")
                and c.get("icon") in ("TIME", "CHECKMARK", "ERROR")] + drawn["errors"]

    res = {}
    discovery.check_torch = held
    try:
        module("runtime.paths").forget_checks()
        t0 = time.perf_counter()
        res["held_labels"] = engine_labels()
        res["held_draw_s"] = time.perf_counter() - t0
        res["held_state"] = discovery.DISCOVERY.current().state
        res["held_timers"] = registered(bpy)["timers"]
    finally:
        gate.set()
        discovery.check_torch = real
    res["held_poll"] = bpy.ops.kiln.generate.poll()
    res["released_state"] = discovery.DISCOVERY.current().state
    res["released_labels"] = engine_labels()
    return res


SCENARIOS = {"background": scenario_background, "interactive": scenario_interactive,
             "crash": scenario_crash, "faults": scenario_faults,
             "runtime_import": scenario_runtime_import}


def main() -> int:
    name, args = sys.argv[1], json.loads(sys.argv[2])
    import bpy
    result = SCENARIOS[name](bpy, args)
    result["blender"] = bpy.app.version_string
    print(RESULT_TAG + json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
