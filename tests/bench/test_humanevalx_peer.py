"""HumanEval-X through llama-server: the stream parsing, the engine's stop rule over ids, and a
whole request against a stand-in server process (real port, real HTTP, real streaming)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codegeex_lsp.bench.humaneval_x import run
from codegeex_lsp.bench.humaneval_x.peer import (
    RETRIES,
    GreedyText,
    LlamaServerGenerator,
    completion_request,
    stream_tokens,
)
from codegeex_lsp.bench.humaneval_x.stops import codegeex_finished
from codegeex_lsp.bench.llama_server import LlamaServer
from codegeex_lsp.errors import InputError, ModelError
from tests.support.stand_in_llama_server import write_stand_in


class PieceTokenizer:
    """Ids are indexes into a list of text pieces (the engine's tokenizer calls, nothing more)."""

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        assert not add_special_tokens
        return [self.pieces.index(ch) for ch in text]

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return "".join(self.pieces[i] for i in ids)


PIECES = ["{", "}", "\n", "  return 1;\n", "}\n", "junk();\n", "<eos>", "a", "b", "x"]
EOS = PIECES.index("<eos>")


def test_stream_events_give_the_ids_in_order_and_errors_raise() -> None:
    lines = [
        "",
        'data: {"content": "ab", "tokens": [7, 8]}',
        ": keep-alive",
        'data: {"content": "x", "tokens": [9]}',
        'data: {"content": "", "stop": true}',
        "data: [DONE]",
        'data: {"content": "late", "tokens": [1]}',
    ]
    assert list(stream_tokens(lines)) == [7, 8, 9]
    with pytest.raises(ModelError, match="slot unavailable"):
        list(stream_tokens(['data: {"error": "slot unavailable"}']))
    with pytest.raises(ModelError, match="return_tokens"):
        list(stream_tokens(['data: {"content": "ab"}']))
    with pytest.raises(ModelError, match="malformed"):
        list(stream_tokens(["data: {nope"]))


def test_greedy_text_stops_where_the_engine_does() -> None:
    tokenizer = PieceTokenizer(PIECES)
    state = GreedyText(tokenizer, [EOS], lambda text: codegeex_finished("js", text))
    # "  return 1;\n" holds a newline but leaves the body open; "}\n" closes it
    assert not state.add(PIECES.index("  return 1;\n"))
    assert state.add(PIECES.index("}\n"))
    assert state.text == "  return 1;\n}\n"
    # a closing brace without its newline does not stop yet (the rule runs at finished lines)
    state = GreedyText(tokenizer, [EOS], lambda text: codegeex_finished("js", text))
    assert not state.add(PIECES.index("}"))
    assert state.add(PIECES.index("\n")) and state.text == "}\n"
    # an end-of-sequence id stops and is not part of the text
    state = GreedyText(tokenizer, [EOS], lambda text: codegeex_finished("js", text))
    assert not state.add(PIECES.index("a"))
    assert state.add(EOS) and state.text == "a"


def test_request_is_the_engine_prompt_greedy_and_fresh() -> None:
    body = completion_request([3, 1, 4], 512)
    assert body["prompt"] == [3, 1, 4] and body["n_predict"] == 512
    assert (body["temperature"], body["top_k"], body["samplers"]) == (0.0, 1, ["top_k"])
    assert body["stream"] is True and body["return_tokens"] is True and body["cache_prompt"] is False


def test_generator_against_a_server_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    binary = write_stand_in(tmp_path / "bin" / "llama-server")
    log = tmp_path / "requests.jsonl"
    monkeypatch.setenv("STAND_IN_LOG", str(log))
    # the server would go on after the function's end; the generator keeps what the rule keeps
    ids = [PIECES.index(p) for p in ("  return 1;\n", "}\n", "junk();\n", "}\n")]
    monkeypatch.setenv("STAND_IN_TOKENS", ",".join(map(str, ids)))
    (gguf := tmp_path / "m.gguf").write_bytes(b"GGUF")
    server = LlamaServer(binary, gguf, tmp_path / "server.log", threads=1)
    generator = LlamaServerGenerator(server, PieceTokenizer(PIECES), [EOS])
    try:
        assert generator.generate("ab", "js", n=1, temperature=0.0, max_tokens=64) == ["  return 1;\n}\n"]
        with pytest.raises(InputError, match="greedy"):
            generator.generate("ab", "js", n=2, temperature=0.0, max_tokens=64)
    finally:
        generator.close()
    assert server.proc.poll() is not None
    sent = json.loads(log.read_text().splitlines()[0])
    assert sent["prompt"] == [PIECES.index("a"), PIECES.index("b")] and sent["n_predict"] == 64


def test_a_dropped_connection_is_asked_again_then_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    binary = write_stand_in(tmp_path / "bin" / "llama-server")
    monkeypatch.setenv("STAND_IN_LOG", str(tmp_path / "requests.jsonl"))
    monkeypatch.setenv("STAND_IN_TOKENS", ",".join(str(PIECES.index(p)) for p in ("  return 1;\n", "}\n")))
    (gguf := tmp_path / "m.gguf").write_bytes(b"GGUF")
    for drops, answers in ((RETRIES, True), (RETRIES + 1, False)):
        monkeypatch.setenv("STAND_IN_DROP", str(drops))
        generator = LlamaServerGenerator(LlamaServer(binary, gguf, tmp_path / "s.log"), PieceTokenizer(PIECES), [EOS])
        try:
            if answers:
                assert generator.generate("ab", "js", n=1, temperature=0.0, max_tokens=8) == ["  return 1;\n}\n"]
            else:
                with pytest.raises(ModelError, match="/completion failed"):
                    generator.generate("ab", "js", n=1, temperature=0.0, max_tokens=8)
        finally:
            generator.close()


def test_peer_options_name_the_variant_and_refuse_other_protocols() -> None:
    parser = run.build_parser()
    options = run.options_from_args(parser.parse_args(["--peer-model", "q4_0", "--peer-threads", "1"]))
    assert options.variant == "llama-q4_0" and options.peer_threads == 1
    assert run.options_from_args(parser.parse_args([])).variant == "int4"
    with pytest.raises(InputError, match="codegeex protocol"):
        run.options_from_args(parser.parse_args(["--peer-model", "gguf", "--protocol", "fim"]))
    with pytest.raises(SystemExit):
        parser.parse_args(["--peer-model", "q8_0"])
