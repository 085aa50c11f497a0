"""Convert a GGUF file once into a Hugging Face-layout directory (config + safetensors + tokenizer).

transformers can read GGUF itself, but it takes ~77 s per start for the embedded model; this
dequantizes with the `gguf` package (~15 s), writes fp32 safetensors (GGUF block values are exact in
fp32, not in bf16) and the tokenizer, and renames the directory into place only when complete. Later
starts memory-map the safetensors in about a second.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from codegeex_lsp.errors import ModelError

CONVERTER_VERSION = 1

# GGUF tensor name (after `blk.N.`) -> HF parameter name (after `model.layers.N.`).
_LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
_GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
SUPPORTED_GGUF_ARCHS = ("qwen2", "llama")


def _field(reader, key: str, default=None):
    field = reader.fields.get(key)
    if field is None:
        return default
    return field.contents()


def _hf_config(reader, arch: str, has_output: bool) -> dict:
    def get(name: str, default=None):
        return _field(reader, f"{arch}.{name}", default)

    hidden = int(get("embedding_length"))
    heads = int(get("attention.head_count"))
    vocab = len(reader.fields["tokenizer.ggml.tokens"].data)
    model_type = {"qwen2": "qwen2", "llama": "llama"}[arch]
    config = {
        "architectures": [{"qwen2": "Qwen2ForCausalLM", "llama": "LlamaForCausalLM"}[arch]],
        "model_type": model_type,
        "hidden_size": hidden,
        "intermediate_size": int(get("feed_forward_length")),
        "num_hidden_layers": int(get("block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(get("attention.head_count_kv", heads)),
        "head_dim": hidden // heads,
        "max_position_embeddings": int(get("context_length", 4096)),
        "rms_norm_eps": float(get("attention.layer_norm_rms_epsilon", 1e-6)),
        "rope_theta": float(get("rope.freq_base", 10000.0)),
        "rope_parameters": {"rope_type": "default", "rope_theta": float(get("rope.freq_base", 10000.0))},
        "vocab_size": vocab,
        "hidden_act": "silu",
        "tie_word_embeddings": not has_output,
        "bos_token_id": _field(reader, "tokenizer.ggml.bos_token_id"),
        "eos_token_id": _field(reader, "tokenizer.ggml.eos_token_id"),
        "pad_token_id": _field(reader, "tokenizer.ggml.padding_token_id"),
        "torch_dtype": "float32",
        "use_cache": True,
    }
    if arch == "llama":
        config["attention_bias"] = False
        config["mlp_bias"] = False
    return config


def _unpermute(weight, n_heads: int):
    """llama.cpp permutes llama Q/K rows for its rope layout; undo it (Qwen2 is not permuted)."""
    rows = weight.shape[0]
    return (
        weight.reshape(n_heads, 2, rows // n_heads // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def convert_gguf(
    gguf_path: Path, out_dir: Path, *, source_sha256: str, log: Callable[[str], None] = lambda _m: None
) -> Path:
    """Write `out_dir` (HF layout) from `gguf_path`; atomic: the directory appears complete or not at all.

    The caller checked the header (`model_check.check_gguf`); what a broken file still makes gguf,
    numpy or transformers raise here is a ModelError naming the file, not a traceback."""
    try:
        return _convert_gguf(gguf_path, out_dir, source_sha256=source_sha256, log=log)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(
            f"{gguf_path} could not be converted ({type(exc).__name__}: {str(exc)[:200]}); "
            "re-download or re-convert it"
        ) from exc


def _convert_gguf(gguf_path: Path, out_dir: Path, *, source_sha256: str, log: Callable[[str], None]) -> Path:
    try:
        import numpy as np
        import torch
        from gguf import GGUFReader
        from gguf.quants import dequantize
        from safetensors.torch import save_file
    except ImportError as exc:  # pragma: no cover - dependencies are pinned
        raise ModelError(f"GGUF support needs the `gguf` package ({exc}); run `pip install gguf`") from exc

    try:
        reader = GGUFReader(str(gguf_path))
    except Exception as exc:
        raise ModelError(f"{gguf_path} is not a readable GGUF file ({exc}); re-download it") from exc
    arch = str(_field(reader, "general.architecture", "?"))
    if arch not in SUPPORTED_GGUF_ARCHS:
        raise ModelError(
            f"GGUF architecture {arch!r} is not supported (supported: {', '.join(SUPPORTED_GGUF_ARCHS)}); "
            "use a Hugging Face safetensors directory instead"
        )
    names = {t.name for t in reader.tensors}
    config = _hf_config(reader, arch, has_output="output.weight" in names)

    tmp = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        log(f"dequantizing {len(reader.tensors)} tensors from {gguf_path.name}")
        tensors: dict[str, torch.Tensor] = {}
        for tensor in reader.tensors:
            name = tensor.name
            if name in _GLOBAL_NAMES:
                hf_name = _GLOBAL_NAMES[name]
            elif name.startswith("blk."):
                _, index, rest = name.split(".", 2)
                if rest not in _LAYER_NAMES:
                    raise ModelError(
                        f"unexpected tensor {name} in {gguf_path.name}; this GGUF is not supported"
                    )
                hf_name = f"model.layers.{index}.{_LAYER_NAMES[rest]}"
            elif name == "rope_freqs.weight":
                continue
            else:
                raise ModelError(f"unexpected tensor {name} in {gguf_path.name}; this GGUF is not supported")
            values = dequantize(tensor.data, tensor.tensor_type)
            values = np.array(values, dtype=np.float32, order="C", copy=True)  # writable, off the mmap
            if arch == "llama" and rest_is(name, "attn_q.weight"):
                values = _unpermute(values, config["num_attention_heads"])
            elif arch == "llama" and rest_is(name, "attn_k.weight"):
                values = _unpermute(values, config["num_key_value_heads"])
            tensors[hf_name] = torch.from_numpy(values)
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        del tensors
        (tmp / "config.json").write_text(json.dumps(config, indent=2))

        log("converting the GGUF tokenizer")
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        tokenizer.save_pretrained(str(tmp))
        (tmp / "codegeex_source.json").write_text(
            json.dumps({"gguf": str(gguf_path), "sha256": source_sha256, "converter": CONVERTER_VERSION})
        )
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def rest_is(name: str, suffix: str) -> bool:
    """True for `blk.N.<suffix>`."""
    return name.startswith("blk.") and name.split(".", 2)[2] == suffix
