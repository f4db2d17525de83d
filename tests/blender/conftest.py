"""Fixtures for the Blender tests: the built extension zip and a scenario runner.

bpy can be imported once per process and its data persists, so every Blender
scenario runs in its own process (tests/blender/scenarios.py) with a private
BLENDER_USER_RESOURCES folder; the tests assert on the JSON it prints.

Two Blenders: 5.0.1 (the bpy in .venv, which also has torch) and 4.2 LTS, the oldest
the manifest allows (bpy 4.2 in .venv-bpy42, made by `make bpy42`; it has no torch, so
its scenarios set the engine Python to .venv's, as a user would in Preferences).
"""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EXT_CLI = "bpy/*/scripts/addons_core/bl_pkg/cli/blender_ext.py"
BPY42_PYTHON = ROOT / ".venv-bpy42" / "bin" / "python"
BLENDERS = ("5.0", "4.2")       # the versions every parametrised Blender test runs under


def blender_ext_cli(python: str) -> Path:
    """Blender's own extension builder, from the bpy wheel in the venv."""
    out = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True)
    site = Path(out.stdout.strip())
    found = sorted(site.glob(EXT_CLI))
    if not found:
        pytest.skip(f"Blender's extension builder is missing under {site}")
    return found[-1]


@pytest.fixture(scope="session")
def bpy_python(venv_python) -> str:
    check = subprocess.run([venv_python, "-c", "import bpy"], capture_output=True)
    if check.returncode != 0:
        pytest.skip("bpy is not installed in .venv (run `make setup`)")
    return venv_python


@pytest.fixture(scope="session")
def blender_pythons(bpy_python) -> dict:
    """{"5.0": python, "4.2": python or None when .venv-bpy42 is not set up}."""
    lts = None
    if BPY42_PYTHON.exists():
        check = subprocess.run([str(BPY42_PYTHON), "-c", "import bpy"], capture_output=True)
        lts = str(BPY42_PYTHON) if check.returncode == 0 else None
    return {"5.0": bpy_python, "4.2": lts}


def blender_python(blender_pythons: dict, blender: str) -> str:
    python = blender_pythons[blender]
    if python is None:
        pytest.skip(f"Blender {blender} (bpy) is not set up in .venv-bpy42: run `make bpy42`")
    return python


@pytest.fixture(scope="session")
def kiln_zip(bpy_python, tmp_path_factory) -> Path:
    """The extension zip built from the repository with Blender's builder."""
    out_dir = tmp_path_factory.mktemp("dist")
    cli = blender_ext_cli(bpy_python)
    done = subprocess.run([bpy_python, str(cli), "build", "--source-dir", str(ROOT),
                           "--output-dir", str(out_dir)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    zips = list(out_dir.glob("kiln-*.zip"))
    assert len(zips) == 1, done.stdout
    return zips[0]


@pytest.fixture(scope="session")
def zip_names(kiln_zip) -> list:
    with zipfile.ZipFile(kiln_zip) as zf:
        return zf.namelist()


@pytest.fixture(scope="session")
def run_scenario(blender_pythons, venv_python, kiln_zip, tiny_model_dir, tmp_path_factory):
    """run_scenario(name, blender="5.0", **args) -> the dict the scenario printed."""
    def run(name: str, timeout: float = 280, blender: str = "5.0", **args):
        python = blender_python(blender_pythons, blender)
        work = tmp_path_factory.mktemp(f"scenario-{name}-{blender}")
        (work / "out").mkdir()
        args = dict(zip=str(kiln_zip), model=str(tiny_model_dir), out=str(work / "out"), **args)
        if python != venv_python:              # a Blender without torch: set it up as users do
            args.setdefault("engine_python", venv_python)
        env = dict(os.environ, BLENDER_USER_RESOURCES=str(work / "user"),
                   PYTHONDONTWRITEBYTECODE="1")
        env.pop("PYTHONPATH", None)
        done = subprocess.run([python, str(HERE / "scenarios.py"), name, json.dumps(args)],
                              capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=str(work))
        lines = [l for l in done.stdout.splitlines() if l.startswith("KILN_RESULT ")]
        assert done.returncode == 0 and lines, \
            f"scenario {name} failed (rc {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        result = json.loads(lines[-1][len("KILN_RESULT "):])
        result["_work"] = str(work)
        return result
    return run
