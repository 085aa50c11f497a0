"""Int4 modules and the model conversion, gpt-fast style in two steps.

1. `create_quantized_state_dict(model, ...)` (offline): quantize every nn.Linear / nn.Embedding
   weight into the packed layout and return the new state dict plus one `QuantSpec` per module.
2. `convert_for_runtime(model, specs)`: swap those modules for empty `QuantLinear` /
   `QuantEmbedding` (on any device, "meta" included) so the state dict, or a checkpoint, loads into
   them with `load_state_dict(..., assign=True)`.

`quantize_model_` does both in place. A tied embedding / lm head pair is quantized once and the
two modules share one packed buffer (an embedding lookup is a dequantized row of the same layout).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass

import torch
from torch import nn

from codegeex_lsp.quant import ops
from codegeex_lsp.quant.gptq import gptq_quantize_many
from codegeex_lsp.quant.packing import pack_int4, row_bytes, unpack_int4
from codegeex_lsp.quant.reference import (
    GROUP_SIZES,
    MODES,
    Int4Weight,
    awq_quantize,
    check_group_size,
    dequantize_groupwise,
    quantize,
    quantize_8bit_split,
)
from codegeex_lsp.quant.screened_head import EXACT_GROUP, ScreenedHead

log = logging.getLogger(__name__)

DEFAULT_MODE = "asym"  # same kernel cost as sym, lower error (see bench kernels)
DEFAULT_GROUP_SIZE = 32


@dataclass(frozen=True)
class QuantSpec:
    """How one module of a model was quantized: the facts a checkpoint needs to rebuild it."""

    name: str
    kind: str  # "linear" | "embedding" | "screened_head" (its screen follows as "<name>.screen")
    in_features: int  # K (embedding_dim for an embedding)
    out_features: int  # N (num_embeddings for an embedding)
    group_size: int
    mode: str
    bias: bool = False
    act_scale: bool = False  # AWQ input multiplier kept in the module (not folded into a norm)
    tied_to: str | None = None  # shares the packed buffer of that module
    residual: bool = False  # a second int4 plane (mode "int8": the low nibbles of 8-bit codes)
    screen_dim: int = 0  # screened_head: principal directions its int4 screen reads
    candidates: int = 0  # screened_head: screen logits rescored exactly per position

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> QuantSpec:
        return cls(**data)  # type: ignore[arg-type]  # format v1 specs simply lack `residual`


def specs_to_json(specs: list[QuantSpec]) -> str:
    return json.dumps([s.to_dict() for s in specs], separators=(",", ":"))


def specs_from_json(text: str) -> list[QuantSpec]:
    return [QuantSpec.from_dict(d) for d in json.loads(text)]


class QuantLinear(nn.Module):
    """y = x @ W.T + bias with W int4 in the packed layout; x [..., K] in fp32/bf16/fp16 -> y [..., N].

    With `residual`, W = W1 + W2: a second packed plane, for the few linears whose 4-bit error costs
    the most accuracy. The recipe fills the pair with 8-bit codes (mode "int8": high nibbles in W1,
    low in W2, W1's scale 16 times W2's), which the AVX-512 kernel rejoins into one dot product."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = False,
        group_size: int = DEFAULT_GROUP_SIZE,
        mode: str = DEFAULT_MODE,
        act_scale: bool = False,
        residual: bool = False,
        kernel: str | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        check_group_size(in_features, group_size)
        self.in_features = in_features
        self.out_features = out_features
        self.group_size = group_size
        self.mode = mode
        self.kernel = kernel  # None: CODEGEEX_LSP_KERNEL, else cpp if built, else ref
        nbytes = row_bytes(in_features, group_size)
        self.register_buffer("packed", torch.empty((out_features, nbytes), dtype=torch.uint8, device=device))
        self.register_buffer("bias", torch.empty(out_features, device=device) if bias else None)
        self.register_buffer("act_scale", torch.empty(in_features, device=device) if act_scale else None)
        self.register_buffer(
            "residual",
            torch.empty((out_features, nbytes), dtype=torch.uint8, device=device) if residual else None,
        )

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        mode: str = DEFAULT_MODE,
        group_size: int = DEFAULT_GROUP_SIZE,
        *,
        activations: torch.Tensor | None = None,
        kernel: str | None = None,
    ) -> QuantLinear:
        """Quantize an nn.Linear. mode "awq" needs `activations` [rows, in_features] (calibration.py)."""
        w = linear.weight.detach().to("cpu", torch.float32)  # [N, K]
        inv_s = None
        if mode == "awq":
            if activations is None:
                raise ValueError("mode='awq' needs calibration activations for this linear")
            qw, inv_s = awq_quantize(w, activations, group_size)
        else:
            qw = quantize(w, mode, group_size)
        module = cls(
            linear.in_features,
            linear.out_features,
            bias=linear.bias is not None,
            group_size=group_size,
            mode=mode,
            act_scale=inv_s is not None,
            kernel=kernel,
        )
        module.packed.copy_(pack_int4(qw))
        if linear.bias is not None:
            module.bias.copy_(linear.bias.detach().float())
        if inv_s is not None:
            module.act_scale.copy_(inv_s)
        return module.to(linear.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.act_scale is not None:
            x = x * self.act_scale.to(x.dtype)
        return ops.int4_gemm(
            x, self.packed, self.in_features, self.group_size, self.bias, self.residual, kernel=self.kernel
        )

    def dequantize(self) -> torch.Tensor:
        """The effective float32 weight [N, K] (residual plane added, AWQ input multiplier folded in)."""
        w = dequantize_groupwise(unpack_int4(self.packed, self.in_features, self.group_size))
        if self.residual is not None:
            w = w + dequantize_groupwise(unpack_int4(self.residual, self.in_features, self.group_size))
        if self.act_scale is not None:
            w = w * self.act_scale.cpu()[None, :]
        return w

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
            f"group_size={self.group_size}, mode={self.mode}, act_scale={self.act_scale is not None}, "
            f"residual={self.residual is not None}"
        )


