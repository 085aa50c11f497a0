"""The engine-backed HumanEval-X generator: the editor's prompt path, prefix-only, one function.

Each task prompt goes through the same prompt-format registry as an editor request (a FIM request
with the prompt as prefix and an empty suffix), decoding stops as soon as the function is complete
(the harness's own truncation rule, checked at each finished line), and the raw samples go back to
the harness, which truncates them the same way before execution.
"""

from __future__ import annotations

from dataclasses import replace

from codegeex_lsp.bench.humaneval_x.generator import GeneratorInfo
from codegeex_lsp.bench.humaneval_x.stops import truncate_completion
from codegeex_lsp.config import DEFAULT_MODEL, CompletionOptions, EngineOptions
from codegeex_lsp.engine.decode import generate
from codegeex_lsp.engine.load import quant_label
from codegeex_lsp.engine.service import CompletionService
from codegeex_lsp.prompt.healing import heal, split_trailing_whitespace
from codegeex_lsp.prompt.types import FimRequest

LSP_LANGUAGE = {
    "python": "python",
    "cpp": "cpp",
    "java": "java",
    "js": "javascript",
    "go": "go",
    "rust": "rust",
}


class EngineGenerator:
    def __init__(self, service: CompletionService, prompt_tokens: int = 1536) -> None:
        self.service = service
        self.prompt_tokens = prompt_tokens

    def generate(
        self, prompt: str, language: str, *, n: int, temperature: float, max_tokens: int
    ) -> list[str]:
        request = FimRequest(prefix=prompt, suffix="", language=LSP_LANGUAGE[language], mode="BLOCK")
        options = CompletionOptions(
            max_tokens=max_tokens, temperature=temperature, n=n, prefix_tokens=self.prompt_tokens, seed=0
        )
        built = self.service.build(request, options)
        params = replace(self.service.sampling_params(built, request, options), single_line=False)
        _kept, trailing = split_trailing_whitespace(prompt)

        def function_done(text: str) -> bool:
            text = heal(text, trailing)
            finished = text[: text.rfind("\n")]
            return len(truncate_completion(language, prompt, text)) < len(finished.rstrip())

        result = generate(
            self.service.loaded.model,
            self.service.loaded.tokenizer,
            built.token_ids,
            params,
            stop_check=function_done,
            lookup=self.service.lookup,  # greedy-identical prompt-lookup speculation
        )
        return [heal(c.text, trailing) for c in result.candidates]


def make_generator(model: str | None, quant: str) -> tuple[EngineGenerator, GeneratorInfo]:
    """Load the model once; `quant` is `none` or `int4` (the int4 path swaps in QuantLinear)."""
    options = EngineOptions(model=model or DEFAULT_MODEL, quant=quant)
    service = CompletionService.load(options)
    loaded = service.loaded
    info = GeneratorInfo(
        name=f"{loaded.name} ({service.format.name})",
        model_hash=loaded.source_sha256 or "unknown",
        quant=quant_label(quant),
    )
    return EngineGenerator(service), info
