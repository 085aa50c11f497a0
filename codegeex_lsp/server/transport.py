"""stdio and TCP transports that read through `FrameReader` instead of pygls' reader.

pygls' `run_async` loop is replaced only on the reading side: the protocol, its writer and its
handlers are pygls' own. Each frame goes to `CodegeexProtocol.receive_body`, which parses and
validates it; a framing error is answered with ParseError (-32700, id null).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, BinaryIO

from pygls.io_ import StdoutWriter

from codegeex_lsp.server.framing import CHUNK_BYTES, FrameError, FrameReader

if TYPE_CHECKING:
    from codegeex_lsp.server.rpc import CodegeexProtocol

log = logging.getLogger(__name__)


async def pump(frames: FrameReader, protocol: CodegeexProtocol, stop: threading.Event) -> None:
    """Hand every frame to the protocol until end of stream (or `stop`)."""
    while not stop.is_set():
        frame = await frames.next_frame()
        if frame is None:
            break
        if isinstance(frame, FrameError):
            protocol.answer_frame_error(frame.message)
            continue
        protocol.receive_body(frame)
    log.info("end of the client's stream")


def _stdin_chunks(stdin: BinaryIO, executor: ThreadPoolExecutor):
    """A coroutine function giving stdin's next available bytes (read in a thread: stdin blocks)."""
    read1 = getattr(stdin, "read1", stdin.read)

    def read() -> asyncio.Future[bytes]:
        return asyncio.get_running_loop().run_in_executor(executor, read1, CHUNK_BYTES)

    return read


def run_stdio(
    protocol: CodegeexProtocol,
    stop: threading.Event,
    max_body_bytes: int,
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
) -> None:
    """Serve one client on stdin/stdout until its stream ends."""
    protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
    executor = ThreadPoolExecutor(1, thread_name_prefix="stdin")
    frames = FrameReader(_stdin_chunks(stdin or sys.stdin.buffer, executor), max_body_bytes)
    try:
        asyncio.run(pump(frames, protocol, stop))
    except BrokenPipeError:
        log.error("the client's pipe is closed: shutting down")
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        executor.shutdown(wait=False)


def run_tcp(protocol: CodegeexProtocol, stop: threading.Event, max_body_bytes: int, host: str, port: int) -> None:
    """Serve clients on TCP (for debugging); each connection reads through its own FrameReader."""

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        protocol.set_writer(writer)  # type: ignore[arg-type]
        await pump(FrameReader(lambda: reader.read(CHUNK_BYTES), max_body_bytes), protocol, stop)

    async def main() -> None:
        server = await asyncio.start_server(connection, host, port)
        log.info("serving on %s", ", ".join(str(s.getsockname()) for s in server.sockets))
        async with server:
            await server.serve_forever()

    with contextlib.suppress(asyncio.CancelledError, KeyboardInterrupt):
        asyncio.run(main())
