"""The lm head as a cheap int4 screen plus an exact rescoring of its best candidates.

Why: every decoded token reads the whole output matrix (151,936 x 896 for the embedded model; in
int4 a quarter of the bytes a step streams), and its 4-bit error alone moved the top token at 4 %
of held-out positions. Greedy decoding needs the exact value of the largest logit only, sampling
that of the few largest. So the head is read in two parts:

- the screen: the int4 product of the hidden state's `screen_dim` principal directions (the top
  eigenvectors of the head's calibration Hessian X^T X) with the head projected onto them. At half
  the directions it reads ~53 % of the int4 head's bytes;
- the `candidates` largest screen logits are recomputed exactly from the head's own 8-bit rows
  (per-32 int8 codes and fp32 scales: the GGUF ships the head as Q8_0, which they reproduce bit for
  bit) and replace the screen's values. A step reads those rows only (~240 KB), not the table.

The other logits keep the screen's estimate: they change no greedy choice unless the top token
fell outside the candidates, and carry little probability mass.
Measured on held-out code (never benchmark data; docs/results/quant/README.md): fp hidden states,
the screen at 448 of 896 directions held the fp top token in its best 256 at 100 % of 2,000
positions, where the plain int4 head agreed with fp's top token at 95.9 %.
"""

from __future__ import annotations

import torch
from torch import nn

EXACT_GROUP = 32  # inputs per fp32 scale of the exact rows (Q8_0's block)
SCREEN_FRACTION = 0.5  # principal directions kept, as a fraction of the hidden size
CANDIDATES = 256  # screen logits rescored exactly per position
_RESCORE_ROWS = 32  # positions rescored together (bounds the gathered rows' memory)


def screen_dim_for(in_features: int, fraction: float = SCREEN_FRACTION) -> int:
    """Directions kept: `fraction` of the inputs, a multiple of 32 (the kernels' block), at least 32."""
    return max(32, min(in_features, round(in_features * fraction / 32) * 32))


def principal_directions(hessian: torch.Tensor, k: int) -> torch.Tensor:
    """[K, k] orthonormal: the eigenvectors of the largest `k` eigenvalues of the symmetric `hessian`."""
    _, vectors = torch.linalg.eigh(hessian.double())
    return vectors[:, -k:].flip(-1).float().contiguous()


