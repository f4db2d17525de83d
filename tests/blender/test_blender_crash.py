"""Killing the engine mid-job: a clear error, then the next Generate restarts it."""

import pytest


@pytest.fixture(scope="module")
def seen(run_scenario):
    return run_scenario("crash", step_delay=0.1)


def test_crash_gives_a_clear_error(seen):
    assert seen["reached_sample"] and seen["job_ended"]
    assert "engine stopped unexpectedly" in seen["error"]
    assert "Generate restarts it" in seen["error"]
    assert seen["state"] == "crashed"
    assert seen["objects_after_crash"] == 0


def test_next_generate_restarts_and_succeeds(seen):
    assert seen["poll_after_crash"] is True
    assert seen["generate_again"] == ["FINISHED"]
    assert seen["pid_again"] and seen["pid_again"] != seen["pid"]
    assert seen["finished_again"] and seen["error_again"] == ""
    assert seen["objects_after_retry"] == 1
    assert seen["engines_left"] == []
