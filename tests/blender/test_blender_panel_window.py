"""The Kiln sidebar panel draws in a real Blender window (Debian's Blender under Xvfb).

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
def window_run(kiln_zip, venv_python, tmp_path_factory):
    missing = _missing()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install blender xvfb xauth)")
    work = tmp_path_factory.mktemp("panel-window")
    addon = work / "scripts" / "addons" / "kiln"
    addon.mkdir(parents=True)
    with zipfile.ZipFile(kiln_zip) as zf:
        zf.extractall(addon)
    png, report = work / "panel.png", work / "report.json"
    env = dict(os.environ, BLENDER_USER_SCRIPTS=str(work / "scripts"),
               BLENDER_USER_CONFIG=str(work / "config"), KILN_PYTHON=venv_python)
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", "blender", "--factory-startup",
           "-noaudio", "--enable-event-simulate", "--python", str(HERE / "panel_window.py"),
           "--", str(png), str(report)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env,
                          cwd=str(work))
    assert report.is_file(), f"rc {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return json.loads(report.read_text()), png, done


def test_panel_draws_without_errors(window_run):
    seen, _, done = window_run
    assert seen["errors"] == []
    assert seen["draws"].get("KILN_PT_main", 0) >= 1
    assert seen["draws"].get("KILN_PT_engine", 0) >= 1
    assert "Traceback" not in done.stderr, done.stderr[-2000:]


def test_screenshot_written(window_run):
    _, png, _ = window_run
    assert png.is_file() and png.stat().st_size > 10_000
