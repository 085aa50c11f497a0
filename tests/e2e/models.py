"""A tiny random model whose suggestions are readable, for tests that look at an editor.

`tests.support.tiny` writes a random 2-layer model whose greedy output is mostly byte tokens
(control characters, halves of UTF-8 sequences): fine for the server's tests, but an editor
renders those as placeholder glyphs, so a test cannot compare what it sees with what lands in the
file. Here the output head keeps the rows of tokens that decode to printable ASCII (or newlines)
and zeroes the rest, so greedy decoding still follows the random weights but only ever picks readable tokens
(a kept row's logit beats the zeroed ones whenever it is positive, and among ~300 random rows the
best one always is). The model stays random and deterministic: which text it suggests is found
by looking, never assumed.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.tiny import make_tiny_model_dir

_PRINTABLE = {chr(c) for c in range(32, 127)}


def _readable(text: str) -> bool:
    return bool(text) and set(text) <= _PRINTABLE | {"\n"}


def make_readable_tiny_model_dir(path: Path, *, seed: int = 0) -> Path:
    """A tiny GLM model directory (see the module docstring) at `path`."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    make_tiny_model_dir(path, "glm", seed=seed)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    special = set(tokenizer.all_special_ids)
    weights_file = path / "model.safetensors"
    weights = load_file(str(weights_file))
    head = weights["lm_head.weight"]  # [vocab, hidden]
    keep = torch.zeros(head.shape[0], 1, dtype=head.dtype)
    for token_id in range(head.shape[0]):
        if token_id not in special and _readable(tokenizer.decode([token_id])):
            keep[token_id] = 1.0
    weights["lm_head.weight"] = (head * keep).contiguous()
    save_file(weights, str(weights_file), metadata={"format": "pt"})
    return path
