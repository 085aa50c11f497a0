"""Socket relays in front of a real server, for the remote backend's network tests: a listener,
a TLS terminator's parts, an HTTP proxy (CONNECT and absolute form) and a private CA."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
from pathlib import Path


def pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def relay(a: socket.socket, b: socket.socket) -> None:
    threading.Thread(target=pump, args=(a, b), daemon=True).start()
    threading.Thread(target=pump, args=(b, a), daemon=True).start()


class Listener:
    """Accepts on 127.0.0.1:<free port> and hands each connection to `handle` on a thread."""

    def __init__(self, handle) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._handle = handle
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def close(self) -> None:
        self.sock.close()


def make_certs(d: Path) -> Path:
    """A private CA and a certificate for 127.0.0.1 signed by it (openssl), in `d`."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=codegeex test CA")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")  # fmt: skip
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")  # fmt: skip
    return d


class Proxy:
    """An HTTP proxy: CONNECT tunnels, and absolute-form requests forwarded in origin form."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []  # (request line, Proxy-Authorization)
        self.listener = Listener(self._handle)
        self.url = f"http://127.0.0.1:{self.listener.port}"

    def _handle(self, conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(65536)
            if not chunk:
                conn.close()
                return
            head += chunk
        head, _, rest = head.partition(b"\r\n\r\n")
        line, *headers = head.decode("latin-1").split("\r\n")
        auth = next(
            (h.split(":", 1)[1].strip() for h in headers if h.lower().startswith("proxy-authorization:")),
            None,
        )
        self.seen.append((line, auth))
        method, target, version = line.split(" ")
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream = socket.create_connection((host, int(port)))
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            # http://host:port/path -> /path, to host:port
            hostport, _, path = target.removeprefix("http://").partition("/")
            host, _, port = hostport.rpartition(":")
            upstream = socket.create_connection((host, int(port)))
            kept = [h for h in headers if not h.lower().startswith("proxy-authorization:")]
            upstream.sendall(
                ("\r\n".join([f"{method} /{path} {version}", *kept]) + "\r\n\r\n").encode("latin-1") + rest
            )
        relay(conn, upstream)

    def close(self) -> None:
        self.listener.close()
