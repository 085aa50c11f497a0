"""An OpenAI-compatible `/v1/completions` server as the model: vLLM, TGI, Ollama, llama.cpp.

FIM two ways (`fim`):

- `prompt`: our prompt format builds the raw FIM prompt text (remote/prompt.py); the server
  completes it as plain text. Works with any server; needs `--format` for the served model.
- `suffix`: the server builds the FIM prompt from `prompt` (the prefix) and `suffix` (vLLM for
  some models, Ollama, llama-cpp-python for GGUFs with FIM tokens).

The client only generates (`complete.Generator`): raw text under the one stop spec
(`postprocess.early_stop.stop_spec`); the orchestrator heals and post-processes it.

Transport: httpx. Every request streams (`"stream": true`, server-sent events). Cancelling closes
the stream: the request's `on_cancel` callback shuts the connection's socket down at once, even
while waiting for the first byte, and the server stops generating when its next write fails. Local stops (one
line in LINE mode, a closed scope) close it the same way. Connection errors, timeouts, 429 and 5xx
are retried with exponential backoff before the first token; 4xx are not. The API key comes from
an environment variable and is only ever sent as the Authorization header. HTTPS uses the system
CAs or `ca_bundle`; a proxy is taken from `proxy` or the usual environment variables
(`https_proxy`, `no_proxy`; loopback hosts never go through one).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from codegeex_lsp import __version__
from codegeex_lsp.cancel import Cancellation
from codegeex_lsp.config import CompletionOptions
from codegeex_lsp.errors import CodegeexError, RemoteError
from codegeex_lsp.postprocess.early_stop import StopSpec, stop_spec
from codegeex_lsp.prompt import FimRequest, get_format
from codegeex_lsp.prompt.budget import CHARS_PER_TOKEN, budget_for
from codegeex_lsp.prompt.healing import split_trailing_whitespace
from codegeex_lsp.protocol import Completion
from codegeex_lsp.remote.prompt import build_text_prompt, split_for_suffix_api

log = logging.getLogger(__name__)

DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_STOP_STRINGS = 4  # OpenAI's limit; the rest are applied here
_MAX_BACKOFF_S = 10.0

OnToken = Callable[[int, int, str], None]


@dataclass(frozen=True)
class OpenAIOptions:
    """How to reach the server. Command line only: nothing here comes from a client setting."""

    base_url: str  # e.g. http://team-gpu:8000/v1
    model: str | None = None  # the served model's name (vLLM checks it; llama.cpp ignores it)
    fim: str = "auto"  # auto (prompt when a format is given, else suffix) | prompt | suffix
    format: str | None = None  # our prompt format, for fim=prompt
    api_key_env: str | None = None  # None: $OPENAI_API_KEY when set
    timeout_s: float = 30.0  # connect, and the longest wait for the next bytes
    retries: int = 2
    backoff_s: float = 0.5
    ca_bundle: str | None = None
    proxy: str | None = None  # http://[user:pass@]host:port; None: from the environment
    n_context: int = 4096
    chars_per_token: float = CHARS_PER_TOKEN


class _Cutter:
    """The socket of one request's connection, so another thread can cut it short.

    httpx has no way to abort a blocked read from another thread; httpcore's trace events hand
    over each network stream it opens (TCP, then TLS, through a proxy too), and shutting its socket
    down makes the blocked read return at once. Connections are not pooled, so every request opens
    its own and is traced from the start: a cut works while waiting for the response headers too.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self.cut = False

    def trace(self, event: str, info: dict[str, Any]) -> None:
        stream = info.get("return_value")
        if event.endswith(".complete") and hasattr(stream, "get_extra_info"):
            sock = stream.get_extra_info("socket")
            if sock is not None:
                with self._lock:
                    self._sock = sock
                    cut = self.cut
                if cut:
                    self._shutdown(sock)

    def interrupt(self) -> None:
        """From any thread."""
        with self._lock:
            self.cut = True
            sock = self._sock
        if sock is not None:
            self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        with contextlib.suppress(OSError, ValueError):
            sock.shutdown(socket.SHUT_RDWR)


