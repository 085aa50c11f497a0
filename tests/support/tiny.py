"""A tiny random model directory (HF layout, safetensors) with a tokenizer trained in-process.

Used by engine, CLI and server tests: fast on 2 cores, no downloads. The tokenizer carries the
GLM/CodeGeeX4, GLM-4.5 and Qwen FIM special tokens so every FIM format can be built against it.
"""

from __future__ import annotations

import json
from pathlib import Path

GLM_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "[MASK]",
    "[gMASK]",
    "[sMASK]",
    "<sop>",
    "<eop>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|observation|>",
    "<|code_prefix|>",
    "<|code_middle|>",
    "<|code_suffix|>",
]
QWEN_SPECIAL_TOKENS = [
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<|im_start|>",
    "<|im_end|>",
]

_CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, x):\n        self.items.append(x)\n",
    "function add(a, b) {\n  return a + b;\n}\nconsole.log(add(1, 2));\n",
    "func Add(a int, b int) int {\n\treturn a + b\n}\n",
    "fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n",
    "#include <vector>\nint sum(const std::vector<int>& v) { int s = 0; for (int x : v) s += x; return s; }\n",
    'public class Main { public static void main(String[] args) { System.out.println("hi"); } }\n',
    "import os\nimport sys\n\nfor i in range(10):\n    print(i, os.getcwd(), sys.argv)\n",
    "你好，世界 😀 — unicode text in a comment\n",
]


def build_tokenizer(vocab_size: int = 512):
    """A byte-level BPE (tokenizers) wrapped as PreTrainedTokenizerFast with all FIM special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = GLM_SPECIAL_TOKENS + QWEN_SPECIAL_TOKENS
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_CORPUS * 20, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=[t for t in specials if t != "<|endoftext|>"],
    )


def build_config(arch: str, vocab_size: int, eos_token_id: int):
    """A transformers config for a 2-layer model of the given family."""
    from transformers import Glm4Config, GlmConfig, LlamaConfig, Qwen2Config

    common = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        eos_token_id=eos_token_id,
        pad_token_id=eos_token_id,
        bos_token_id=None,
    )
    if arch == "glm":
        return GlmConfig(head_dim=16, **common)
    if arch == "glm4":
        return Glm4Config(head_dim=16, **common)
    if arch == "qwen2":
        return Qwen2Config(tie_word_embeddings=True, **common)
    if arch == "qwen2-d32":  # head_dim 32: the fused step's register-blocked attention (the above: 16)
        return Qwen2Config(tie_word_embeddings=True, **{**common, "num_attention_heads": 2, "num_key_value_heads": 1})
    if arch == "llama":
        return LlamaConfig(**common)
    raise ValueError(arch)


def make_tiny_model_dir(path: Path, arch: str = "glm", seed: int = 0) -> Path:
    """Write config.json + model.safetensors + tokenizer files for a random tiny model into `path`."""
    import torch
    from transformers import AutoModelForCausalLM

    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    config = build_config(arch, len(tokenizer), tokenizer.convert_tokens_to_ids("<|endoftext|>"))
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():  # random init has tiny norms; widen the logits so greedy is decisive
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(4.0)
    model.save_pretrained(str(path), safe_serialization=True)
    tokenizer.save_pretrained(str(path))
    (path / "tiny_model.json").write_text(json.dumps({"arch": arch, "seed": seed}))
    return path
