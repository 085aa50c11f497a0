"""quant stage: int4 weight quantization (torch reference), the packed layout, int4 modules, kernel
dispatch (ref | cpp | triton) and the packed checkpoint.

    from codegeex_lsp.quant import quantize_model_, save_quantized, load_quantized_into
"""

from codegeex_lsp.quant.checkpoint import load_quantized_into, read_metadata, save_quantized
from codegeex_lsp.quant.linear import (
    QuantEmbedding,
    QuantLinear,
    QuantSpec,
    convert_for_runtime,
    create_quantized_state_dict,
    fold_act_scale_into_norm_,
    quantize_model_,
)
from codegeex_lsp.quant.ops import extension_error, int4_gemm, resolve_kernel
from codegeex_lsp.quant.screened_head import ScreenedHead

__all__ = [
    "QuantEmbedding",
    "QuantLinear",
    "QuantSpec",
    "ScreenedHead",
    "convert_for_runtime",
    "create_quantized_state_dict",
    "extension_error",
    "fold_act_scale_into_norm_",
    "int4_gemm",
    "load_quantized_into",
    "quantize_model_",
    "read_metadata",
    "resolve_kernel",
    "save_quantized",
]
