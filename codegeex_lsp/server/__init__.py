"""The language server: pygls app, thin handlers, lsprotocol <-> internal conversion.

`app` registers the handlers and runs the process; `rpc` hardens pygls' JSON-RPC layer; `options`
is the client-facing settings tree; `documents` keeps the open documents (context's `Document`);
`completion` runs one request (snapshot, typed-through, cache, debounce, decode); `scheduler`
owns cancel flags, supersession, debounce and the worker threads; `cache` the LRU and
typed-through; `loader` the background model load; `backends` where completions come from (the
model worker, in-process, or a remote OpenAI-compatible server); `worker_client` the connection to
the model worker process; `status` the codegeex/status report; `logs` request-id logging to stderr
and window/logMessage. Nothing here imports torch at import time (only `--in-process` does, later).
"""
