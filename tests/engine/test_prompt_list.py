"""Issue 13, item 2: `python -m engine generate --prompts FILE.txt --out DIR` -- one GLB +
JSON per good line, a contact sheet of them all, a bad line named and skipped."""

import io
import json
import subprocess

import numpy as np
import pytest
from PIL import Image

from engine import protocol
from engine.cli import build_parser
from engine.errors import KilnError

LIST = """# chairs and mugs
a red chair

 | 5
a blue mug | 3
a lamp | seven
"""


def test_a_list_gives_its_prompts_and_seeds_and_names_each_bad_line():
    items, bad = protocol.parse_prompt_list(LIST, default_seed=11)
    assert items == [{"line": 2, "prompt": "a red chair", "seed": 11},
                     {"line": 5, "prompt": "a blue mug", "seed": 3}]
    assert [b["line"] for b in bad] == [4, 6]
    assert bad[0]["message"].startswith("Line 4: the prompt is empty")
    assert "Line 6: the seed 'seven'" in bad[1]["message"]
    assert "'a red chair | 7'" in bad[1]["message"]


def test_a_seed_out_of_range_and_an_over_long_list_are_refused():
    _, bad = protocol.parse_prompt_list("a mug | 99999999999")
    assert '"seed" field' in bad[0]["message"] and "out of range" in bad[0]["message"]
    with pytest.raises(KilnError, match="at most 500"):
        protocol.parse_prompt_list("a mug\n" * (protocol.MAX_LIST_PROMPTS + 1))


def _run(venv_python, repo_root, model, listing, out, *extra):
    cmd = [venv_python, "-m", "engine", "generate", "--prompts", str(listing), "--model",
           str(model), "--device", "cpu", "--steps", "2", "--resolution", "32",
           "--texture", "64", "--out", str(out), *extra]
    return subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=300)


def test_a_list_with_a_bad_line_gives_the_others_a_sheet_and_a_clear_line(
        venv_python, repo_root, tiny_model_dir, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("a red chair\n | 5\na blue mug | 3\n")
    done = _run(venv_python, repo_root, tiny_model_dir, listing, tmp_path / "out")
    assert done.returncode == 1, done.stderr                  # 1: some lines skipped
    assert "skipped Line 2: the prompt is empty" in done.stderr
    answer = json.loads(done.stdout)
    assert [r["line"] for r in answer["results"]] == [1, 3]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.glb")) == \
        ["1-a-red-chair-s0.glb", "2-a-blue-mug-s3.glb"]
    assert json.loads((tmp_path / "out" / "2-a-blue-mug-s3.json").read_text())["seed"] == 3
    sheet = np.asarray(Image.open(answer["sheet"]))
    assert sheet.shape[1] > 2 * 128 and (sheet < 200).any()   # two tiles, not blank


def test_a_users_contact_sheet_is_refused_before_the_model_loads(
        venv_python, repo_root, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("a red chair\n")
    (tmp_path / "out").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "out" / "contact-sheet.png")
    done = _run(venv_python, repo_root, tmp_path / "no-model", listing, tmp_path / "out")
    assert done.returncode == 2 and "will not overwrite" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and not list((tmp_path / "out").glob("*.glb"))


def test_a_prompt_without_a_surface_is_skipped_and_the_rest_come_out(
        tiny_model_dir, tmp_path, monkeypatch):
    from engine import prompt_list
    from engine.generate import request
    from engine.pipeline import Pipeline, no_surface
    args = build_parser("generate").parse_args(
        ["generate", "--prompts", "x", "--steps", "2", "--resolution", "32", "--texture",
         "64", "--out", str(tmp_path)])
    items, _ = protocol.parse_prompt_list("a red chair\na ghost\na blue mug")
    pipe = Pipeline.from_pretrained(str(tiny_model_dir), device="cpu")
    real = pipe.generate

    def generate(params, progress=None):
        if params["prompt"] == "a ghost":
            raise no_surface("text")
        return real(params, progress)

    monkeypatch.setattr(pipe, "generate", generate)
    made, skipped, tiles = prompt_list.run(pipe, prompt_list.plan(args, items, request),
                                           prompt_list.ListBar(3, io.StringIO()))
    assert [m["line"] for m in made] == [1, 3] and len(tiles) == 2
    assert skipped[0]["line"] == 2 and "Line 2: no surface came out" in skipped[0]["message"]
