"""The completion service on the tiny model, and its decode-time scope stop."""

from __future__ import annotations

import pytest

from codegeex_lsp.config import CompletionOptions, EngineOptions
from codegeex_lsp.engine.service import CompletionService
from codegeex_lsp.postprocess.early_stop import stop_spec
from codegeex_lsp.prompt.types import FimRequest


@pytest.fixture(scope="module")
def service(tiny_glm_dir):
    return CompletionService.load(EngineOptions(model=str(tiny_glm_dir), dtype="float32", quant="none"))


def test_tiny_model_completes_with_detected_format(service):
    request = FimRequest(prefix="def add(a, b):\n    ", suffix="\n", language="python", mode="BLOCK")
    result = service.complete(request, CompletionOptions(max_tokens=12))
    assert result.format == service.format.name
    assert result.prompt_tokens > 5
    assert 0 < result.generated_tokens <= 12
    assert result.timings["prefill_s"] > 0
    assert all(c for c in result.candidates)  # empty suggestions are dropped, never returned


def test_prompt_leaves_out_trailing_indentation(service):
    request = FimRequest(prefix="def add(a, b):\n    ", suffix="", language="python")
    plain = FimRequest(prefix="def add(a, b):\n", suffix="", language="python")
    opts = CompletionOptions()
    assert service.build(request, opts).token_ids == service.build(plain, opts).token_ids


def test_stop_check_fires_when_the_scope_closes():
    request = FimRequest(
        prefix="function max(values) {\n  let best = values[0];\n  for (const v of values) {\n    if (v > best) {\n      ",
        suffix="\n    }\n  }\n  return best;\n}\n",
        language="javascript",
        mode="BLOCK",
    )
    check = stop_spec(request).check
    assert not check("best = v;\n")
    assert check("best = v;\n    }\n  }\n  return best;\n")  # the model is repeating the suffix


def test_stop_check_line_mode_and_fence():
    line = FimRequest(prefix="x = ", suffix="\n", language="python", mode="LINE")
    assert stop_spec(line).check("compute(1)\nprint(x)\n")
    block = FimRequest(prefix="def f():\n    ", suffix="\n", language="python", mode="BLOCK")
    check = stop_spec(block).check
    assert not check("return 1\n")
    assert check("return 1\n```\nThis function returns 1.\n")
