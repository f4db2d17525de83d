import json

import pytest
import torch

from engine.config import ModelConfig
from engine.errors import KilnError
from engine.io import weights
from engine.models import build_model
from random_model import random_model


def test_safetensors_round_trip_rebuilds_identical_model(tmp_path):
    cfg, model = random_model("tiny", seed=3)
    weights.save_state_dict(tmp_path, model.state_dict(), cfg.to_dict())
    cfg2 = ModelConfig.load(tmp_path / "config.json")
    assert cfg2 == cfg
    rebuilt = build_model(cfg2)
    rebuilt.load_state_dict(weights.load_state_dict(tmp_path))
    for (k, a), (k2, b) in zip(model.state_dict().items(), rebuilt.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k


def test_sharding_keeps_every_tensor(tmp_path):
    cfg, model = random_model("tiny")
    largest = max(t.numel() * t.element_size() for t in model.state_dict().values())
    limit = max(200_000, largest)
    paths = weights.save_state_dict(tmp_path, model.state_dict(), cfg.to_dict(),
                                    max_shard_bytes=limit)
    assert len(paths) > 1 and all(p.stat().st_size < limit + 32_000 for p in paths)
    assert set(weights.load_state_dict(tmp_path)) == set(model.state_dict())


def test_checksum_mismatch_is_refused(tmp_path):
    cfg, model = random_model("tiny")
    weights.save_state_dict(tmp_path, model.state_dict(), cfg.to_dict())
    path = tmp_path / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(KilnError) as err:
        weights.load_state_dict(tmp_path)
    assert err.value.code == "weights_invalid" and "Checksum mismatch" in err.value.message


def test_pickle_only_folder_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    torch.save({"w": torch.zeros(1)}, tmp_path / "model.bin")
    with pytest.raises(KilnError) as err:
        weights.load_state_dict(tmp_path)
    assert "pickle" in err.value.message


def test_missing_sums_file_is_refused(tmp_path):
    cfg, model = random_model("tiny")
    weights.save_state_dict(tmp_path, model.state_dict(), cfg.to_dict())
    (tmp_path / "SHA256SUMS").unlink()
    with pytest.raises(KilnError, match="SHA256SUMS"):
        weights.load_state_dict(tmp_path)


def test_unknown_model_names_where_it_looked(tmp_path):
    with pytest.raises(KilnError) as err:
        weights.resolve("no-such-model")
    assert err.value.code == "model_not_found" and "weights" in err.value.message


def test_resolve_finds_local_folder_and_hub_cache(tmp_path, monkeypatch):
    cfg, model = random_model("tiny")
    weights.save_state_dict(tmp_path / "m", model.state_dict(), cfg.to_dict())
    assert weights.resolve(str(tmp_path / "m")) == tmp_path / "m"
    # a repo id that sits in the local Hugging Face cache resolves offline
    cache = tmp_path / "hub"
    snap = cache / "models--kiln--tiny" / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    for f in (tmp_path / "m").iterdir():
        (snap / f.name).write_bytes(f.read_bytes())
    (cache / "models--kiln--tiny" / "refs").mkdir()
    (cache / "models--kiln--tiny" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    import huggingface_hub.constants as hc
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    found = weights.resolve("kiln/tiny", allow_online=False)
    assert found == snap
    assert weights.verify(found)


# ---------------------------------------------------------------- model folder checks
def saved_model(folder):
    cfg, model = random_model("tiny")
    weights.save_state_dict(folder, model.state_dict(), cfg.to_dict())
    return folder, cfg, model


def load_refused(folder) -> KilnError:
    from engine.pipeline import Pipeline
    with pytest.raises(KilnError) as err:
        Pipeline.from_pretrained(str(folder), device="cpu")
    assert err.value.code == "weights_invalid", err.value.message
    return err.value


def test_a_tampered_config_is_a_checksum_mismatch_not_a_crash(tmp_path):
    folder, cfg, _ = saved_model(tmp_path)
    (folder / "config.json").write_text(json.dumps(dict(cfg.to_dict(), evil=1)))
    err = load_refused(folder)
    assert "Checksum mismatch" in err.message and "config.json" in err.message


def test_a_config_not_listed_in_the_sums_is_refused(tmp_path):
    folder, _, _ = saved_model(tmp_path)
    sums = folder / "SHA256SUMS"
    sums.write_text("".join(line + "\n" for line in sums.read_text().splitlines()
                            if not line.endswith("config.json")))
    err = load_refused(folder)
    assert "does not list config.json" in err.message


@pytest.mark.parametrize("entry", ["../outside.txt", "{outside}", "sub/../../outside.txt",
                                   "..\\outside.txt"])
def test_a_sums_entry_outside_the_folder_is_refused(tmp_path, entry):
    folder, _, _ = saved_model(tmp_path / "model")
    outside = tmp_path / "outside.txt"
    outside.write_text("not part of the model\n")
    name = entry.format(outside=outside)
    with open(folder / "SHA256SUMS", "a") as sums:
        sums.write(f"{weights.sha256_file(outside)}  {name}\n")
    with pytest.raises(KilnError) as err:
        weights.verify(folder)
    assert err.value.code == "weights_invalid"
    assert "outside the model folder" in err.value.message and repr(name) in err.value.message
    assert "Re-download the model" in err.value.message


@pytest.mark.parametrize("line", ["justonetoken", "xyz  model.safetensors",
                                  "0" * 64 + "  ", "0" * 63 + "  config.json"])
def test_a_malformed_sums_line_names_the_file_and_the_fix(tmp_path, line):
    folder, _, _ = saved_model(tmp_path)
    with open(folder / "SHA256SUMS", "a") as sums:
        sums.write(line + "\n")
    err = load_refused(folder)
    assert str(folder / "SHA256SUMS") in err.message and "Line 3" in err.message
    assert "Re-download the model, or copy its whole folder again." in err.message


def _rewrite_config(folder, text: str) -> None:
    """Change config.json and its checksum, as a broken (not tampered) folder has it."""
    (folder / "config.json").write_text(text)
    weights.write_sha256sums(folder)


@pytest.mark.parametrize("config, words", [
    ("{not json", "is not readable JSON"),
    ("[1, 2]", "holds a JSON list"),
    ('{"name": "x", "bogus": 1}', "unknown setting 'bogus'"),
    ('{"vae": 5}', "settings this Kiln cannot use"),
], ids=["bad-json", "not-an-object", "unknown-key", "bad-section"])
def test_a_broken_config_names_the_file_and_the_fix(tmp_path, config, words):
    folder, _, _ = saved_model(tmp_path)
    _rewrite_config(folder, config)
    err = load_refused(folder)
    assert str(folder / "config.json") in err.message and words in err.message
    assert "Re-download the model, or copy its whole folder again." in err.message


def test_weights_of_the_wrong_shape_are_refused_in_words(tmp_path):
    cfg, model = random_model("tiny")
    state = model.state_dict()
    key = next(k for k, v in state.items() if v.ndim == 2)
    state[key] = torch.zeros(state[key].shape[0] + 1, state[key].shape[1])
    weights.save_state_dict(tmp_path, state, cfg.to_dict())
    err = load_refused(tmp_path)
    assert "1 of the wrong shape" in err.message and key in err.message
    assert str(tmp_path) in err.message and "Re-download the model" in err.message