class QuantEmbedding(nn.Module):
    """Int4 embedding table [V, D] in the packed layout; lookup dequantizes only the rows asked for.

    A `residual` plane costs memory but no speed here (a lookup reads one row per token), so an
    untied embedding gets close to 8 bits for free."""

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        *,
        group_size: int = DEFAULT_GROUP_SIZE,
        mode: str = DEFAULT_MODE,
        dtype: torch.dtype = torch.float32,
        residual: bool = False,
        kernel: str | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        check_group_size(embedding_dim, group_size)
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.group_size = group_size
        self.mode = mode
        self.dtype = dtype
        self.kernel = kernel
        nbytes = row_bytes(embedding_dim, group_size)
        self.register_buffer(
            "packed", torch.empty((num_embeddings, nbytes), dtype=torch.uint8, device=device)
        )
        self.register_buffer(
            "residual",
            torch.empty((num_embeddings, nbytes), dtype=torch.uint8, device=device) if residual else None,
        )

    @classmethod
    def from_embedding(
        cls, embedding: nn.Embedding, mode: str = DEFAULT_MODE, group_size: int = DEFAULT_GROUP_SIZE
    ) -> QuantEmbedding:
        mode = "asym" if mode in ("awq", "gptq") else mode  # no activations to be aware of
        w = embedding.weight.detach().to("cpu", torch.float32)
        module = cls(
            embedding.num_embeddings,
            embedding.embedding_dim,
            group_size=group_size,
            mode=mode,
            dtype=embedding.weight.dtype,
        )
        module.packed.copy_(pack_int4(quantize(w, mode, group_size)))
        return module.to(embedding.weight.device)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        flat = ids.reshape(-1)
        rows = self.packed.index_select(0, flat)  # [T, row_bytes]
        w = ops.int4_dequantize(rows, self.embedding_dim, self.group_size, kernel=self.kernel)  # [T, D]
        if self.residual is not None:
            rows = self.residual.index_select(0, flat)
            w = w + ops.int4_dequantize(rows, self.embedding_dim, self.group_size, kernel=self.kernel)
        return w.reshape(*ids.shape, self.embedding_dim).to(self.dtype)

    def extra_repr(self) -> str:
        return (
            f"{self.num_embeddings}, {self.embedding_dim}, group_size={self.group_size}, mode={self.mode}, "
            f"residual={self.residual is not None}"
        )


