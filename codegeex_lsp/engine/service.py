"""The completion service: FimRequest -> Prompt -> generation -> post-processed completion.

One instance holds one loaded model and its prompt format. The CLI, the language server and the
benchmarks all call `complete()`, so what a benchmark measures is what an editor gets.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from codegeex_lsp.config import CompletionOptions, EngineOptions
from codegeex_lsp.engine.decode import GenerationResult, SamplingParams, generate
from codegeex_lsp.engine.load import LoadedModel, Progress, load_model
from codegeex_lsp.postprocess import Candidate, run_pipeline
from codegeex_lsp.postprocess.cut_chat_runoff import cut_chat_runoff
from codegeex_lsp.postprocess.cut_suffix_overlap import cut_suffix_overlap
from codegeex_lsp.postprocess.limit_scope import limit_scope
from codegeex_lsp.postprocess.remove_repetitive_blocks import remove_repetitive_blocks
from codegeex_lsp.postprocess.remove_repetitive_lines import remove_repetitive_lines
from codegeex_lsp.prompt import Budget, FimRequest, Prompt, build_prompt, detect_format, verify_special_tokens
from codegeex_lsp.prompt.healing import heal, split_trailing_whitespace

# Instruct models run on past the middle into markdown and chat; a fence never belongs in a FIM
# middle, so stop decoding there instead of paying for tokens post-processing would cut anyway.
RUNOFF_STOP_STRINGS = ("```",)

# Filters whose cuts more text cannot undo (see `CompletionService.stop_check`), in pipeline order.
STOP_FILTERS = (
    cut_chat_runoff,
    remove_repetitive_blocks,
    remove_repetitive_lines,
    limit_scope,
    cut_suffix_overlap,
)


@dataclass(frozen=True)
class CompletionResult:
    completion: str
    candidates: tuple[str, ...]
    raw: tuple[str, ...]
    model: str
    format: str
    mode: str
    prompt_tokens: int
    generated_tokens: int
    finish_reason: str
    timings: dict[str, float] = field(default_factory=dict)


class CompletionService:
    """Owns a loaded model + prompt format; `complete()` is safe to call from one thread at a time."""

    def __init__(self, loaded: LoadedModel, format_override: str | None = None) -> None:
        self.loaded = loaded
        self.format = detect_format(loaded.tokenizer, loaded.model_type, format_override)
        verify_special_tokens(self.format, loaded.tokenizer)

    @classmethod
    def load(
        cls, options: EngineOptions, format_override: str | None = None, progress: Progress | None = None
    ) -> CompletionService:
        return cls(load_model(options, progress), format_override)

    def build(self, request: FimRequest, options: CompletionOptions) -> Prompt:
        """The prompt for `request`, its prefix ending before the cursor's trailing whitespace."""
        budget = Budget(prefix_tokens=options.prefix_tokens, suffix_tokens=options.suffix_tokens)
        prefix, _trailing = split_trailing_whitespace(request.prefix)
        return build_prompt(self.format, self.loaded.tokenizer, replace(request, prefix=prefix), budget)

    def sampling_params(
        self, prompt: Prompt, request: FimRequest, options: CompletionOptions
    ) -> SamplingParams:
        return SamplingParams(
            max_new_tokens=options.max_tokens,
            temperature=options.temperature,
            top_p=options.top_p,
            n=options.n,
            stop_token_ids=tuple(dict.fromkeys((*prompt.stop_token_ids, *self.loaded.eos_token_ids))),
            stop_strings=tuple(dict.fromkeys((*prompt.stop_strings, *RUNOFF_STOP_STRINGS))),
            single_line=request.mode == "LINE",
            seed=options.seed,
        )

    @staticmethod
    def stop_check(request: FimRequest) -> Callable[[str], bool]:
        """Stop decoding once post-processing would cut inside the lines already generated.

        The filters in STOP_FILTERS only ever cut at or before a point that more text cannot move
        (a closed scope, a repeat of the suffix, a fence), so when they cut into completed lines
        every further token would be thrown away: an Instruct model otherwise runs on for
        max_tokens, repeating the rest of the file.
        """
        base = Candidate(request.prefix, request.suffix, request.language, request.mode, text="")
        _prefix, trailing = split_trailing_whitespace(request.prefix)

        def check(text: str) -> bool:
            text = heal(text, trailing)
            complete = text[: text.rfind("\n")].rstrip()
            if not complete.strip():
                return False
            kept = run_pipeline(base.with_text(text), STOP_FILTERS)
            return kept is None or len(kept.text.rstrip()) < len(complete)

        return check

    def complete(
        self,
        request: FimRequest,
        options: CompletionOptions,
        *,
        is_cancelled: Callable[[], bool] | None = None,
        on_token: Callable[[int, int, str], None] | None = None,
    ) -> CompletionResult:
        started = time.perf_counter()
        prompt = self.build(request, options)
        built = time.perf_counter()
        result: GenerationResult = generate(
            self.loaded.model,
            self.loaded.tokenizer,
            prompt.token_ids,
            self.sampling_params(prompt, request, options),
            on_token=on_token,
            is_cancelled=is_cancelled,
            stop_check=self.stop_check(request),
        )
        texts: list[str] = []
        _prefix, trailing = split_trailing_whitespace(request.prefix)
        base = Candidate(request.prefix, request.suffix, request.language, request.mode, text="")
        for cand in result.candidates:
            item = run_pipeline(base.with_text(heal(cand.text, trailing)))
            if item is not None and item.text not in texts:
                texts.append(item.text)
        finish = result.candidates[0].finish_reason if result.candidates else "length"
        return CompletionResult(
            completion=texts[0] if texts else "",
            candidates=tuple(texts),
            raw=tuple(c.text for c in result.candidates),
            model=self.loaded.name,
            format=self.format.name,
            mode=request.mode,
            prompt_tokens=result.n_prompt_tokens,
            generated_tokens=max((len(c.token_ids) for c in result.candidates), default=0),
            finish_reason=finish,
            timings={
                "load_s": self.loaded.load_s,
                "prompt_s": built - started,
                "prefill_s": result.prefill_s,
                "decode_s": result.decode_s,
                "decode_tok_s": result.decode_tok_s,
                "total_s": time.perf_counter() - started,
            },
        )
