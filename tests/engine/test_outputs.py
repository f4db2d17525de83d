"""engine/io/outputs.py: an output path Kiln cannot write is refused up front with a
sentence naming it, and a write that fails half way leaves no .part file."""

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from engine.errors import BAD_REQUEST, KilnError
from engine.io import outputs

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"  # outputs.py is stdlib only


def refused(out) -> KilnError:
    with pytest.raises(KilnError) as info:
        outputs.check_writable(out)
    assert info.value.code == BAD_REQUEST and info.value.message.endswith(".")
    return info.value


def test_a_fresh_path_in_missing_folders_is_writable(tmp_path):
    assert outputs.check_writable(tmp_path / "new" / "deeper" / "mug.glb") \
        == tmp_path / "new" / "deeper" / "mug.json"


def test_a_folder_given_as_the_output_is_refused(tmp_path):
    (tmp_path / "chair.glb").mkdir()
    err = refused(tmp_path / "chair.glb")
    assert str(tmp_path / "chair.glb") in err.message and "is a folder" in err.message


@pytest.mark.parametrize("below", ["x.glb", "sub/x.glb"])
def test_a_path_under_a_regular_file_is_refused(tmp_path, below):
    notes = tmp_path / "somefile.txt"
    notes.write_text("notes")
    err = refused(notes / below)
    assert f"{notes} is a file, not a folder" in err.message
    assert "choose another output folder" in err.message
    assert notes.read_text() == "notes"


def test_a_name_too_long_for_the_file_system_is_refused(tmp_path):
    err = refused(tmp_path / ("a" * 300 + ".glb"))
    assert "too long" in err.message and "shorter name" in err.message
    # the sidecar's .part is the longest name written: it must fit too
    refused(tmp_path / ("b" * (outputs.NAME_MAX - len(".json.part") + 1) + ".glb"))
    assert outputs.check_writable(tmp_path / ("c" * (outputs.NAME_MAX - 10) + ".glb"))


def test_a_nul_byte_in_the_name_is_refused(tmp_path):
    err = refused(tmp_path / "mu\x00g.glb")
    assert "NUL character" in err.message


def test_a_folder_the_user_may_not_write_in_is_refused(tmp_path, monkeypatch):
    """Root may write anywhere, so the OS's answer is simulated (and really asked of an
    unprivileged user below)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked)
    for out in (locked / "mug.glb", locked / "new" / "mug.glb"):
        err = refused(out)
        assert f"may not write in the folder {locked}" in err.message
        assert "choose another output folder" in err.message


@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0
                    or not os.path.exists(SYSTEM_PYTHON), reason="needs root to drop")
def test_a_read_only_folder_is_refused_as_an_unprivileged_user():
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        os.chmod(folder, 0o755)                        # readable, writable by root only
        code = ("import json,sys; from engine.io import outputs\n"
                "try:\n outputs.check_writable(sys.argv[1]); print('[]')\n"
                "except Exception as e: print(json.dumps([e.code, e.message]))")
        out = subprocess.run([SYSTEM_PYTHON, "-c", code, f"{folder}/mug.glb"], cwd=ROOT,
                             user=65534, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        code, message = json.loads(out.stdout)
        assert code == BAD_REQUEST and f"may not write in the folder {folder}" in message


def test_a_write_that_fails_half_way_leaves_no_part_file(tmp_path, monkeypatch):
    """ENOSPC in the middle of writing: the partial .part file is removed."""
    real_write = Path.write_bytes

    def full_disk(self, data):
        real_write(self, data[:10])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    with pytest.raises(OSError, match="No space left"):
        outputs.write_atomic(tmp_path / "mug.glb", b"glTF" * 1000)
    assert list(tmp_path.iterdir()) == []
