"""Real Blender (5.0.1 and 4.2 LTS): the runtime package (runtime/) imports on its own
from the installed zip with no bpy.ops side effect -- no operator, panel, preferences,
handler or timer of Kiln's until the add-on is enabled -- and registering the add-on
then adds them, in order, and unregistering takes them all away again. While the search
for the engine's Python runs, the panels draw at once and show it."""

import pytest

from conftest import BLENDERS


@pytest.fixture(scope="module", params=BLENDERS)
def seen(request, run_scenario):
    return run_scenario("runtime_import", blender=request.param)


NOTHING = {"ops": [], "kiln_in_ops": False, "classes": [], "preferences": False,
           "scene_kiln": False, "load_pre": [], "timers": []}


def test_installed_but_not_enabled_registers_nothing(seen):
    assert seen["install"] == ["FINISHED"] and seen["enabled"] is False
    assert seen["before"] == NOTHING


def test_importing_the_runtime_registers_nothing(seen):
    assert seen["runtime_file"].endswith("kiln/runtime/__init__.py")
    assert seen["after_import"] == NOTHING
    assert seen["discovery_after_import"] == "unknown"      # no search started on import
    assert seen["testing"] == []                            # the testing seam is off


def test_importing_the_runtime_brings_no_operator_panel_or_preferences_module(seen):
    modules = seen["addon_modules"]
    assert {"discovery", "history", "importer", "jobs", "paths", "session", "testing"} \
        <= set(seen["runtime_modules"])
    assert {f"runtime.{name}" for name in seen["runtime_modules"]} <= set(modules)
    assert not [m for m in modules if m.split(".")[0] in {"operators", "panels",
                                                          "preferences", "props"}], modules


def test_enable_registers_and_disable_removes_everything(seen):
    enabled = seen["after_enable"]
    assert "generate" in enabled["ops"] and enabled["kiln_in_ops"] is True
    assert enabled["classes"] == ["KILN_OT_generate", "KILN_PT_main"]
    assert enabled["preferences"] is True
    assert enabled["scene_kiln"] is True and enabled["load_pre"] == ["_on_load_pre"]
    assert seen["poll"] is True and seen["discovery_after_poll"] == "found"
    assert seen["after_disable"] == NOTHING


def test_panels_draw_at_once_while_the_search_runs_and_show_it(seen):
    """The check is held back 20 s; the draw does not wait for it."""
    assert seen["held_state"] == "searching" and seen["held_draw_s"] < 5.0
    looking = "Looking for a Python with torch to run the engine…"
    assert seen["held_labels"] == [["KILN_PT_engine", looking, "TIME"],
                                   ["KilnPreferences", looking, "TIME"]]
    assert "_watch_search" in seen["held_timers"]          # redraws when it answers


def test_the_answer_reaches_poll_and_panels(seen):
    assert seen["held_poll"] is True and seen["released_state"] == "found"
    labels = seen["released_labels"]
    assert len(labels) == 1 and labels[0][0] == "KilnPreferences" and labels[0][2] == "CHECKMARK"
    assert labels[0][1].startswith("Using ")


def test_restart_looks_again_and_starts_the_engine(seen):
    assert seen["restart"] == ["FINISHED"]
    assert seen["after_restart"] == {"state": "starting", "pid": True, "discovery": "found"}
    assert seen["stop"] == ["FINISHED"] and seen["state_after_stop"] == "stopped"
    assert seen["engines_left"] == []
