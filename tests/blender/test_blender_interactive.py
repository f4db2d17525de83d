"""The interactive (timer) path, driven in background Blender by calling the timer.

The longest polling tick is printed (run with -s) and stored in the scenario result;
the bound asserted here is loose on purpose (no timed tests): it catches a tick that
waits on the engine, which would take a whole sampling step (>= 100 ms here).
"""

import pytest

BLOCKING_MS = 90.0     # a tick that waited for one engine step would exceed this


@pytest.fixture(scope="module")
def seen(run_scenario):
    return run_scenario("interactive", step_delay=0.1)


def _polling(ticks):
    return [t["ms"] for t in ticks if not t["ended_job"]]


def test_operator_returns_at_once(seen):
    assert seen["generate"] == ["FINISHED"]
    assert seen["busy_after_operator"] is True
    assert seen["poll_while_busy"] is False          # no second job


def test_ticks_never_block(seen):
    polling = _polling(seen["ticks"]) + _polling(seen["ticks2"])
    assert len(polling) > 20
    longest = max(polling)
    imports = [t["ms"] for t in seen["ticks"] if t["ended_job"]]
    print(f"\nlongest polling tick {longest:.2f} ms over {len(polling)} ticks; "
          f"import tick {max(imports):.1f} ms")
    assert longest < BLOCKING_MS


def test_progress_advances(seen):
    fractions = [t["fraction"] for t in seen["ticks"] if t["fraction"] is not None]
    stages = {t["stage"] for t in seen["ticks"]}
    assert {"sample", "extract", "texture"} <= stages
    assert fractions == sorted(fractions)                 # never goes back
    assert fractions[-1] > 0.9 and len(set(fractions)) >= 5


def test_result_is_imported_and_undoable(seen):
    assert seen["finished"] and seen["last_error"] == ""
    assert seen["objects_added"] == 1
    assert seen["undo_after_timer_import"] == ["FINISHED"]
    assert seen["objects_after_undo"] == 0


def test_cancel_stops_and_leaves_the_scene(seen):
    assert seen["reached_sample"] and seen["cancel"] == ["FINISHED"]
    assert seen["cancel_finished"] and seen["cancelled_flag"]
    assert seen["message_after_cancel"] == "Cancelled."
    assert seen["objects_after_cancel"] == 0 and seen["names_unchanged"]
    assert seen["state_after_cancel"] == "ready"          # the engine stays warm
    assert seen["engines_left"] == []