def int8_rows(weight: torch.Tensor, group: int = EXACT_GROUP) -> tuple[torch.Tensor, torch.Tensor]:
    """(codes int8 [N, K], scales fp32 [N, K / group]): w = d * q, d = absmax / 127 per group.

    Exact for weights already on such a grid (a Q8_0 tensor dequantized to fp32)."""
    n, k = weight.shape
    blocks = weight.float().reshape(n, k // group, group)
    scale = blocks.abs().amax(-1) / 127.0
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    codes = torch.round(blocks / safe[..., None]).clamp_(-127, 127).to(torch.int8)
    return codes.reshape(n, k), scale


class ScreenedHead(nn.Module):
    """logits = rescore(screen(x @ proj), x): see the module docstring. `screen` is an nn.Linear
    [screen_dim -> out_features] until the quantizer swaps it for a QuantLinear."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        screen_dim: int,
        candidates: int = CANDIDATES,
        *,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if in_features % EXACT_GROUP or screen_dim % 32 or not 0 < screen_dim <= in_features:
            raise ValueError(
                f"ScreenedHead: in_features {in_features} must be a multiple of {EXACT_GROUP} and "
                f"screen_dim {screen_dim} a multiple of 32 in (0, in_features]"
            )
        if candidates < 1:
            raise ValueError(f"ScreenedHead: candidates must be >= 1, got {candidates}")
        self.in_features = in_features
        self.out_features = out_features
        self.screen_dim = screen_dim
        self.candidates = candidates
        self.register_buffer("proj", torch.empty(in_features, screen_dim, device=device))
        self.screen = nn.Linear(screen_dim, out_features, bias=False, device=device)
        self.register_buffer(
            "exact_q", torch.empty(out_features, in_features, dtype=torch.int8, device=device)
        )
        self.register_buffer("exact_d", torch.empty(out_features, in_features // EXACT_GROUP, device=device))

    @classmethod
    @torch.no_grad()
    def from_linear(
        cls, linear: nn.Linear, hessian: torch.Tensor, screen_dim: int, candidates: int = CANDIDATES
    ) -> ScreenedHead:
        """The screened form of a bias-free lm head, given its input Hessian (calibration X^T X)."""
        if linear.bias is not None:
            raise ValueError("ScreenedHead: the lm head must have no bias")
        weight = linear.weight.detach().to("cpu", torch.float32)
        module = cls(linear.in_features, linear.out_features, screen_dim, candidates)
        module.proj.copy_(principal_directions(hessian, screen_dim))
        module.screen.weight.copy_(weight @ module.proj)
        codes, scales = int8_rows(weight)
        module.exact_q.copy_(codes)
        module.exact_d.copy_(scales)
        return module

    def screen_hessian(self, hessian: torch.Tensor) -> torch.Tensor:
        """The screen's input Hessian, proj^T H proj, for GPTQ."""
        return (self.proj.T.double() @ hessian.double() @ self.proj.double()).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        return self.rescore(self.screen(x @ self.proj.to(x.device)).float(), x)

    @torch.no_grad()
    def rescore(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Replace, in each row of `logits` [..., V], the `candidates` largest values by the exact
        products of `x` [..., K] with those rows of the head; returns `logits` (changed in place)."""
        flat = logits.reshape(-1, self.out_features)
        xs = x.reshape(-1, self.in_features).float()
        k = min(self.candidates, self.out_features)
        for r0 in range(0, flat.shape[0], _RESCORE_ROWS):
            rows = flat[r0 : r0 + _RESCORE_ROWS]
            top = rows.topk(k, -1).indices  # [R, k]
            exact = (self.exact_rows(top) @ xs[r0 : r0 + _RESCORE_ROWS, :, None]).squeeze(-1)
            rows.scatter_(-1, top, exact)
        if flat.data_ptr() != logits.data_ptr():
            logits.copy_(flat.reshape(logits.shape))
        return logits

    def exact_rows(self, index: torch.Tensor) -> torch.Tensor:
        """The head's exact float32 rows at `index` (any shape): [*index.shape, K]."""
        codes = self.exact_q[index].float()
        return (codes.unflatten(-1, (-1, EXACT_GROUP)) * self.exact_d[index][..., None]).flatten(-2)

    def exact_weight(self) -> torch.Tensor:
        """The head's exact float32 weight [V, K] (tests, analysis)."""
        return self.exact_rows(torch.arange(self.out_features))

    def rescore_bytes(self) -> int:
        """Weight bytes one position reads besides the screen: the projection and the candidates' rows."""
        row = (
            self.in_features * self.exact_q.element_size()
            + self.exact_d.shape[1] * self.exact_d.element_size()
        )
        return self.proj.numel() * self.proj.element_size() + min(self.candidates, self.out_features) * row

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"screen_dim={self.screen_dim}, candidates={self.candidates}"
        )


def screen_head_(
    model: nn.Module,
    hessians: dict[str, torch.Tensor],
    name: str = "output",
    fraction: float = SCREEN_FRACTION,
    candidates: int = CANDIDATES,
) -> ScreenedHead | None:
    """Replace `model`'s float lm head `name` by its ScreenedHead before quantization, and add the
    screen's Hessian to `hessians` (so GPTQ rounds the screen like any linear). None, and nothing
    changed, when the head is not a bias-free nn.Linear with a Hessian."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    head = getattr(parent, child, None)
    hessian = hessians.get(name)
    if not isinstance(head, nn.Linear) or head.bias is not None or hessian is None or head.in_features % 32:
        return None
    screened = ScreenedHead.from_linear(head, hessian, screen_dim_for(head.in_features, fraction), candidates)
    hessians[f"{name}.screen"] = screened.screen_hessian(hessian)
    setattr(parent, child, screened.to(head.weight.device))
    return screened
