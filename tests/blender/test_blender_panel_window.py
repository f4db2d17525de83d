"""The Kiln sidebar panel draws in a real Blender window (Debian's Blender under Xvfb),
and Generate pressed there runs through Blender's own timer without blocking it.

Debian's Blender (3.4) predates extensions, so Kiln loads there as a legacy add-on
(bl_info) unpacked from the same zip into BLENDER_USER_SCRIPTS/addons/kiln.
panel_window.py counts the draws of each panel and any exception raised while drawing.
"""

import json
import os
import shutil
import subprocess
import zipfile

import pytest

from conftest import HERE


def _missing() -> list:
    return [name for name in ("blender", "xvfb-run", "Xvfb") if shutil.which(name) is None]


@pytest.fixture(scope="module")
def window_run(kiln_zip, venv_python, tiny_model_dir, tmp_path_factory):
    missing = _missing()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install blender xvfb xauth)")
    work = tmp_path_factory.mktemp("panel-window")
    addon = work / "scripts" / "addons" / "kiln"
    addon.mkdir(parents=True)
    with zipfile.ZipFile(kiln_zip) as zf:
        zf.extractall(addon)
    (work / "out").mkdir()
    png, report = work / "panel.png", work / "out" / "report.json"
    env = dict(os.environ, BLENDER_USER_SCRIPTS=str(work / "scripts"),
               BLENDER_USER_CONFIG=str(work / "config"),
               BLENDER_USER_DATAFILES=str(work / "datafiles"), KILN_PYTHON=venv_python)
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1280x900x24", "blender", "--factory-startup",
           "-noaudio", "--enable-event-simulate", "--python", str(HERE / "panel_window.py"),
           "--", str(png), str(report), "--model", str(tiny_model_dir)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=420, env=env,
                          cwd=str(work))
    assert report.is_file(), f"rc {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return json.loads(report.read_text()), png, done


def test_panel_draws_without_errors(window_run):
    seen, _, done = window_run
    assert seen["errors"] == []
    assert seen["draws"].get("KILN_PT_main", 0) >= 1
    assert seen["draws"].get("KILN_PT_engine", 0) >= 1
    assert "Traceback" not in done.stderr, done.stderr[-2000:]


def test_generate_in_a_live_window(window_run):
    """Generate pressed in a real window: Blender's own timer polls the engine."""
    seen, _, _ = window_run
    assert seen["generate"] == ["FINISHED"]
    assert seen["job_error"] == "" and seen["busy_at_end"] is False
    assert seen["generated"] and seen["generated"].endswith("_s42")
    # Stages as the polls saw them (a fast stage may fall between two polls):
    # in the engine's order, and progress got past sampling.
    order = ["waiting", "load", "condition", "sample", "decode", "extract", "texture", "export"]
    stages = seen["stages"]
    assert [order.index(s) for s in stages] == sorted(order.index(s) for s in stages)
    assert "sample" in stages and order.index(stages[-1]) > order.index("sample")
    polls = seen["tick_ms"]
    assert len(polls) > 10 and len(seen["import_ms"]) == 1
    print(f"\nreal window: {len(polls)} polls, longest {max(polls):.2f} ms, "
          f"median {sorted(polls)[len(polls) // 2]:.3f} ms; import tick "
          f"{seen['import_ms'][0]:.0f} ms")


def test_history_shows_the_engines_thumbnail(window_run):
    """The result generated in the window has its thumbnail, drawn as a real icon."""
    seen, _, _ = window_run
    icons = seen["thumbnail_icons"]
    assert any(path.endswith(seen["generated"] + ".png") for path in icons), icons
    assert all(icon > 0 for icon in icons.values()), icons


def test_screenshot_written(window_run):
    _, png, _ = window_run
    assert png.is_file() and png.stat().st_size > 10_000
