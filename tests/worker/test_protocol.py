"""The worker wire protocol without a worker: frames over a socketpair, every message type, limits,
and the rule that the protocol module imports the standard library only."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys

import pytest

from codegeex_lsp.config import CompletionOptions
from codegeex_lsp.prompt.types import FimRequest, Reference
from codegeex_lsp.protocol import (
    _MESSAGES,
    FRAME_HEADER,
    MAX_FRAME_BYTES,
    MSGPACK,
    Channel,
    Completion,
    ProtocolError,
    completion_from_wire,
    completion_to_wire,
    fim_from_wire,
    fim_to_wire,
    from_wire,
    options_from_wire,
    options_to_wire,
    to_wire,
)


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield Channel(a, MSGPACK), Channel(b, MSGPACK)
    a.close()
    b.close()


def sample(cls):
    values = {"str": "x\u00e9😀", "int": 7, "float": 0.5, "bool": True, "dict": {"k": [1, "v"]}}
    kwargs = {}
    for f in dataclasses.fields(cls):
        hint = str(f.type)
        kind = next((k for k in values if hint.startswith(k)), "str")
        kwargs[f.name] = values[kind]
    return cls(**kwargs)


def test_every_message_round_trips(pair):
    left, right = pair
    for name, cls in _MESSAGES.items():
        message = sample(cls)
        left.send(message)
        assert right.receive() == message, name
        assert to_wire(message)["type"] == name


def test_eof_and_bad_frames(pair):
    left, right = pair
    left.sock.sendall(FRAME_HEADER.pack(3) + b"\x92\x01\x02")  # a msgpack array, not a map
    with pytest.raises(ProtocolError, match="map"):
        right.receive()
    left.sock.sendall(FRAME_HEADER.pack(MAX_FRAME_BYTES + 1))
    with pytest.raises(ProtocolError, match="limit"):
        right.receive()
    with pytest.raises(ProtocolError, match="unknown message type"):
        from_wire({"type": "launch_missiles"})
    with pytest.raises(ProtocolError, match="bad hello"):
        from_wire({"type": "hello"})  # no token
    left.sock.sendall(FRAME_HEADER.pack(10) + b"abc")
    left.sock.shutdown(socket.SHUT_WR)
    with pytest.raises(ConnectionError, match="inside a frame"):
        right.receive()


def test_clean_eof_between_frames(pair):
    left, right = pair
    left.close()
    assert right.receive() is None


def test_payload_conversions():
    fim = FimRequest(
        prefix="a\n",
        suffix="b",
        language="go",
        path="x.go",
        mode="BLOCK",
        references=(Reference("y.go", "z"),),
    )
    assert fim_from_wire(MSGPACK.unpack(MSGPACK.pack(fim_to_wire(fim)))) == fim
    options = CompletionOptions(format="qwen2.5-coder", max_tokens=9, seed=3)
    assert options_from_wire(options_to_wire(options)) == options
    done = Completion("c", ("c",), ("c ",), "m", "f", "LINE", 3, 1, "stop", {"total_s": 0.1})
    assert completion_from_wire(MSGPACK.unpack(MSGPACK.pack(completion_to_wire(done)))) == done
    # The engine's decode counts are fields of the one generation type, and cross the wire as such.
    counted = Completion("", (), ("x",), "m", "f", "BLOCK", 9, 2, "length", {}, 5, 4, 3, 2, 1)
    assert completion_from_wire(MSGPACK.unpack(MSGPACK.pack(completion_to_wire(counted)))) == counted
    wire = completion_to_wire(counted)
    assert (wire["prefill_tokens"], wire["forward_passes"]) == (5, 1) and wire["timings"] == {}
    with pytest.raises(ProtocolError):
        completion_from_wire({"completion": "x"})


def test_protocol_module_imports_nothing_heavy():
    # msgpack is the one third-party import: the codec both ends share lives here.
    code = (
        "import sys, codegeex_lsp.protocol\n"
        "heavy = {'torch', 'pygls', 'lsprotocol', 'transformers', 'numpy'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
