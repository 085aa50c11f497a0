"""pygls' protocol, hardened: every bad message gets a JSON-RPC error, and documents live in one place.

pygls 2.1 reads a message with `json.loads(body, object_hook=structure_message)` and, when that
fails, only logs. A request whose params do not validate would then never be answered, and a client
that waits for it hangs. Here:

- a body that is not JSON (or not UTF-8) is answered with ParseError (-32700, id null);
- JSON that is not a request/notification object gets InvalidRequest (-32600);
- a request whose params do not validate (negative position, missing field) gets InvalidParams
  (-32602) for its own id, and the connection goes on;
- requests before `initialize` get ServerNotInitialized (-32002), as the spec says;
- `exit` ends the process through the app's hook (pygls' own raises SystemExit inside a TCP
  connection callback and leaves the server running).

The builtin didOpen/didChange/didClose handlers of pygls keep a second copy of every document in
its Workspace; they are replaced by ones that only call ours (context's `Document` is the copy).
`initialize` picks the position encoding itself (UTF-8 when offered) and drops the
`completionProvider` fallback for clients that have inline completion.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException
from pygls.protocol import LanguageServerProtocol, lsp_method

from codegeex_lsp.server.convert import choose_encoding, supports_inline_completion

log = logging.getLogger(__name__)


class _Rejected:
    """Stands in for a message that was already answered with an error."""


_REJECTED = _Rejected()


def _error(code: int, message: str) -> lsp.ResponseError:
    return lsp.ResponseError(code=code, message=message)


class CodegeexProtocol(LanguageServerProtocol):
    def __init__(self, server, converter) -> None:
        super().__init__(server, converter)
        self._initialized = False
        # Set by the app: called with the negotiated encoding before the capabilities are sent.
        self.on_encoding: Callable[[str], None] | None = None
        # Set by the app: ends the process with the given code on `exit` (stdio and TCP alike).
        self.on_exit: Callable[[int], None] | None = None

    # -- reading -------------------------------------------------------------------------------

    def structure_message(self, data: dict[str, Any]):
        if "jsonrpc" in data and data["jsonrpc"] != self.VERSION:
            self._answer_invalid(data)
            return _REJECTED
        try:
            return super().structure_message(data)
        except JsonRpcException:
            msg_id = data.get("id")
            if isinstance(msg_id, int | str) and "method" in data:
                method = data.get("method")
                self._send_response(
                    msg_id, error=_error(lsp.ErrorCodes.InvalidParams, f"invalid params for {method!r}")
                )
                log.warning("request %r (%r): params do not validate; answered InvalidParams", msg_id, method)
                return _REJECTED
            if "method" in data:
                log.warning("notification %r: params do not validate; ignored", data.get("method"))
                return _REJECTED
            raise

    def handle_message(self, message: Any) -> None:
        if message is _REJECTED:
            return
        if not hasattr(message, "jsonrpc") or getattr(message, "jsonrpc", None) != self.VERSION:
            self._answer_invalid(message)
            return
        method = getattr(message, "method", None)
        if not self._initialized and method not in (lsp.INITIALIZE, lsp.EXIT) and method is not None:
            if hasattr(message, "id"):
                self._send_response(
                    message.id, error=_error(lsp.ErrorCodes.ServerNotInitialized, "initialize first")
                )
            return
        super().handle_message(message)

    def _answer_invalid(self, message: Any) -> None:
        msg_id = message.get("id") if isinstance(message, dict) else getattr(message, "id", None)
        if not isinstance(msg_id, int | str):
            msg_id = None
        log.warning("not a JSON-RPC 2.0 message: %.200r", message)
        self._send_raw_error(msg_id, lsp.ErrorCodes.InvalidRequest, "Invalid Request")

    def answer_parse_error(self, exc: Exception) -> None:
        log.warning("unparsable message: %s", exc)
        self._send_raw_error(None, lsp.ErrorCodes.ParseError, f"Parse error: {str(exc)[:200]}")

    def _send_raw_error(self, msg_id: int | str | None, code: int, message: str) -> None:
        # Sent as a plain dict: lsprotocol's ResponseErrorMessage drops a null id.
        self._send_data(
            {"jsonrpc": self.VERSION, "id": msg_id, "error": {"code": int(code), "message": message}}
        )

    # -- lifecycle -----------------------------------------------------------------------------

    @lsp_method(lsp.INITIALIZE)
    def lsp_initialize(self, params: lsp.InitializeParams):
        encoding = choose_encoding(params.capabilities)
        if self.on_encoding is not None:
            self.on_encoding(encoding)
        result = yield from super().lsp_initialize(params)
        result.capabilities.position_encoding = encoding
        if supports_inline_completion(params.capabilities):
            result.capabilities.completion_provider = None
        self._initialized = True
        return result

    @lsp_method(lsp.EXIT)
    def lsp_exit(self, *args):
        if self.on_exit is None:
            yield from super().lsp_exit(*args)
            return
        if (handler := self.fm.features.get(lsp.EXIT)) is not None:
            yield handler, args, None
        self.on_exit(0 if self._shutdown else 1)  # 1: `exit` without `shutdown`, as the spec says

    # -- documents: only ours ------------------------------------------------------------------

    @lsp_method(lsp.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: lsp.DidOpenTextDocumentParams):
        if (handler := self.fm.features.get(lsp.TEXT_DOCUMENT_DID_OPEN)) is not None:
            yield handler, (params,), None

    @lsp_method(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: lsp.DidChangeTextDocumentParams):
        if (handler := self.fm.features.get(lsp.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield handler, (params,), None

    @lsp_method(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: lsp.DidCloseTextDocumentParams):
        if (handler := self.fm.features.get(lsp.TEXT_DOCUMENT_DID_CLOSE)) is not None:
            yield handler, (params,), None


def is_parse_error(exc: Exception) -> bool:
    """Whether the reader loop failed on the bytes themselves (not on a valid message)."""
    return isinstance(exc, json.JSONDecodeError | UnicodeDecodeError)
