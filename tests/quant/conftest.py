"""Deterministic data for the quant tests: every tensor comes from a seeded generator."""

from __future__ import annotations

import pytest
import torch


def randn(*shape: int, seed: int, outliers: tuple[int, ...] = (), outlier_scale: float = 1.0) -> torch.Tensor:
    """Standard normal data; `outliers` columns (last dim) multiplied by `outlier_scale`."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g)
    if outliers:
        x[..., list(outliers)] *= outlier_scale
    return x


@pytest.fixture(autouse=True)
def _two_threads():
    """Same thread count as the target laptop; restores torch's setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def compiled_kernels():
    """codegeex_lsp._kernels, loaded. Missing is a failure (a broken build must fail the tests), not a
    skip, unless the kernels were skipped on purpose with CODEGEEX_LSP_NO_KERNELS=1."""
    from codegeex_lsp.quant import ops

    if ops.extension() is None:
        if ops.kernels_skipped():
            pytest.skip(f"{ops.NO_KERNELS_ENV}=1: kernels skipped on purpose")
        pytest.fail(f"codegeex_lsp._kernels did not load: {ops.extension_error()}", pytrace=False)
    return ops.extension()
