"""The extension zip: built and validated by Blender's own tools, carrying the right files."""

import re
import subprocess
import tomllib

import pytest

from conftest import BLENDERS, ROOT, blender_ext_cli, blender_python


def test_manifest_fields():
    manifest = tomllib.loads((ROOT / "blender_manifest.toml").read_text())
    assert manifest["schema_version"] == "1.0.0"
    assert manifest["id"] == "kiln"
    assert manifest["blender_version_min"] == "4.2.0"
    assert manifest["license"] == ["SPDX:GPL-3.0-or-later"]
    assert manifest["permissions"]["files"].strip()
    excluded = manifest["build"]["paths_exclude_pattern"]
    for pattern in ("/tests/", "/docs/", ".*", "__pycache__/", "/out/"):
        assert pattern in excluded


@pytest.mark.parametrize("blender", BLENDERS)
def test_zip_validates(blender_pythons, kiln_zip, blender):
    """Each Blender's own validator accepts the zip (4.2 LTS: the manifest's minimum)."""
    python = blender_python(blender_pythons, blender)
    done = subprocess.run([python, str(blender_ext_cli(python)), "validate",
                           str(kiln_zip)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success" in done.stdout


def test_zip_carries_addon_and_engine(zip_names):
    for name in ("blender_manifest.toml", "__init__.py", "preferences.py", "props.py",
                 "runtime/__init__.py", "runtime/session.py", "operators/__init__.py",
                 "panels/__init__.py",
                 "engine/__init__.py", "engine/client.py", "engine/protocol.py",
                 "engine/server.py", "engine/pipeline.py", "requirements.txt"):
        assert name in zip_names, name
    if (ROOT / "weights").is_dir():
        assert any(n.startswith("weights/") for n in zip_names)


def test_zip_leaves_out_dev_files(zip_names):
    for name in zip_names:
        top = name.split("/")[0]
        assert top not in {"tests", "docs", ".venv", ".venv-bpy42", "out", "dist", "mk",
                           "scripts", ".git", ".ci", "Makefile", "requirements-dev.txt",
                           "requirements-bpy42.txt"}, name
        assert "__pycache__" not in name and not name.endswith(".pyc"), name


def test_addon_side_imports_no_heavy_engine_modules():
    """The Blender side may import only engine.protocol, engine.client, engine.errors."""
    allowed = {"protocol", "client", "errors"}
    files = [ROOT / "__init__.py", ROOT / "preferences.py", ROOT / "props.py",
             *(ROOT / "runtime").glob("*.py"), *(ROOT / "operators").glob("*.py"),
             *(ROOT / "panels").glob("*.py")]
    used = set()
    for path in files:
        for line in path.read_text().splitlines():
            line = line.strip()
            assert not line.startswith(("import torch", "from torch", "import engine",
                                        "from engine")), f"{path.name}: {line}"
            if match := re.match(r"from \.+engine\.(\w+) import", line):
                used.add(match.group(1))
            elif match := re.match(r"from \.+engine import (.+)", line):
                used |= {part.split()[0] for part in match.group(1).split(",")}
    assert used and used <= allowed, used
