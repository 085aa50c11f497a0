"""The request's scope crosses the worker protocol, so the worker's decode stops at the scope's end
as the in-process engine and the remote backend do; a malformed scope is a clear ProtocolError."""

from __future__ import annotations

import dataclasses

import pytest

from codegeex_lsp.context import Document, build_context, to_fim_request
from codegeex_lsp.postprocess.early_stop import stop_spec
from codegeex_lsp.protocol import ProtocolError, fim_from_wire, fim_to_wire

DOCUMENT = "class Calc {\n\n}\n"
# The model writes a member at the class's indentation, then runs on into the next one.
RAW = "int sub(int a, int b) {\n    return a - b;\n}\n\nint mul(int a, int b) {\n"


def request():
    doc = Document("file:///Calc.java", DOCUMENT, "java")
    return to_fim_request(build_context(doc, doc.position_at(len("class Calc {\n"))))


def test_scope_round_trips():
    sent = request()
    assert sent.scope is not None and sent.scope.kind == "class"
    assert fim_from_wire(fim_to_wire(sent)) == sent
    assert fim_from_wire(fim_to_wire(dataclasses.replace(sent, scope=None))).scope is None


def test_the_worker_side_stop_check_uses_the_scope():
    received = fim_from_wire(fim_to_wire(request()))
    assert stop_spec(received).check(RAW)  # the second member is past the class's first one: stop
    assert not stop_spec(dataclasses.replace(received, scope=None)).check(RAW)


@pytest.mark.parametrize(
    "scope",
    [5, {"kind": "class"}, {**dataclasses.asdict(request().scope), "kind": "module"},
     {**dataclasses.asdict(request().scope), "start_byte": -1},
     {**dataclasses.asdict(request().scope), "indent": 3}],
)  # fmt: skip
def test_a_bad_scope_is_a_protocol_error(scope):
    wire = {**fim_to_wire(request()), "scope": scope}
    with pytest.raises(ProtocolError, match="scope"):
        fim_from_wire(wire)