# --- model conversion -----------------------------------------------------------------------------


def _fit_group_size(in_features: int, group_size: int) -> int | None:
    """The requested group size, else the largest smaller one dividing in_features, else None."""
    for g in sorted(GROUP_SIZES, reverse=True):
        if g <= group_size and in_features % g == 0:
            return g
    return None


def _quantizable(model: nn.Module, include_embeddings: bool):
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) or (include_embeddings and isinstance(module, nn.Embedding)):
            yield name, module


@torch.no_grad()
def create_quantized_state_dict(
    model: nn.Module,
    mode: str = DEFAULT_MODE,
    group_size: int = DEFAULT_GROUP_SIZE,
    *,
    include_embeddings: bool = True,
    calibration: Mapping[str, torch.Tensor] | None = None,
    act_order: bool = False,
    residual: Callable[[str], bool] | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, torch.Tensor], list[QuantSpec]]:
    """Offline step: (state dict with `<name>.packed` instead of `<name>.weight`, specs).

    mode "awq" needs `calibration`: linear name -> input activations, from
    `calibration.collect_linear_inputs`; mode "gptq" needs linear name -> input Hessian [K, K], from
    `calibration.collect_linear_hessians`. Linears without calibration fall back to "asym"; a tied
    embedding / lm head pair is quantized once, without AWQ scales (GPTQ through the lm head's
    Hessian when there is one), so both can share it. `act_order` is GPTQ's column order (gptq.py);
    `residual(name)` true makes that (untied, non-AWQ) module 8-bit: round-to-nearest codes held as
    two int4 planes (`quantize_8bit_split`), so every int4 kernel runs it.
    """
    if mode not in MODES:
        raise ValueError(f"unknown quantization mode {mode!r}; expected one of {MODES}")
    if mode in ("awq", "gptq") and not calibration:
        raise ValueError(f"mode={mode!r} needs calibration data (see quant.calibration)")
    hessian_of = _hessians_by_weight(model, calibration) if mode == "gptq" else {}
    tied_ids = _tied_weight_ids(model, include_embeddings)

    def split8(name: str, wid: int) -> bool:  # 8 bits as two planes: nothing for GPTQ to do
        return mode != "awq" and wid not in tied_ids and residual is not None and residual(name)

    gptq_names, gptq_results = _gptq_in_parallel(
        model, include_embeddings, group_size, hessian_of, act_order, skip=split8
    )
    state = dict(model.state_dict())
    specs: list[QuantSpec] = []
    packed_by_weight: dict[int, tuple[str, torch.Tensor]] = {}  # id(weight) -> (module name, packed)
    uncalibrated: list[str] = []
    try:
        for name, module in _quantizable(model, include_embeddings):
            is_linear = isinstance(module, nn.Linear)
            n_out, n_in = module.weight.shape
            g = _fit_group_size(n_in, group_size)
            if g is None:
                log.info("quant: %s keeps its float weight (in_features=%d fits no group size)", name, n_in)
                continue
            state.pop(f"{name}.weight", None)
            wid = id(module.weight)
            tied_to = None
            act_scale = False
            with_residual = False
            if wid in packed_by_weight:
                tied_to, packed = packed_by_weight[wid]
                used_mode = next(s.mode for s in specs if s.name == tied_to)
            else:
                used_mode = mode
                w = module.weight.detach().to("cpu", torch.float32)
                if split8(name, wid):
                    used_mode = "int8"
                if mode == "awq" and (not is_linear or wid in tied_ids):
                    used_mode = "asym"
                if used_mode == "awq":
                    x = calibration.get(name) if calibration else None
                    if x is None:
                        uncalibrated.append(name)
                        used_mode = "asym"
                if used_mode == "gptq" and wid not in hessian_of:
                    if is_linear:  # an untied embedding has no inputs to weigh its rows by
                        uncalibrated.append(name)
                    used_mode = "asym"
                if used_mode == "int8":
                    qw, second = quantize_8bit_split(w, g)
                    state[f"{name}.residual"] = pack_int4(second).to(module.weight.device)
                    with_residual = True
                elif used_mode == "awq":
                    qw, inv_s = awq_quantize(w, x, g)
                    state[f"{name}.act_scale"] = inv_s.to(module.weight.device)
                    act_scale = True
                elif used_mode == "gptq":
                    if progress is not None:
                        progress(f"gptq: {name} [{n_out}x{n_in}]")
                    if next(gptq_names) != name:  # the same walk as _gptq_in_parallel's
                        raise RuntimeError(f"GPTQ results out of order at {name}")
                    qw = next(gptq_results)
                else:
                    qw = quantize(w, used_mode, g)
                packed = pack_int4(qw).to(module.weight.device)
                packed_by_weight[wid] = (name, packed)
            state[f"{name}.packed"] = packed
            has_bias = is_linear and module.bias is not None
            if has_bias:
                state[f"{name}.bias"] = module.bias.detach().float()
            specs.append(
                QuantSpec(
                    name=name,
                    kind="linear" if is_linear else "embedding",
                    in_features=n_in,
                    out_features=n_out,
                    group_size=g,
                    mode=used_mode,
                    bias=has_bias,
                    act_scale=act_scale,
                    tied_to=tied_to,
                    residual=with_residual,
                )
            )
    finally:
        gptq_results.close()  # cancels what is still queued if a module failed
    if uncalibrated:
        log.warning(
            "quant: %s without calibration for %d modules (%s ...): used asym",
            mode,
            len(uncalibrated),
            uncalibrated[0],
        )
    return state, specs


