"""HumanEval-X through the peer: llama.cpp's `llama-server` on a GGUF, in the `codegeex` protocol.

What 4 bits cost is a question about the model as much as about our quantizer: the same protocol
asked of llama.cpp on the shipped GGUF (the weights our fp runs use) and on its Q4_0
requantization (the file `bench decode` races against) says what the peer's own 4 bits cost, with
the peer's own kernels.

The request is the engine's, token for token: the prompt is tokenized by the model's own tokenizer
(the one our engine uses) and sent as ids; decoding is greedy (`top_k` 1); the text is decoded from
the generated ids by that tokenizer; decoding stops where ours does: at an end-of-sequence id of the
model's config, or when a token that holds a newline completes a text that CodeGeeX's
`is_code_generation_finished` calls finished (the stream is then closed, which cancels the rest).
llama-server also stops at the tokens its GGUF vocabulary marks end-of-generation, which for
Qwen2.5-Coder include `<|fim_pad|>`, `<|repo_name|>` and `<|file_sep|>`; ours would write them out.
Each prompt is evaluated afresh (`cache_prompt` off): llama.cpp's logits can change with how much
of a prompt comes from its KV cache, and answers must not depend on task order.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx

from codegeex_lsp.bench.humaneval_x.generator import GeneratorInfo
from codegeex_lsp.bench.humaneval_x.stops import codegeex_finished
from codegeex_lsp.bench.llama_server import READY_TIMEOUT_S, LlamaServer
from codegeex_lsp.errors import InputError, ModelError

RETRIES = 2  # per request, only while no token has arrived
PEER_MODELS: tuple[str, ...] = ("gguf", "q4_0")
"""`gguf`: the shipped file as stored (Q5_0 mix); `q4_0`: llama-quantize's Q4_0 of it (bench decode's)."""


def completion_request(token_ids: list[int], max_tokens: int) -> dict[str, Any]:
    """The `/completion` body: the prompt as ids, greedy, streamed with each chunk's token ids."""
    return {
        "prompt": token_ids,
        "n_predict": max_tokens,
        "temperature": 0.0,
        "top_k": 1,
        "samplers": ["top_k"],
        "stream": True,
        "return_tokens": True,
        "cache_prompt": False,
    }


def stream_tokens(lines: Iterable[str]) -> Iterable[int]:
    """The token ids of llama-server's server-sent events, in order; an `error` event raises."""
    for line in lines:
        if not line.startswith("data: "):
            continue
        payload = line[len("data: ") :].strip()
        if payload == "[DONE]":
            return
        try:
            event = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise ModelError(f"llama-server sent a malformed event: {payload[:200]!r}") from exc
        if "error" in event:
            raise ModelError(f"llama-server: {event['error']}")
        tokens = event.get("tokens")
        if tokens is None and not event.get("content"):
            continue  # the closing event (stop: true) carries timings, no text
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            raise ModelError("llama-server sent text without its token ids (a build without `return_tokens`?)")
        yield from tokens


class GreedyText:
    """The engine's stop logic over a stream of ids: the decoded text so far, and whether to stop."""

    def __init__(self, tokenizer: Any, stop_ids: Iterable[int], finished: Callable[[str], bool]) -> None:
        self.tokenizer = tokenizer
        self.stop_ids = frozenset(stop_ids)
        self.finished = finished
        self.ids: list[int] = []
        self.text = ""
        self.done = False

    def add(self, token: int) -> bool:
        """Take one generated id; True once decoding must stop."""
        if token in self.stop_ids:
            self.done = True
            return True
        self.ids.append(token)
        self.text = self.tokenizer.decode(self.ids, skip_special_tokens=False)
        if "\n" in self.tokenizer.decode([token]) and self.finished(self.text):
            self.done = True
        return self.done


