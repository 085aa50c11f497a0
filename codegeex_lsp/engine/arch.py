"""Model facts as data: which Hugging Face architectures we run and how their weights map to ours.

One decoder (engine/model.py) covers the families below; each differs only in the knobs of
`ModelArgs` (biases, rotary layout, extra norms) and in parameter names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from codegeex_lsp.errors import ModelError

SUPPORTED_MODEL_TYPES = ("qwen2", "llama", "mistral", "glm", "glm4")


@dataclass(frozen=True)
class ModelArgs:
    """Shape and layout of a decoder-only transformer."""

    model_type: str
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    norm_eps: float
    rope_theta: float
    rotary_dim: int
    rope_interleaved: bool  # GLM rotates adjacent pairs; Llama/Qwen rotate the two halves
    qkv_bias: bool
    post_norms: bool  # GLM-4: extra RMSNorm after attention and after the MLP
    tie_embeddings: bool
    max_position_embeddings: int
    hidden_act: str = "silu"


def _get(config: dict[str, Any], *names: str, default: Any = None) -> Any:
    for name in names:
        if config.get(name) is not None:
            return config[name]
    return default


def args_from_hf_config(config: dict[str, Any]) -> ModelArgs:
    """Read a Hugging Face `config.json` dict; an architecture we do not run is a clear error."""
    try:
        return _args_from_hf_config(config)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"config.json is incomplete or invalid ({exc!r}); re-download the model") from exc


def _args_from_hf_config(config: dict[str, Any]) -> ModelArgs:
    model_type = config.get("model_type", "?")
    if model_type not in SUPPORTED_MODEL_TYPES:
        hint = (
            " (ChatGLM/CodeGeeX4 remote-code checkpoints: use the native-transformers `-hf` conversion)"
            if model_type == "chatglm"
            else ""
        )
        raise ModelError(
            f"model architecture {model_type!r} is not supported (supported: "
            f"{', '.join(SUPPORTED_MODEL_TYPES)}){hint}"
        )
    dim = int(config["hidden_size"])
    n_heads = int(config["num_attention_heads"])
    head_dim = int(_get(config, "head_dim", default=dim // n_heads))
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in ("default", None):
        raise ModelError(f"rope type {rope_type!r} is not supported; use a model with default RoPE")
    rope_theta = float(_get(rope, "rope_theta", default=_get(config, "rope_theta", default=10000.0)))
    partial = float(
        _get(rope, "partial_rotary_factor", default=_get(config, "partial_rotary_factor", default=1.0))
    )
    is_glm = model_type in ("glm", "glm4")
    return ModelArgs(
        model_type=model_type,
        dim=dim,
        n_layers=int(config["num_hidden_layers"]),
        n_heads=n_heads,
        n_kv_heads=int(_get(config, "num_key_value_heads", default=n_heads)),
        head_dim=head_dim,
        intermediate_size=int(config["intermediate_size"]),
        vocab_size=int(config["vocab_size"]),
        norm_eps=float(_get(config, "rms_norm_eps", default=1e-6)),
        rope_theta=rope_theta,
        rotary_dim=int(head_dim * partial),
        rope_interleaved=is_glm,
        qkv_bias=model_type == "qwen2" or bool(_get(config, "attention_bias", default=is_glm)),
        post_norms=model_type == "glm4",
        tie_embeddings=bool(config.get("tie_word_embeddings", False)),
        max_position_embeddings=int(_get(config, "max_position_embeddings", default=4096)),
        hidden_act=str(_get(config, "hidden_act", "hidden_activation", default="silu")),
    )


def map_hf_state_dict(args: ModelArgs, hf: dict[str, Any], cat) -> dict[str, Any]:
    """Rename (and fuse: q|k|v, gate|up) Hugging Face tensors into our parameter names.

    `cat` concatenates along dim 0 (torch.cat), passed in so this module stays torch-free.
    """
    out: dict[str, Any] = {}

    def take(name: str) -> Any:
        try:
            return hf.pop(name)
        except KeyError:
            raise ModelError(f"checkpoint is missing tensor {name!r}; it does not match its config") from None

    out["tok_embeddings.weight"] = take("model.embed_tokens.weight")
    out["norm.weight"] = take("model.norm.weight")
    if "lm_head.weight" in hf:
        out["output.weight"] = hf.pop("lm_head.weight")
    elif not args.tie_embeddings:
        raise ModelError("checkpoint has no lm_head.weight and does not tie embeddings")
    for i in range(args.n_layers):
        p = f"model.layers.{i}."
        q = f"layers.{i}."
        attn = p + "self_attn."
        out[q + "attention.wqkv.weight"] = cat(
            [take(attn + "q_proj.weight"), take(attn + "k_proj.weight"), take(attn + "v_proj.weight")]
        )
        if args.qkv_bias:
            out[q + "attention.wqkv.bias"] = cat(
                [take(attn + "q_proj.bias"), take(attn + "k_proj.bias"), take(attn + "v_proj.bias")]
            )
        out[q + "attention.wo.weight"] = take(attn + "o_proj.weight")
        if attn + "o_proj.bias" in hf:
            out[q + "attention.wo.bias"] = hf.pop(attn + "o_proj.bias")
        mlp = p + "mlp."
        if mlp + "gate_up_proj.weight" in hf:
            out[q + "feed_forward.w_gate_up.weight"] = hf.pop(mlp + "gate_up_proj.weight")
        else:
            out[q + "feed_forward.w_gate_up.weight"] = cat(
                [take(mlp + "gate_proj.weight"), take(mlp + "up_proj.weight")]
            )
        out[q + "feed_forward.w_down.weight"] = take(mlp + "down_proj.weight")
        out[q + "attention_norm.weight"] = take(p + "input_layernorm.weight")
        out[q + "ffn_norm.weight"] = take(p + "post_attention_layernorm.weight")
        if args.post_norms:
            out[q + "post_attention_norm.weight"] = take(p + "post_self_attn_layernorm.weight")
            out[q + "post_ffn_norm.weight"] = take(p + "post_mlp_layernorm.weight")
    leftovers = [k for k in hf if not k.endswith("rotary_emb.inv_freq")]
    if leftovers:
        raise ModelError(f"checkpoint has unexpected tensors (e.g. {leftovers[0]!r}); unsupported variant")
    return out