def _gptq_in_parallel(
    model: nn.Module,
    include_embeddings: bool,
    group_size: int,
    hessian_of: Mapping[int, torch.Tensor],
    act_order: bool,
    skip: Callable[[str, int], bool] = lambda name, wid: False,
) -> tuple[Iterator[str], Iterator[Int4Weight]]:
    """(names, results) of every module create_quantized_state_dict will GPTQ, in its order: the
    first module of each weight that fits a group size and has a Hessian. The results are
    computed ahead on worker threads (gptq_quantize_many) while the caller packs earlier ones."""
    names: list[str] = []
    jobs: list[tuple[torch.Tensor, torch.Tensor, int]] = []
    seen: set[int] = set()
    for name, module in _quantizable(model, include_embeddings):
        g = _fit_group_size(module.weight.shape[1], group_size)
        wid = id(module.weight)
        if g is None or wid in seen:
            continue
        seen.add(wid)
        if wid in hessian_of and not skip(name, wid):
            names.append(name)
            jobs.append((module.weight.detach().to("cpu", torch.float32), hessian_of[wid], g))
    return iter(names), gptq_quantize_many(jobs, act_order=act_order)


def _hessians_by_weight(
    model: nn.Module, calibration: Mapping[str, torch.Tensor] | None
) -> dict[int, torch.Tensor]:
    """id(weight) -> Hessian, so a tied embedding finds the Hessian recorded for its lm head."""
    found: dict[int, torch.Tensor] = {}
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if calibration and name in calibration and isinstance(weight, torch.Tensor):
            found[id(weight)] = calibration[name]
    return found


def _tied_weight_ids(model: nn.Module, include_embeddings: bool) -> set[int]:
    seen: dict[int, int] = {}
    for _, module in _quantizable(model, include_embeddings):
        seen[id(module.weight)] = seen.get(id(module.weight), 0) + 1
    return {wid for wid, count in seen.items() if count > 1}


