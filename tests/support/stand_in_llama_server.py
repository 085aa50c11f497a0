"""A stand-in `llama-server` for bench tests: a real process on a real port speaking /health and
/infill, so the benches' process handling and HTTP are exercised without a model.

It records its argv in `<log>.argv` and every request body as a line of `<log>`
(`STAND_IN_LOG`), and answers `STAND_IN_ANSWER` (default "x") with llama-server's timing fields.
A streamed `/completion` is answered as server-sent events, one per id of `STAND_IN_TOKENS`
(comma-separated) with `tokens: [id]`, then a last event with `stop: true` and no tokens, as
llama-server's own. With `STAND_IN_DROP` = N, the first N of them drop the connection unanswered.
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path

SCRIPT = f"""#!{sys.executable}
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

port = int(sys.argv[sys.argv.index("--port") + 1])
log = os.environ["STAND_IN_LOG"]
with open(log + ".argv", "w") as f:
    json.dump(sys.argv[1:], f)

dropped = 0

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._send(200 if self.path == "/health" else 404, {{"status": "ok"}})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with open(log, "a") as f:
            f.write(json.dumps(body) + "\\n")
        if self.path == "/completion" and body.get("stream"):
            global dropped
            if dropped < int(os.environ.get("STAND_IN_DROP", "0")):
                dropped += 1
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            ids = [int(t) for t in os.environ.get("STAND_IN_TOKENS", "").split(",") if t]
            try:
                events = [{{"content": "?", "tokens": [t], "stop": False}} for t in ids]
                for event in events + [{{"content": "", "stop": True, "stop_type": "limit"}}]:
                    self.wfile.write(b"data: " + json.dumps(event).encode() + b"\\n\\n")
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        timings = {{"prompt_ms": 5.0, "predicted_ms": 9.0, "prompt_n": 4, "predicted_n": 3}}
        self._send(200, {{
            "content": os.environ.get("STAND_IN_ANSWER", "x"), "timings": timings,
            "tokens_predicted": 3, "tokens_evaluated": 9, "stop_type": "eos",
        }})

HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def write_stand_in(path: Path) -> Path:
    """An executable stand-in llama-server at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SCRIPT)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path
