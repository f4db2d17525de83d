"""CLIP text conditioning through open_clip from local weights only: a tiny open_clip model
is built and saved by the test (as a file, and as a repo in a private Hugging Face cache),
and a model config naming it (cond.text "clip:<arch>") gets it from text_encoder()."""

import json

import pytest
import torch

open_clip = pytest.importorskip("open_clip", reason="open_clip_torch is not installed")
from safetensors.torch import save_file  # noqa: E402

from engine.config import REGISTRY  # noqa: E402
from engine.errors import KilnError  # noqa: E402
from engine.models.conditioners import OpenCLIPEncoder, text_encoder  # noqa: E402

ARCH = "kiln-test-tiny-clip"
TINY = {"embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2,
                     "layers": 1}}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A random tiny open_clip model, its safetensors file and its reference features."""
    folder = tmp_path_factory.mktemp("clip")
    (folder / f"{ARCH}.json").write_text(json.dumps(TINY))
    open_clip.add_model_config(folder / f"{ARCH}.json")
    torch.manual_seed(3)
    model = open_clip.create_model(ARCH).eval()
    path = folder / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    with torch.no_grad():
        text = model.encode_text(open_clip.get_tokenizer(ARCH)(["a red chair"]))
    return path, torch.nn.functional.normalize(text, dim=-1)


def _check(encoder, reference):
    tokens, mask, pooled = encoder(["a red chair"])
    assert tokens.shape == (1, 1, 32) and mask.all()
    torch.testing.assert_close(pooled, reference, rtol=1e-4, atol=1e-5)   # loaded, not re-initialised


def test_loads_a_local_safetensors_file(saved):
    path, reference = saved
    _check(OpenCLIPEncoder(ARCH, str(path)), reference)


def test_loads_a_repo_from_the_hugging_face_cache_offline(saved, tmp_path, monkeypatch):
    path, reference = saved
    snapshot = tmp_path / "models--kiln--tiny-clip" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / path.name).write_bytes(path.read_bytes())
    (tmp_path / "models--kiln--tiny-clip" / "refs").mkdir()
    (tmp_path / "models--kiln--tiny-clip" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    import huggingface_hub.constants as hc
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path))
    _check(OpenCLIPEncoder(ARCH, "kiln/tiny-clip"), reference)


def test_refuses_pickle_files(saved, tmp_path):
    pickle = tmp_path / "open_clip_pytorch_model.bin"
    pickle.write_bytes(b"not loaded")
    with pytest.raises(KilnError, match="safetensors"):
        OpenCLIPEncoder(ARCH, str(pickle))


def test_missing_weights_say_where_to_put_them():
    with pytest.raises(KilnError, match="No local CLIP weights.*downloads are off"):
        OpenCLIPEncoder(ARCH, "kiln/not-in-the-cache")


def _clip_config(text_weights: str, cond_dim: int = 32):
    cfg = REGISTRY["tiny"]()
    cfg.cond.text, cfg.cond.text_weights, cfg.dit.cond_dim = f"clip:{ARCH}", text_weights, cond_dim
    return cfg


def test_a_config_naming_clip_gets_it_from_the_model_folder(saved):
    path, reference = saved
    _check(text_encoder(_clip_config(path.name), folder=path.parent), reference)


def test_a_clip_narrower_than_the_dit_is_refused(saved):
    path, _ = saved
    with pytest.raises(KilnError, match="32-wide tokens but the model's DiT reads 384"):
        text_encoder(_clip_config(str(path), cond_dim=384))


def test_an_unknown_text_encoder_is_refused():
    cfg = REGISTRY["tiny"]()
    cfg.cond.text = "t5"
    with pytest.raises(KilnError, match="text encoder 't5'.*'minilm' or 'clip:<arch>'"):
        text_encoder(cfg)
