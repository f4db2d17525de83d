"""The plain-torch MiniLM (engine/models/minilm.py) against transformers' own BertModel and
tokenizer on the same files: the same token ids, masks and hidden states, so the DiT that
was trained on transformers' MiniLM states sees the same condition."""

import pytest
import torch

from engine.models.conditioners import MiniLMText, minilm_dir

PROMPTS = ["a red chair", "A tall, thin brass floor lamp with a round shade!",
           "mug", "x " * 60]                          # the last one is truncated


def test_minilm_matches_transformers_bert_on_the_same_files():
    transformers = pytest.importorskip("transformers", reason="transformers is the reference")
    folder = str(minilm_dir())
    tok = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    bert = transformers.AutoModel.from_pretrained(folder, local_files_only=True).eval()
    ref = tok(PROMPTS, padding=True, truncation=True, max_length=32, return_tensors="pt")
    with torch.no_grad():
        want = bert(**ref).last_hidden_state
    mine = MiniLMText(max_tokens=32)
    ids, mask = mine.tokenizer(PROMPTS)
    assert torch.equal(ids, ref["input_ids"]) and torch.equal(mask, ref["attention_mask"])
    states, got_mask, pooled = mine(PROMPTS)
    assert states.shape == want.shape == (4, 32, 384)
    real = got_mask[..., None]
    assert torch.allclose(states * real, want * real, atol=1e-4), \
        (states - want).abs().mul(real).amax()
    assert torch.allclose(pooled.norm(dim=-1), torch.ones(4), atol=1e-5)
    # different prompts, different conditions (not a constant)
    assert (states[0, 1] - states[2, 1]).abs().amax() > 0.1
