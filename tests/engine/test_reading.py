"""Prompt reading (engine/reading.py): words the model never trained on are read as the
nearest names it knows; known phrasings and colour words pass unchanged."""

import json

import numpy as np
import pytest
import torch

from engine.data import captions as C
from engine.io.weights import BUNDLED, read_sha256sums
from engine.models.conditioners import MiniLMText
from engine.reading import VOCABULARY_FILE, PromptReader, write_vocabulary


@pytest.fixture(scope="module")
def reader():
    return PromptReader.for_folder(BUNDLED / "kiln-mini", MiniLMText())


def test_the_bundled_model_ships_a_checked_vocabulary():
    assert VOCABULARY_FILE in read_sha256sums(BUNDLED / "kiln-mini")
    data = json.loads((BUNDLED / "kiln-mini" / VOCABULARY_FILE).read_text())
    assert {"chair", "couch", "red", "small", "with"} <= set(data["words"])
    assert data["names"]["couch"] == "sofa" and data["names"]["crimson"] is None
    held = {phrase for phrase in C.heldout_only_words() if " " not in phrase}
    assert not held & set(data["words"]), "held-out words must stay unseen"
    assert not {"cherry", "lime", "royal", "packing", "shelving"} & set(data["words"])


def test_training_phrasings_pass_unchanged(reader):
    rng = np.random.default_rng(0)
    for category in C.CATEGORY_SYNONYMS_TRAIN:
        for color in ("red", "blue", "white"):
            prompt = C.prompt(category, color, rng, "train")
            reading = reader.read(prompt)
            assert reading.text == prompt and reading.meta() == {}, prompt


@pytest.mark.parametrize("prompt, category, kept", [
    ("a tiny green fungus", "mushroom", "green"), ("a blue sedan", "car", "blue"),
    ("make me a yellow kettle", "teapot", "yellow"), ("a ruby bedstead", "bed", "ruby"),
    ("a broadsword painted grey", "sword", "grey"), ("an onyx cup", "mug", "onyx")])
def test_unknown_nouns_read_as_their_category_and_colours_stay(reader, prompt, category, kept):
    reading = reader.read(prompt)
    words = reading.text.split()
    assert category in words and kept in words, reading
    assert reading.meta()["read_as"] == reading.text and reading.meta()["read_words"]


def test_any_case_and_letters_before_keep_the_prompt_whole(reader):
    assert reader.read("A Tiny Red SEDAN").text == "A small Red car"
    # "İ" lower-cases to two characters: positions must be the prompt's own
    assert reader.read("İ want a tiny red sedan").text == "İ want a small red car"


def test_sizes_read_and_articles_follow(reader):
    assert reader.read("a huge red airliner").text == "a large red airplane"
    assert reader.read("an ash hut").text == "an ash house"


class Table:
    """A text encoder with fixed pooled vectors per text (anything else: a far one)."""

    def __init__(self, vectors: dict[str, list[float]]):
        self.vectors = vectors

    def __call__(self, texts):
        far = [0.0] * (len(next(iter(self.vectors.values()))) - 1) + [1.0]
        pooled = torch.tensor([self.vectors.get(t, far) for t in texts], dtype=torch.float32)
        return None, None, torch.nn.functional.normalize(pooled, dim=-1)


def test_a_pair_reads_whole_only_when_surer_than_its_words():
    enc = Table({"a lamp": [1, 0, 0, 0], "a crate": [0, 1, 0, 0], "a red": [0, 0, 1, 0],
                 "a reading light": [1, 0.1, 0, 0], "a light": [1, 1, 0, 0],
                 "a packing case": [0.6, 1, 0, 0], "a packing": [0.1, 1, 0, 0],
                 "a ruby": [0.1, 0, 1, 0], "a ruby box": [0, 1, 0.1, 0]})
    reader = PromptReader(enc, ["a", "lamp", "crate", "red"],
                          {"lamp": "lamp", "crate": "crate", "red": None})
    assert reader.read("a reading light").text == "a lamp"              # pair surer than "light"
    assert reader.read("a packing case").text == "a crate case"         # "packing" alone is surer
    assert reader.read("a ruby box").text == "a ruby box"               # a colour word is kept
    assert reader.read("a red lamp").words == {}


def test_write_vocabulary_keeps_only_names_its_captions_use(tmp_path):
    path = write_vocabulary(tmp_path, ["a red couch", "A small Crimson chair"],
                            {"couch": "sofa", "crimson": None, "bar stool": "stool"})
    data = json.loads(path.read_text())
    assert data["words"] == ["a", "chair", "couch", "crimson", "red", "small"]
    assert data["names"] == {"couch": "sofa", "crimson": None}
    assert PromptReader.for_folder(tmp_path / "nowhere", None) is None


def test_text_to_3d_records_the_reading_and_eval_can_turn_it_off():
    from engine.pipeline import Pipeline
    pipe = Pipeline.from_pretrained("kiln-mini", device="cpu")
    run = lambda: pipe.text_to_3d("a tiny red sedan", seed=1, resolution=32,  # noqa: E731
                                  faces=2000, texture_mode="vertex").meta
    meta = run()
    assert meta["prompt"] == "a tiny red sedan" and meta["read_as"] == "a small red car"
    assert meta["read_words"] == {"tiny": "small", "sedan": "car"}
    pipe.reading = False                                  # eval --no-reading: the DiT alone
    assert "read_as" not in run()


def _with_vocabulary(tiny_model_dir, folder, text: str, listed: bool):
    import shutil
    from engine.io.weights import write_sha256sums
    shutil.copytree(tiny_model_dir, folder)
    (folder / VOCABULARY_FILE).write_text(text)
    if listed:
        write_sha256sums(folder)
    return folder


@pytest.mark.parametrize("text, listed, says", [
    ('{"words": ["a"], "names": {}}', False, "is not listed in the folder's SHA256SUMS"),
    ('{"words": ["a"]', True, "is not a Kiln vocabulary"),
    ('{"words": [1], "names": {}}', True, "words and names must be strings"),
    ('["a"]', True, "is not a Kiln vocabulary")])
def test_a_bad_vocabulary_is_refused_at_load_with_the_fix(tiny_model_dir, tmp_path, text,
                                                          listed, says):
    from engine.errors import WEIGHTS_INVALID, KilnError
    from engine.pipeline import Pipeline
    folder = _with_vocabulary(tiny_model_dir, tmp_path / "m", text, listed)
    with pytest.raises(KilnError) as err:
        Pipeline.from_pretrained(str(folder), device="cpu")
    assert err.value.code == WEIGHTS_INVALID and says in err.value.message
    assert "delete it" in err.value.message or "Re-download" in err.value.message


def test_generate_cli_prints_and_keeps_the_reading(venv_python, repo_root, tmp_path):
    import subprocess
    out = tmp_path / "car.glb"
    done = subprocess.run([venv_python, "-m", "engine", "generate", "--prompt",
                           "a tiny red sedan", "--device", "cpu", "--resolution", "32",
                           "--texture", "128", "--out", str(out)], cwd=repo_root,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["read_as"] == "a small red car"
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["prompt"] == "a tiny red sedan" and side["read_as"] == "a small red car"
