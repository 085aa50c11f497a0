"""The engine-backed HumanEval-X generator, in one of three protocols (`stops.PROTOCOLS`).

- `codegeex` (the default; the protocol CodeGeeX's published numbers use): the raw task prompt,
  tokenized as plain text with no FIM wrapper, continued left to right; decoding stops by CodeGeeX's
  own `is_code_generation_finished` rule, checked at each finished line.
- `fim`: the editor's prompt path: a FIM request with the prompt as prefix and an empty suffix,
  through the same prompt-format registry as an editor request; decoding stops as soon as the
  function is complete (our truncation rule).
- `instruct`: the chat model's own template with EvalPlus's request and response prefix
  (`instruct`); decoding stops at the closing fence or the end of the turn.
- `instruct-qwen`: the raw ChatML string of Qwen's own harness; decoding stops at its stop strings
  or the end of the turn.

The raw samples go back to the harness, which cuts them by the protocol's rule before execution.
"""

from __future__ import annotations

from dataclasses import replace

from codegeex_lsp.bench.humaneval_x.dataset import language_info
from codegeex_lsp.bench.humaneval_x.generator import GeneratorInfo
from codegeex_lsp.bench.humaneval_x.instruct import (
    ANSWER_OPENING,
    answer_prefill,
    qwen_prompt_text,
    qwen_reply_finished,
    reply_finished,
    user_message,
)
from codegeex_lsp.bench.humaneval_x.stops import PROTOCOLS, codegeex_finished, truncate_completion
from codegeex_lsp.config import DEFAULT_MODEL, CompletionOptions, EngineOptions
from codegeex_lsp.engine.decode import generate
from codegeex_lsp.engine.load import quant_label
from codegeex_lsp.engine.service import CompletionService
from codegeex_lsp.postprocess.early_stop import StopSpec, stop_spec
from codegeex_lsp.prompt.healing import heal, split_trailing_whitespace
from codegeex_lsp.prompt.types import FimRequest, Prompt

END_OF_TURN = "<|im_end|>"
"""ChatML's end of a turn (Qwen2.5's chat template)."""


class EngineGenerator:
    def __init__(self, service: CompletionService, prompt_tokens: int = 1536, protocol: str = "fim") -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
        self.service = service
        self.prompt_tokens = prompt_tokens
        self.protocol = protocol

    def generate(
        self, prompt: str, language: str, *, n: int, temperature: float, max_tokens: int
    ) -> list[str]:
        if self.protocol == "fim":
            return self._generate_fim(prompt, language, n=n, temperature=temperature, max_tokens=max_tokens)
        tokenizer = self.service.loaded.tokenizer
        if self.protocol == "codegeex":
            token_ids = list(tokenizer.encode(prompt, add_special_tokens=False))

            def stop_check(text: str) -> bool:
                return codegeex_finished(language, text)
        elif self.protocol == "instruct-qwen":
            token_ids = list(tokenizer.encode(qwen_prompt_text(prompt), add_special_tokens=False))
            stop_check = qwen_reply_finished
        else:
            messages = [{"role": "user", "content": user_message(prompt)}]
            token_ids = chat_token_ids(tokenizer, messages, answer_prefill())
            stop_check = reply_finished

        stop_ids = list(self.service.loaded.eos_token_ids)
        if self.protocol.startswith("instruct"):  # the end of the assistant's turn, whatever the config's eos
            end_of_turn = tokenizer.convert_tokens_to_ids(END_OF_TURN)
            if isinstance(end_of_turn, int) and end_of_turn != tokenizer.unk_token_id:
                stop_ids.append(end_of_turn)
        result = generate(
            self.service.loaded.model,
            tokenizer,
            Prompt(self.protocol, prompt, tuple(token_ids), tuple(dict.fromkeys(stop_ids))),
            CompletionOptions(max_tokens=max_tokens, temperature=temperature, n=n, seed=0),
            stop=StopSpec((), False, stop_check),
            lookup=self.service.lookup,  # greedy-identical prompt-lookup speculation
        )
        opening = ANSWER_OPENING if self.protocol == "instruct" else ""
        return [opening + text for text in result.raw]

    def _generate_fim(
        self, prompt: str, language: str, *, n: int, temperature: float, max_tokens: int
    ) -> list[str]:
        request = FimRequest(
            prefix=prompt, suffix="", language=language_info(language).language_id, mode="BLOCK"
        )
        options = CompletionOptions(
            max_tokens=max_tokens, temperature=temperature, n=n, prefix_tokens=self.prompt_tokens, seed=0
        )
        built = self.service.build(request, options)
        _kept, trailing = split_trailing_whitespace(prompt)

        def function_done(text: str) -> bool:
            text = heal(text, trailing)
            finished = text[: text.rfind("\n")]
            return len(truncate_completion(language, prompt, text)) < len(finished.rstrip())

        result = generate(
            self.service.loaded.model,
            self.service.loaded.tokenizer,
            built,
            options,
            stop=replace(stop_spec(request, built.stop_strings), single_line=False, check=function_done),
            lookup=self.service.lookup,  # greedy-identical prompt-lookup speculation
        )
        return [heal(text, trailing) for text in result.raw]


def chat_token_ids(tokenizer: object, messages: list[dict[str, str]], prefill: str = "") -> list[int]:
    """The model's chat template rendered with the assistant turn opened (and begun with `prefill`)."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)  # type: ignore[attr-defined]
    return list(tokenizer.encode(text + prefill, add_special_tokens=False))  # type: ignore[attr-defined]


def make_generator(
    model: str | None, quant: str, protocol: str = "fim"
) -> tuple[EngineGenerator, GeneratorInfo]:
    """Load the model once; `quant` is `none` or `int4` (the int4 path swaps in QuantLinear)."""
    options = EngineOptions(model=model or DEFAULT_MODEL, quant=quant)
    service = CompletionService.load(options)
    loaded = service.loaded
    prompt_format = service.format.name if protocol == "fim" else protocol
    info = GeneratorInfo(
        name=f"{loaded.name} ({prompt_format})",
        model_hash=loaded.source_sha256 or "unknown",
        quant=quant_label(quant),
    )
    return EngineGenerator(service, protocol=protocol), info
