"""Issue 14, items 5 and 10, in real Blender (5.0.1 and 4.2 LTS): a fault the artist can
fix is an operator report naming the fix, never a traceback; the panels still draw;
nothing is started before the request is known to be good; the engine Python is judged
by its environment, not by the interpreter file it resolves to."""

import os
import subprocess

import pytest

from conftest import BLENDERS


@pytest.fixture(scope="module")
def torchless_python(venv_python, tmp_path_factory) -> str:
    """A virtual environment without torch, made from the same Python as .venv."""
    env = tmp_path_factory.mktemp("sibling") / "venv"
    subprocess.run([venv_python, "-m", "venv", "--without-pip", str(env)], check=True)
    python = env / "bin" / "python"
    assert os.path.realpath(python) == os.path.realpath(venv_python)   # the trap itself
    return str(python)


@pytest.fixture(scope="module", params=BLENDERS)
def seen(request, run_scenario, torchless_python, venv_python):
    return run_scenario("faults", blender=request.param, torchless_python=torchless_python,
                        repo_python=venv_python)


def _sentence(report: str) -> str:
    assert isinstance(report, str) and report.startswith("RuntimeError: Error: "), report
    assert "Traceback" not in report and "Python:" not in report, report
    return report


def test_blender_version(seen):
    assert seen["blender"].startswith(("5.0", "4.2"))


# ---------------------------------------------------------------- item 10
def test_a_sibling_venv_without_torch_is_refused(seen):
    assert seen["poll_torchless"] is False
    assert "cannot import torch" in seen["why_torchless"]
    assert "Set up engine" in seen["why_torchless"]


def test_a_sibling_venv_with_torch_is_accepted(seen, venv_python):
    assert seen["poll_repo_python"] is True
    assert seen["found_repo_python"] == venv_python


# ---------------------------------------------------------------- item 5: regenerate
@pytest.mark.parametrize("case, what", [
    ("settings_list", "kiln_settings property is not a JSON object"),
    ("params_list", "stored params are not a dictionary"),
    ("seed_text", "stored seed 'abc' is not a whole number"),
    ("target_size_text", "stored target size 'big' is not a positive number"),
])
def test_regenerating_damaged_settings_names_the_fix(seen, case, what):
    report = _sentence(seen[f"regenerate_{case}"])
    assert f"Kiln cannot regenerate {case}: its {what}" in report
    assert "Generate it afresh from the Kiln panel" in report


def test_damaged_settings_start_no_job(seen):
    assert seen["engine_after_regenerate"] is None          # refused before the engine
    assert seen["files_after_regenerate"] == []


# ---------------------------------------------------------------- item 5: output folder
def test_an_output_folder_that_is_a_file_names_the_fix(seen):
    for key in ("generate_folder_is_file", "open_folder_is_file"):
        report = _sentence(seen[key])
        assert "blocker.txt is a file, not a folder" in report
        assert "choose another Output folder in Preferences > Add-ons > Kiln" in report


def test_an_output_folder_under_a_file_names_the_fix(seen):
    report = _sentence(seen["generate_folder_under_file"])
    assert "Kiln cannot make the output folder" in report and "is a file" in report
    assert "choose another Output folder" in report
    assert seen["engine_after_folders"] is None


def test_the_panels_draw_and_say_what_is_wrong_with_the_folder(seen):
    drawn = seen["panels_folder_is_file"]
    assert drawn["errors"] == []
    assert drawn["draws"]["KILN_PT_history"] == 1
    said = " ".join(drawn["history_labels"])
    assert "is a file, not a folder" in said


# ---------------------------------------------------------------- item 5: history
def test_malformed_sidecars_get_safe_titles(seen):
    titles = sorted(h["title"] for h in seen["history"])
    assert titles == ["a mug · seed 2", "listed.glb · seed ?", "odd.glb · seed ?"]
    assert all(h["thumb"] == "" for h in seen["history"])   # 7 and ../.. are no thumbnails


def test_the_history_panel_draws_with_malformed_sidecars(seen):
    drawn = seen["panels_odd_sidecars"]
    assert drawn["errors"] == []
    assert set(drawn["draws"]) >= {"KILN_PT_main", "KILN_PT_output", "KILN_PT_engine",
                                   "KILN_PT_history", "KilnPreferences"}
    assert "odd.glb · seed ?" in drawn["history_labels"]


def test_reimporting_a_damaged_glb_names_the_fix(seen):
    report = _sentence(seen["history_import_junk"])
    assert "could not import" in report and "generate it again" in report
    report = _sentence(seen["history_import_gone"])
    assert "no longer exists" in report and "Refresh History" in report
    assert seen["engines_left"] == []
