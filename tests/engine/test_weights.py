import pytest
import torch

from engine.config import ModelConfig
from engine.errors import KilnError
from engine.io import weights
from engine.models import build_model
from engine.testing import random_model


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