def convert_for_runtime(
    model: nn.Module,
    specs: list[QuantSpec],
    *,
    kernel: str | None = None,
    device: torch.device | str | None = None,
) -> nn.Module:
    """Swap the modules named in `specs` for empty int4 modules, on `device` or the old module's
    device ("meta" for a skeleton). Load a state dict with assign=True afterwards."""
    for spec in specs:
        old = model.get_submodule(spec.name)
        want = nn.Embedding if spec.kind == "embedding" else nn.Linear
        if not isinstance(old, want) or tuple(old.weight.shape) != (spec.out_features, spec.in_features):
            found = tuple(getattr(old, "weight", torch.empty(0)).shape)
            raise ValueError(
                f"{spec.name}: expected {want.__name__} [{spec.out_features}, {spec.in_features}], "
                f"found {type(old).__name__} {list(found)}"
            )
        dev = device if device is not None else old.weight.device
        if spec.kind == "screened_head":
            new: nn.Module = ScreenedHead(
                spec.in_features, spec.out_features, spec.screen_dim, spec.candidates, device=dev
            )
        elif spec.kind == "linear":
            new = QuantLinear(
                spec.in_features,
                spec.out_features,
                bias=spec.bias,
                group_size=spec.group_size,
                mode=spec.mode,
                act_scale=spec.act_scale,
                residual=spec.residual,
                kernel=kernel,
                device=dev,
            )
        elif spec.kind == "embedding":
            new = QuantEmbedding(
                spec.out_features,
                spec.in_features,
                group_size=spec.group_size,
                mode=spec.mode,
                dtype=old.weight.dtype,
                residual=spec.residual,
                kernel=kernel,
                device=dev,
            )
        else:
            raise ValueError(f"unknown module kind {spec.kind!r} in quant spec for {spec.name}")
        parent_name, _, child = spec.name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
    return model


def specs_of(model: nn.Module) -> list[QuantSpec]:
    """The specs of a converted model, read back from its modules (tied = shared packed storage)."""
    specs: list[QuantSpec] = []
    owner: dict[int, str] = {}
    for name, module in model.named_modules():
        if isinstance(module, ScreenedHead):  # before its screen, which convert_for_runtime then swaps
            specs.append(
                QuantSpec(
                    name=name,
                    kind="screened_head",
                    in_features=module.in_features,
                    out_features=module.out_features,
                    group_size=EXACT_GROUP,
                    mode="int8",
                    screen_dim=module.screen_dim,
                    candidates=module.candidates,
                )
            )
            continue
        if not isinstance(module, QuantLinear | QuantEmbedding):
            continue
        key = (
            module.packed.untyped_storage().data_ptr()
            if module.packed.device.type != "meta"
            else id(module.packed)
        )
        tied_to = owner.get(key)
        owner.setdefault(key, name)
        is_linear = isinstance(module, QuantLinear)
        specs.append(
            QuantSpec(
                name=name,
                kind="linear" if is_linear else "embedding",
                in_features=module.in_features if is_linear else module.embedding_dim,
                out_features=module.out_features if is_linear else module.num_embeddings,
                group_size=module.group_size,
                mode=module.mode,
                bias=is_linear and module.bias is not None,
                act_scale=is_linear and module.act_scale is not None,
                tied_to=tied_to,
                residual=module.residual is not None,
            )
        )
    return specs


@torch.no_grad()
def quantize_model_(
    model: nn.Module,
    mode: str = DEFAULT_MODE,
    group_size: int = DEFAULT_GROUP_SIZE,
    *,
    include_embeddings: bool = True,
    calibration: Mapping[str, torch.Tensor] | None = None,
    act_order: bool = False,
    residual: Callable[[str], bool] | None = None,
    kernel: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> nn.Module:
    """Quantize every nn.Linear (and nn.Embedding) of `model` in place; returns `model`."""
    state, specs = create_quantized_state_dict(
        model,
        mode,
        group_size,
        include_embeddings=include_embeddings,
        calibration=calibration,
        act_order=act_order,
        residual=residual,
        progress=progress,
    )
    convert_for_runtime(model, specs, kernel=kernel, device="meta")
    model.load_state_dict(state, strict=True, assign=True)
    return model


def fold_act_scale_into_norm_(norm: nn.Module, linear: QuantLinear) -> None:
    """Fold an AWQ input multiplier into the norm that alone feeds `linear`: norm.weight *= 1 / s.

    Valid for RMSNorm / LayerNorm without bias whose output goes only to this linear (the engine's
    fused wqkv and w_gate_up). Afterwards the linear runs without the extra multiply.
    """
    if linear.act_scale is None:
        return
    weight = getattr(norm, "weight", None)
    if weight is None or weight.shape != linear.act_scale.shape or getattr(norm, "bias", None) is not None:
        raise ValueError("fold_act_scale_into_norm_ needs a bias-free norm with weight [in_features]")
    weight.data.mul_(linear.act_scale.to(weight.dtype))
    linear.act_scale = None
