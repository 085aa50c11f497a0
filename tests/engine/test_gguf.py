"""GGUF -> cached safetensors conversion, on a tiny qwen2 GGUF written in the test.

The tiny HF model is exported to GGUF (Q8_0 matrices, F32 norms/biases, as llama.cpp does), then
loaded through `--model file.gguf`: the converted model must match the HF model's logits within
Q8_0 error, and produce the same tokenizer ids.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from codegeex_lsp.config import EngineOptions
from codegeex_lsp.engine.load import load_model
from codegeex_lsp.errors import ModelError

gguf = pytest.importorskip("gguf")

Q8_LOGIT_ATOL = 0.5  # Q8_0 weights: small relative error on logits of magnitude ~10

_HF_TO_GGUF = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
_LAYER = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def _gguf_name(hf_name: str) -> str:
    if hf_name in _HF_TO_GGUF:
        return _HF_TO_GGUF[hf_name]
    _, _, index, rest = hf_name.split(".", 3)
    return f"blk.{index}.{_LAYER[rest]}"


def write_tiny_gguf(hf_dir, out_path, arch_name: str = "qwen2"):
    model = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32)
    cfg = model.config
    tok_json = json.loads((hf_dir / "tokenizer.json").read_text())
    vocab = tok_json["model"]["vocab"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    specials = {a["content"] for a in tok_json["added_tokens"]}
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok_json["model"]["merges"]]
    writer = gguf.GGUFWriter(str(out_path), arch_name)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_rope_freq_base(float(cfg.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in specials else 1 for t in tokens])
    writer.add_token_merges(merges)
    writer.add_eos_token_id(vocab["<|endoftext|>"])
    writer.add_bos_token_id(vocab["<|endoftext|>"])
    state = model.state_dict()
    state.setdefault("lm_head.weight", state["model.embed_tokens.weight"])
    for name, tensor in state.items():
        data = tensor.numpy().astype(np.float32)
        if data.ndim == 2 and data.shape[1] % 32 == 0:
            q = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(_gguf_name(name), q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(_gguf_name(name), data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_path


@pytest.fixture(scope="module")
def tiny_gguf(tiny_model_factory, tmp_path_factory):
    hf_dir = tiny_model_factory("qwen2")
    return hf_dir, write_tiny_gguf(hf_dir, tmp_path_factory.mktemp("gguf") / "tiny.gguf")


def test_gguf_converts_and_matches_hf(tiny_gguf, tmp_path):
    hf_dir, gguf_path = tiny_gguf
    opts = EngineOptions(model=str(gguf_path), dtype="float32", quant="none", cache_dir=str(tmp_path))
    ours = load_model(opts)
    hf = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32).eval()
    hf_tok = AutoTokenizer.from_pretrained(str(hf_dir))
    text = "def add(a, b):\n    return a + b  # 你好"
    ids = hf_tok.encode(text)
    assert ours.tokenizer.encode(text, add_special_tokens=False) == ids
    with torch.inference_mode():
        expected = hf(torch.tensor([ids])).logits[0, -1]
        got = ours.model(torch.tensor([ids]), 0, ours.model.new_cache())[0]
    torch.testing.assert_close(got, expected, atol=Q8_LOGIT_ATOL, rtol=0)
    assert ours.source_sha256 and len(ours.source_sha256) == 64

    converted = list((tmp_path / "converted").iterdir())
    assert len(converted) == 1 and (converted[0] / "model.safetensors").is_file()
    mtime = (converted[0] / "model.safetensors").stat().st_mtime_ns
    load_model(opts)  # second start reuses the conversion
    assert (converted[0] / "model.safetensors").stat().st_mtime_ns == mtime


def test_unsupported_gguf_architecture(tiny_model_factory, tmp_path):
    path = write_tiny_gguf(tiny_model_factory("qwen2"), tmp_path / "phi.gguf", arch_name="phi3")
    with pytest.raises(ModelError, match="GGUF architecture 'phi3' is not supported"):
        load_model(EngineOptions(model=str(path), dtype="float32", quant="none", cache_dir=str(tmp_path / "c")))
