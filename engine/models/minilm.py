"""MiniLM (all-MiniLM-L6-v2, a 6-layer BERT) in plain torch: the bundled model's text
encoder without importing transformers, whose import graph cost the engine's cold start
about 7 of its 10 seconds on a 2-core CPU. The tokenizer is the model's own tokenizer.json
through `tokenizers`; the weights are its model.safetensors. Equal to transformers'
BertModel to float precision (tests/engine/test_minilm.py)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F


class BertLayer(nn.Module):
    def __init__(self, width: int, heads: int, hidden: int, eps: float):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = (nn.Linear(width, width) for _ in range(3))
        self.attn_out, self.attn_norm = nn.Linear(width, width), nn.LayerNorm(width, eps=eps)
        self.up, self.down = nn.Linear(width, hidden), nn.Linear(hidden, width)
        self.out_norm = nn.LayerNorm(width, eps=eps)

    def forward(self, x, keep_bx1x1xl):
        # x (B, L, D); keep: True where a key is a real token
        B, L, D = x.shape
        q, k, v = (f(x).view(B, L, self.heads, D // self.heads).transpose(1, 2)
                   for f in (self.query, self.key, self.value))        # (B, H, L, D/H)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=keep_bx1x1xl)
        x = self.attn_norm(x + self.attn_out(a.transpose(1, 2).reshape(B, L, D)))
        return self.out_norm(x + self.down(F.gelu(self.up(x))))


class MiniLM(nn.Module):
    """BERT encoder: token ids (B, L), mask (B, L) -> last hidden states (B, L, width)."""

    def __init__(self, cfg: dict):
        super().__init__()
        D, eps = cfg["hidden_size"], cfg["layer_norm_eps"]
        self.words = nn.Embedding(cfg["vocab_size"], D)
        self.positions = nn.Embedding(cfg["max_position_embeddings"], D)
        self.types = nn.Embedding(cfg["type_vocab_size"], D)
        self.norm = nn.LayerNorm(D, eps=eps)
        self.layers = nn.ModuleList(BertLayer(D, cfg["num_attention_heads"],
                                              cfg["intermediate_size"], eps)
                                    for _ in range(cfg["num_hidden_layers"]))

    def forward(self, ids_bxl, mask_bxl):
        pos = torch.arange(ids_bxl.shape[1], device=ids_bxl.device)
        x = self.norm(self.words(ids_bxl) + self.positions(pos)[None] + self.types.weight[0])
        keep = mask_bxl.bool()[:, None, None, :]                               # (B, 1, 1, L)
        for layer in self.layers:
            x = layer(x, keep)
        return x


def _renamed(name: str) -> str | None:
    """A BertModel weight name -> this module's, None for the parts not used (pooler)."""
    if name.startswith("pooler.") or name.endswith("position_ids"):
        return None
    fixed = {"embeddings.word_embeddings.": "words.", "embeddings.position_embeddings.": "positions.",
             "embeddings.token_type_embeddings.": "types.", "embeddings.LayerNorm.": "norm."}
    for old, new in fixed.items():
        if name.startswith(old):
            return new + name[len(old):]
    parts = name.split(".")                        # encoder.layer.N.<part...>.weight|bias
    n, rest = parts[2], ".".join(parts[3:-1])
    mine = {"attention.self.query": "query", "attention.self.key": "key",
            "attention.self.value": "value", "attention.output.dense": "attn_out",
            "attention.output.LayerNorm": "attn_norm", "intermediate.dense": "up",
            "output.dense": "down", "output.LayerNorm": "out_norm"}[rest]
    return f"layers.{n}.{mine}.{parts[-1]}"


def load_minilm(folder: Path) -> MiniLM:
    """The model of a sentence-transformers / BERT folder (config.json, model.safetensors)."""
    from safetensors.torch import load_file
    folder = Path(folder)
    model = MiniLM(json.loads((folder / "config.json").read_text()))
    state = {}
    for name, tensor in load_file(str(folder / "model.safetensors")).items():
        mine = _renamed(name)
        if mine is not None:
            state[mine] = tensor.float()
    model.load_state_dict(state, strict=True)
    return model.eval().requires_grad_(False)


class MiniLMTokenizer:
    """tokenizer.json through `tokenizers`: prompts -> ids (B, L), mask (B, L), truncated
    to max_tokens and padded to the longest prompt (as transformers' padding=True)."""

    def __init__(self, folder: Path, max_tokens: int):
        from tokenizers import Tokenizer
        self.tok = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
        self.tok.no_padding()
        self.tok.enable_truncation(max_length=max_tokens)
        pad_id = self.tok.token_to_id("[PAD]")
        self.tok.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")

    def __call__(self, prompts: list[str]):
        enc = self.tok.encode_batch(list(prompts))
        ids = torch.tensor([e.ids for e in enc], dtype=torch.long)
        mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.long)
        return ids, mask