class OpenAIClient:
    def __init__(self, options: OpenAIOptions) -> None:
        url = urlsplit(options.base_url.rstrip("/"))
        if url.scheme not in ("http", "https") or not url.hostname:
            raise CodegeexError(f"--base-url wants http(s)://host[:port]/v1, not {options.base_url!r}")
        fim = options.fim if options.fim != "auto" else ("prompt" if options.format else "suffix")
        if fim not in ("prompt", "suffix"):
            raise CodegeexError(f"--fim is auto, prompt or suffix, not {options.fim!r}")
        if fim == "prompt" and not options.format:
            raise CodegeexError("--fim prompt needs --format (the served model's prompt format)")
        self.options = replace(options, fim=fim)
        self.format = get_format(options.format) if fim == "prompt" and options.format else None
        self.format_name = self.format.name if self.format is not None else "server-fim"
        self.model_name = options.model or "default"
        self._base = options.base_url.rstrip("/")
        api_key = _api_key(options.api_key_env)
        self._proxy = _proxy_for(url.scheme, url.hostname, options.proxy)
        headers = {"User-Agent": f"codegeex-lsp/{__version__}"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        # The proxy is decided here (`_proxy_for`: loopback never goes through one), so httpx does
        # not read the environment; the CA bundle (or the system's CAs) is an SSLContext.
        self._http = httpx.Client(
            base_url=self._base,
            headers=headers,
            timeout=httpx.Timeout(options.timeout_s),
            verify=_ssl_context(options.ca_bundle) if url.scheme == "https" else True,
            proxy=self._proxy,
            trust_env=False,
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self._lock = threading.Lock()
        self._cutters: set[_Cutter] = set()
        self.requests = 0
        self.failures = 0
        self.last_error: str | None = None
        self._last_ok: float | None = None

    # -- public ----------------------------------------------------------------------------------

    def generate(
        self,
        request: FimRequest,
        options: CompletionOptions,
        *,
        cancel: Cancellation | None = None,
        on_token: OnToken | None = None,
        cache_key: object = None,
    ) -> Completion:
        """One raw completion (`complete.Generator`; the caller post-processes). RemoteError when
        the server fails."""
        cancel = cancel or Cancellation()
        started = time.perf_counter()
        prefix, _trailing = split_trailing_whitespace(request.prefix)
        trimmed = replace(request, prefix=prefix)
        budget = budget_for(options)
        body: dict[str, Any] = {
            "model": self.model_name,
            "max_tokens": options.max_tokens,
            "temperature": options.temperature,
            "top_p": options.top_p,
            "n": 1,
            "stream": True,
        }
        if options.seed is not None:
            body["seed"] = options.seed
        if self.format is not None:
            body["prompt"], stops = build_text_prompt(
                self.format, trimmed, budget, self.options.chars_per_token
            )
        else:
            body["prompt"], body["suffix"] = split_for_suffix_api(
                trimmed, budget, self.options.chars_per_token
            )
            stops = ()
        spec = stop_spec(request, stops)
        body["stop"] = list(spec.strings[:MAX_STOP_STRINGS])
        try:
            text, finish, n_chunks, usage, served_by, first_s = self._generate(
                body, spec, cancel, on_token
            )
        except RemoteError as exc:
            self._failed(str(exc))
            raise
        self._ok()
        total_s = time.perf_counter() - started
        return Completion(
            completion="",
            candidates=(),
            raw=(text,),
            model=served_by or self.model_name,
            format=self.format_name,
            mode=request.mode,
            prompt_tokens=int(usage.get("prompt_tokens", 0) or 0),
            generated_tokens=int(usage.get("completion_tokens", 0) or n_chunks),
            finish_reason=finish,
            timings={"first_token_s": first_s, "total_s": total_s},
        )

    def probe(self, progress: Callable[[str], None] = lambda _m: None) -> None:
        """GET /models once: a rejected API key fails (a configuration error); an unreachable server
        only warns, since requests retry and it may come up later."""
        try:
            response = self._http.get("/models", timeout=min(5.0, self.options.timeout_s))
        except httpx.HTTPError as exc:
            message = f"{self._base} is not reachable now ({_describe(exc)}); requests will retry"
            log.warning("%s", message)
            progress(message)
            self.last_error = message
            return
        status, payload = response.status_code, response.content[:65536]
        if status in (401, 403):
            raise RemoteError(f"{self._base} rejected the API key (HTTP {status}): {_error_text(payload)}")
        served = _model_ids(payload) if status == 200 else []
        if self.options.model is None and len(served) == 1:
            self.model_name = served[0]  # the one model it serves (vLLM wants its exact name)
        progress(f"{self._base} reachable" + (f", serving {', '.join(served[:3])}" if served else ""))

    def describe(self) -> dict[str, Any]:
        return {
            "baseUrl": self._base,
            "fim": self.options.fim,
            "model": self.model_name,
            "requests": self.requests,
            "failures": self.failures,
            "lastError": self.last_error,
            "proxy": _without_credentials(self._proxy) if self._proxy else None,
        }

    def close(self) -> None:
        with self._lock:
            cutters = list(self._cutters)
        for cutter in cutters:
            cutter.interrupt()

    # -- one request -----------------------------------------------------------------------------

    def _generate(
        self,
        body: dict[str, Any],
        spec: StopSpec,
        cancel: Cancellation,
        on_token: OnToken | None,
    ) -> tuple[str, str, int, dict[str, Any], str | None, float]:
        started = time.perf_counter()
        cutter = _Cutter()
        with self._lock:
            self._cutters.add(cutter)
        forget = cancel.on_cancel(cutter.interrupt)
        text, finish, n_chunks = "", "length", 0
        usage: dict[str, Any] = {}
        served_by: str | None = None
        first_s = 0.0
        try:
            response = self._open_stream(body, cancel, cutter)
            if response is None:
                return "", "cancelled", 0, {}, None, 0.0
            try:
                for event in _events(response.iter_lines()):
                    if "error" in event:
                        raise RemoteError(f"{self._base} failed the completion: {_error_text(event)}")
                    served_by = event.get("model", served_by)
                    usage = event.get("usage") or usage
                    choices = event.get("choices") or []
                    if not choices:
                        continue
                    choice = choices[0]
                    delta = choice.get("text") or ""
                    if delta:
                        if not n_chunks:
                            first_s = time.perf_counter() - started
                        n_chunks += 1
                        text += delta
                        cut = spec.cut(text)
                        if cut is not None:
                            text, finish = text[:cut], "stop"
                        elif "\n" in delta and spec.check is not None and spec.check(text):
                            finish = "stop"
                        if on_token is not None:
                            on_token(0, -1, text)
                        if finish == "stop":
                            break  # the rest would be cut anyway: close the stream, the server stops
                    if choice.get("finish_reason"):
                        finish = "length" if choice["finish_reason"] == "length" else "stop"
            except (httpx.HTTPError, OSError, ValueError, AttributeError) as exc:
                if not cutter.cut:
                    raise RemoteError(f"{self._base}: the stream broke off ({_describe(exc)})") from exc
            finally:
                cutter.interrupt()  # closing a stream read halfway must not wait for the rest
                response.close()
        finally:
            forget()
            with self._lock:
                self._cutters.discard(cutter)
        if cancel.is_cancelled():
            finish = "cancelled"
        return text, finish, n_chunks, usage, served_by, first_s

    def _open_stream(
        self, body: dict[str, Any], cancel: Cancellation, cutter: _Cutter
    ) -> httpx.Response | None:
        """POST the request, retrying what may pass; None if cancelled meanwhile."""
        attempts = self.options.retries + 1
        last = "no attempt"
        for attempt in range(attempts):
            if cancel.is_cancelled():
                return None
            self.requests += 1
            retry_after_s = 0.0
            request = self._http.build_request(
                "POST",
                "/completions",
                json=body,
                headers={"Accept": "text/event-stream"},
                extensions={"trace": cutter.trace},
            )
            try:
                response = self._http.send(request, stream=True)
            except httpx.HTTPError as exc:
                if cancel.is_cancelled():
                    return None
                last = _describe(exc)
            else:
                if response.status_code == 200:
                    return response
                try:
                    detail = _error_text(response.read()[:4096])
                finally:
                    response.close()
                last = f"HTTP {response.status_code}: {detail}"
                if response.status_code not in RETRY_STATUSES:
                    raise RemoteError(f"{self._base} refused the completion ({last})")
                retry_after_s = _retry_after_s(response.headers.get("Retry-After"))
            if attempt + 1 < attempts:
                wait_s = max(retry_after_s, self.options.backoff_s * 2**attempt)
                log.info("%s: %s; retrying in %.1f s", self._base, last, min(wait_s, _MAX_BACKOFF_S))
                if cancel.wait(min(wait_s, _MAX_BACKOFF_S)):
                    return None
        raise RemoteError(f"cannot get a completion from {self._base}: {last} (tried {attempts} times)")

    def _failed(self, message: str) -> None:
        self.failures += 1
        self.last_error = message

    def _ok(self) -> None:
        self.last_error = None
        self._last_ok = time.monotonic()


def _events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """The JSON objects of a server-sent-events stream, until `[DONE]` or its end."""
    data: list[str] = []
    for line in lines:
        if line.startswith("data:"):
            data.append(line[5:].lstrip())
            continue
        if line or not data:
            continue  # comments (":"), event names, blank keep-alives
        payload, data = "\n".join(data), []
        if payload.strip() == "[DONE]":
            return
        yield json.loads(payload)
    if data and (payload := "\n".join(data)).strip() != "[DONE]":
        yield json.loads(payload)


def _api_key(env_name: str | None) -> str | None:
    if env_name:
        key = os.environ.get(env_name)
        if not key:
            raise CodegeexError(f"environment variable {env_name} (the API key, --api-key-env) is not set")
        return key
    return os.environ.get(DEFAULT_API_KEY_ENV) or None


def _ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        raise CodegeexError(f"cannot use the CA bundle {ca_bundle!r}: {exc}") from exc


def _proxy_for(scheme: str, host: str, explicit: str | None) -> str | None:
    """The proxy URL (credentials kept, httpx sends them) or None: the explicit proxy, else the
    environment's, never for loopback."""
    if _is_loopback(host) and not explicit:
        return None
    proxy = explicit
    if proxy is None:
        if urllib.request.proxy_bypass(host):
            return None
        proxy = urllib.request.getproxies().get(scheme)
    if not proxy:
        return None
    if "://" not in proxy:
        proxy = "http://" + proxy
    parsed = urlsplit(proxy)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise CodegeexError(f"proxy {proxy!r}: only http(s)://[user:pass@]host:port proxies are supported")
    return proxy


def _without_credentials(url: str) -> str:
    parsed = urlsplit(url)
    netloc = (parsed.hostname or "") + (f":{parsed.port}" if parsed.port else "")
    return urlunsplit((parsed.scheme, netloc, "", "", ""))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _retry_after_s(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0


def _describe(exc: BaseException) -> str:
    """A short reason for logs and the user: the cause under httpx's and httpcore's wrappers."""
    chain: list[BaseException] = []
    err: BaseException | None = exc
    while err is not None and len(chain) < 8:
        chain.append(err)
        err = err.__cause__ or err.__context__
    for err in chain:
        if isinstance(err, ssl.SSLError):
            return f"TLS error: {err.reason or err}"
    for err in chain:
        if isinstance(err, ConnectionRefusedError) or "connection refused" in str(err).lower():
            return "connection refused"
        if isinstance(err, httpx.TimeoutException | TimeoutError | socket.timeout):
            return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _error_text(payload: bytes | dict[str, Any]) -> str:
    try:
        data = json.loads(payload) if isinstance(payload, bytes) else payload
    except ValueError:
        return payload.decode("utf-8", errors="replace")[:300].strip() if isinstance(payload, bytes) else ""
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            return str(error.get("message") or error)[:300]
        return str(error)[:300]
    return str(data)[:300]


def _model_ids(payload: bytes) -> list[str]:
    try:
        return [str(m.get("id")) for m in json.loads(payload).get("data", []) if isinstance(m, dict)]
    except (ValueError, AttributeError):
        return []
