"""The real embedded model (Qwen2.5-Coder-0.5B-Instruct GGUF) through the whole pipeline.

Marked slow: the first run assembles and converts the model (~40 s), later loads take seconds.
`.ci/run` runs these too.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from codegeex_lsp.config import CompletionOptions, EngineOptions
from codegeex_lsp.context import Document, build_context, to_fim_request
from codegeex_lsp.context.languages import language_for
from codegeex_lsp.engine.packed_linear import count_parameters

pytestmark = pytest.mark.slow

CASES = tomllib.loads((Path(__file__).parent / "fim_cases.toml").read_text())["case"]


@pytest.fixture(scope="module")
def service():
    from codegeex_lsp.engine.service import CompletionService

    return CompletionService.load(EngineOptions(threads=2))


def _request(case: dict):
    marked = case["text"].lstrip("\n")
    offset = marked.index("█")
    text = marked.replace("█", "")
    info = language_for(None, case["path"])
    doc = Document(
        uri=f"file:///tmp/{case['path']}", text=text, language_id=info.language_id, path=case["path"]
    )
    return to_fim_request(build_context(doc, doc.position_at(offset)))


def test_embedded_model_facts(service):
    loaded = service.loaded
    assert loaded.embedded is not None
    assert loaded.source_sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert loaded.model_type == "qwen2"
    assert service.format.name == "qwen2.5-coder"
    assert 151643 in service.build(_request(CASES[0]), CompletionOptions()).stop_token_ids
    assert count_parameters(loaded.model) > 490_000_000  # 494M + the GGUF's untied output head


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_fim_completion_contains_expected_line(service, case):
    request = _request(case)
    result = service.complete(request, CompletionOptions(max_tokens=96))
    assert case["expect"] in result.completion, (result.completion, result.raw)
    assert "```" not in result.completion
    # the run-on (the rest of the file repeated after the middle) never reaches the user
    rest = request.suffix.strip().splitlines()[-1].strip()
    assert rest not in result.completion
