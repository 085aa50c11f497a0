"""Run a `codegeex-lsp` command op by op with one rounding changed: RMSNorm statistics in float64.

A control for comparing two numerically equivalent paths (the fused int4 decode step against the
op-by-op forward): how much do greedy generations move when nothing but the order or precision of
one float sum changes? int4's int8 activations turn such last-bit changes into different tokens at
near ties, so the answer sets the bar for "the same within float noise". An experiment, not a
user knob.

    OMP_NUM_THREADS=1 python scripts/experiments/float_noise.py -- \\
        bench humanevalx --sample 30 --seed 1234 --workers 1 --out test-artifacts/hx-noise-sample
"""

from __future__ import annotations

import os
import sys

import torch


def float64_rmsnorm(self, x: torch.Tensor) -> torch.Tensor:
    x64 = x.double()
    x64 = x64 * torch.rsqrt(x64.pow(2).mean(-1, keepdim=True) + self.eps)
    return self.weight * x64.to(x.dtype)


def main() -> int:
    from codegeex_lsp.cli import main as cli_main
    from codegeex_lsp.engine import fused_decode, model

    command = sys.argv[1:]
    command = command[1:] if command[:1] == ["--"] else command
    if not command:
        print(__doc__, file=sys.stderr)
        return 2
    os.environ[fused_decode.FUSED_ENV] = "0"  # op by op, so the patched RMSNorm is what runs
    model.RMSNorm.forward = float64_rmsnorm
    return cli_main(command)


if __name__ == "__main__":
    sys.exit(main())
