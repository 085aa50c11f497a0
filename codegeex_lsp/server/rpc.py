"""pygls' protocol, hardened: every bad message gets a JSON-RPC error, and documents live in one place.

pygls 2.1 reads a message with `json.loads(body, object_hook=structure_message)` and, when that
fails, only logs. A request whose params do not validate would then never be answered, and a client
that waits for it hangs. Here bodies arrive through `receive_body` (framed by framing.py) and:

- a body that is not JSON (or not UTF-8, or nested too deeply to parse) is answered with
  ParseError (-32700, id null);
- JSON that is not a request/notification/response object (a batch, a `method` that is not a
  string, an id that is neither integer nor string) gets InvalidRequest (-32600);
- a request after `shutdown` gets InvalidRequest, as the spec says; a notification method sent with
  an id gets InvalidRequest for that id; a request method sent without an id is logged and dropped
  (there is no id to answer);
- a request whose params do not validate (negative position, missing field, a string where the
  spec has an integer: the converter is strict, see `strict_converter`) gets InvalidParams (-32602)
  for its own id, and the connection goes on;
- requests before `initialize` get ServerNotInitialized (-32002), as the spec says;
- `exit` ends the process through the app's hook (pygls' own raises SystemExit inside a TCP
  connection callback and leaves the server running).

The builtin didOpen/didChange/didClose handlers of pygls keep a second copy of every document in
its Workspace; they are replaced by ones that only call ours (context's `Document` is the copy).
`initialize` picks the position encoding itself (UTF-8 when offered) and drops the
`completionProvider` fallback for clients that have inline completion.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Callable
from typing import Any

import cattrs
from lsprotocol import types as lsp
from pygls.protocol import (
    JsonRPCNotification,
    JsonRPCRequestMessage,
    JsonRPCResponseMessage,
    LanguageServerProtocol,
    default_converter,
    lsp_method,
)

from codegeex_lsp.protocol import ACCEPTED, DISMISSED, STATUS
from codegeex_lsp.server.convert import choose_encoding, supports_inline_completion

log = logging.getLogger(__name__)

NOTIFICATIONS = frozenset(
    {m for m, (_t, result, _p, _o) in lsp.METHOD_TO_TYPES.items() if result is None} | {ACCEPTED, DISMISSED}
)
REQUESTS = frozenset(
    {m for m, (_t, result, _p, _o) in lsp.METHOD_TO_TYPES.items() if result is not None} | {STATUS}
)


def _strict(kind: type) -> Callable[[Any, type], Any]:
    def structure(value: Any, target: type) -> Any:
        # bool is an int subclass and an int is a valid JSON float; nothing else converts.
        if not (type(value) is kind or (kind is float and type(value) is int)):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        # The hook is found by class, so it also gets int and str enums: those must be members.
        return target(value) if issubclass(target, enum.Enum) else value

    return structure


def strict_converter() -> cattrs.Converter:
    """pygls' converter without cattrs' coercions: `"3"` is not a line number, `5` is not a URI."""
    converter = default_converter()
    for kind in (int, str, bool, float):
        converter.register_structure_hook(kind, _strict(kind))
    return converter


def _valid_id(value: Any) -> bool:
    return isinstance(value, int | str) and not isinstance(value, bool)


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

    def receive_body(self, body: bytes) -> None:
        """Parse one framed body and handle it; nothing in it can raise out of here."""
        try:
            data = json.loads(body.decode("utf-8"))
        except RecursionError:
            self.answer_frame_error("Parse error: JSON nested too deeply")
            return
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, over-long integers
            self.answer_frame_error(f"Parse error: {str(exc)[:200]}")
            return
        try:
            self.receive(data)
        except Exception as exc:  # a bug of ours: answer the request, keep serving
            log.exception("message not handled: %s", exc)
            msg_id = data.get("id") if isinstance(data, dict) else None
            if isinstance(data, dict) and "method" in data and _valid_id(msg_id):
                self._send_raw_error(msg_id, lsp.ErrorCodes.InternalError, f"internal error: {type(exc).__name__}")

    def receive(self, data: Any) -> None:
        """Check the JSON-RPC envelope, then structure and dispatch the message."""
        if not isinstance(data, dict):
            self._reject(None, lsp.ErrorCodes.InvalidRequest, "a message must be a JSON object (no batches)")
            return
        msg_id = data.get("id") if _valid_id(data.get("id")) else None
        if data.get("jsonrpc") != self.VERSION:
            self._reject(msg_id, lsp.ErrorCodes.InvalidRequest, 'Invalid Request: "jsonrpc" must be "2.0"')
            return
        if "method" not in data:
            if msg_id is not None and ("result" in data) != ("error" in data):
                self._dispatch(data)  # a response to one of our requests
            else:
                self._reject(msg_id, lsp.ErrorCodes.InvalidRequest, "neither a request nor a response")
            return
        method = data["method"]
        if not isinstance(method, str):
            self._reject(msg_id, lsp.ErrorCodes.InvalidRequest, "Invalid Request: method must be a string")
            return
        if "id" in data:
            self._receive_request(data, msg_id, method)
        else:
            self._receive_notification(data, method)

    def _receive_request(self, data: dict[str, Any], msg_id: int | str | None, method: str) -> None:
        if msg_id is None:
            self._reject(None, lsp.ErrorCodes.InvalidRequest, "Invalid Request: id must be an integer or a string")
            return
        if self._shutdown:
            self._reject(msg_id, lsp.ErrorCodes.InvalidRequest, f"{method}: the server is shut down")
            return
        if method in NOTIFICATIONS:
            self._reject(msg_id, lsp.ErrorCodes.InvalidRequest, f"{method} is a notification: it takes no id")
            return
        params = data.get("params")
        structured = params is None or isinstance(params, dict | list)
        if not structured or (method == STATUS and not isinstance(params, dict | None)):
            self._reject(msg_id, lsp.ErrorCodes.InvalidParams, f"invalid params for {method!r}")
            return
        self._dispatch({**data, "params": params})  # params may be omitted (JSON-RPC): as null

    def _receive_notification(self, data: dict[str, Any], method: str) -> None:
        if self._shutdown and method != lsp.EXIT:
            log.warning("notification %r after shutdown: ignored", method)
            return
        if method in REQUESTS:
            log.warning("request %r sent without an id: ignored (nothing to answer)", method)
            return
        params = data.get("params")
        ours = method in (ACCEPTED, DISMISSED) and not (
            params is None or (isinstance(params, dict) and isinstance(params.get("uri", ""), str))
        )
        # lsprotocol's structuring lets any id through, and pygls looks it up in a dict.
        cancel = method == lsp.CANCEL_REQUEST and not (isinstance(params, dict) and _valid_id(params.get("id")))
        if ours or cancel:
            log.warning("notification %r: params do not validate; ignored", method)
            return
        self._dispatch(data)

    def _dispatch(self, data: dict[str, Any]) -> None:
        self.handle_message(self.structure_message(data))

    def _reject(self, msg_id: int | str | None, code: int, message: str) -> None:
        log.warning("message %r rejected: %s", msg_id, message)
        self._send_raw_error(msg_id, code, message)

    def answer_frame_error(self, message: str) -> None:
        """ParseError (id null) for bytes that were no message; the reader has moved past them."""
        log.warning("unparsable message: %s", message)
        self._send_raw_error(None, lsp.ErrorCodes.ParseError, message[:300])

    def _message_type(self, data: dict[str, Any]) -> type:
        """What pygls' `structure_message` would structure `data` as."""
        if "id" not in data:
            return self.get_message_type(data.get("method", "")) or JsonRPCNotification
        if "error" in data:
            return lsp.ResponseErrorMessage
        if "method" in data:
            return self.get_message_type(data["method"]) or JsonRPCRequestMessage
        return self._result_types.pop(data["id"], None) or JsonRPCResponseMessage

    def structure_message(self, data: dict[str, Any]):
        # pygls' own logs a traceback per invalid message: a hostile client would flood the log.
        try:
            return self._converter.structure(data, self._message_type(data))
        except Exception as exc:
            reason = " ".join(str(exc).split())[:200]
            msg_id, method = data.get("id"), data.get("method")
            if "method" not in data:
                log.warning("response %r does not validate (%s): dropped", msg_id, reason)
            elif _valid_id(msg_id):
                self._send_response(
                    msg_id, error=_error(lsp.ErrorCodes.InvalidParams, f"invalid params for {method!r}")
                )
                log.warning("request %r (%r): params do not validate (%s); answered InvalidParams",
                            msg_id, method, reason)
            else:
                log.warning("notification %r: params do not validate (%s); ignored", method, reason)
            return _REJECTED

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