class LlamaServerGenerator:
    """HumanEval-X completions from a running llama-server, greedy, `codegeex` protocol only."""

    def __init__(self, server: LlamaServer, tokenizer: Any, stop_ids: Iterable[int]) -> None:
        self.server = server
        self.tokenizer = tokenizer
        self.stop_ids = tuple(stop_ids)

    def generate(
        self, prompt: str, language: str, *, n: int, temperature: float, max_tokens: int
    ) -> list[str]:
        if n != 1 or temperature != 0.0:
            raise InputError("the llama-server peer runs greedy only (-n 1, --temperature 0)")
        ids = list(self.tokenizer.encode(prompt, add_special_tokens=False))

        def finished(text: str) -> bool:
            return codegeex_finished(language, text)

        for attempt in range(1 + RETRIES):
            state = GreedyText(self.tokenizer, self.stop_ids, finished)
            try:
                self._stream(completion_request(ids, max_tokens), state)
                break
            except httpx.TransportError as exc:
                # a connection dropped before the answer began (seen once in ~180 requests right after
                # a cancelled stream); greedy and uncached, so asking again gives the same answer
                if state.ids or attempt == RETRIES:
                    raise ModelError(f"llama-server /completion failed: {exc}") from exc
            except httpx.HTTPError as exc:
                raise ModelError(f"llama-server /completion failed: {exc}") from exc
        return [state.text]

    def _stream(self, body: dict[str, Any], state: GreedyText) -> None:
        # one connection per request: a stream closed early is never a connection to reuse
        with self.server.client.stream("POST", "/completion", json=body, headers={"Connection": "close"}) as reply:
            if reply.status_code != 200:
                reply.read()
                raise ModelError(f"llama-server /completion answered {reply.status_code}: {reply.text[:300]}")
            for token in stream_tokens(reply.iter_lines()):
                if state.add(token):
                    return  # leaving the block closes the stream: the server cancels the rest

    def close(self) -> None:
        self.server.close()


def embedded_tokenizer() -> tuple[Any, tuple[int, ...]]:
    """The embedded model's tokenizer and end-of-sequence ids: what our engine encodes and stops with."""
    from codegeex_lsp.config import DEFAULT_MODEL, cache_dir
    from codegeex_lsp.engine.load import eos_ids, load_tokenizer, read_config, resolve_hf_dir

    hf_dir, _digest, _embedded = resolve_hf_dir(DEFAULT_MODEL, cache_dir(), lambda _message: None)
    tokenizer = load_tokenizer(hf_dir, trust_remote_code=False)
    return tokenizer, eos_ids(tokenizer, read_config(hf_dir))


def make_peer_generator(
    peer_model: str, log_path: Path, *, threads: int = 0, llama_server: str | None = None,
    ready_timeout_s: float = READY_TIMEOUT_S,
) -> tuple[LlamaServerGenerator, GeneratorInfo]:
    """Start llama-server on the embedded model's GGUF (`gguf`) or its Q4_0 (`q4_0`), with the
    embedded model's tokenizer and end-of-sequence ids for the requests."""
    from codegeex_lsp.bench import llama_cpp
    from codegeex_lsp.bench.llama_server import find_llama_server, model_gguf
    from codegeex_lsp.config import DEFAULT_MODEL
    from codegeex_lsp.engine.embedded import sha256_file

    if peer_model not in PEER_MODELS:
        raise InputError(f"--peer-model must be one of {', '.join(PEER_MODELS)}, not {peer_model!r}")
    binary, reason = find_llama_server(llama_server)
    if binary is None:
        raise ModelError(f"the llama-server peer cannot run: {reason}")
    gguf, digest = model_gguf(DEFAULT_MODEL)
    quant = "gguf as stored (Q5_0 mix)"
    if peer_model == "q4_0":
        gguf = llama_cpp.quantized(gguf, "Q4_0")
        digest = sha256_file(gguf)
        quant = "Q4_0 (llama-quantize of the shipped GGUF)"
    tokenizer, stop_ids = embedded_tokenizer()
    server = LlamaServer(binary, gguf, log_path, threads=threads, ready_timeout_s=ready_timeout_s)
    info = GeneratorInfo(name=f"llama-server /completion ({gguf.name})", model_hash=digest, quant=quant)
    return LlamaServerGenerator(server, tokenizer, stop_ids), info
