"""LSP base-protocol framing that no byte stream can wedge: headers, bodies, caps and resync.

pygls' reader only accepts `Content-Length: N\\r\\n` spelled exactly so and ignores everything
else: one malformed header leaves the server deaf, and a huge `Content-Length` is read (allocated)
whole. `FrameReader` replaces it for stdio and TCP:

- header names are case-insensitive (the spec follows HTTP) and `\\n` alone ends a line as well as
  `\\r\\n`; unknown or malformed header lines are ignored;
- a header block whose `Content-Length` is missing, not a decimal number, 0 or given twice with
  different values yields a `FrameError` (answered with ParseError -32700 by the caller);
- a `Content-Length` above `max_body_bytes` yields a `FrameError` and its body is discarded in
  chunks as it arrives, never buffered;
- resync: a valid JSON body can never contain `Content-Length: <digits>` followed by a raw line
  break (raw line breaks are invalid inside JSON strings, and the bare word is invalid outside
  them). So wherever that pattern shows up where a body or junk is expected, a new message starts
  there: a body announced too long ends at it (its error is reported and the next message is read),
  and junk before it is dropped.

Chunks come from any `read_chunk` coroutine (stdin through a thread, an asyncio StreamReader);
memory is bounded by the body cap plus a chunk.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
CHUNK_BYTES = 64 * 1024
MAX_HEADER_LINE_BYTES = 8 * 1024
_MAX_DIGITS = 20  # longer Content-Length values are above any cap: no big-int parsing

# Where a new message starts: a Content-Length header line, complete with its line break.
_NEXT_HEADER = re.compile(rb"content-length[ \t]*:[ \t]*\d{1,64}[ \t]*\r?\n", re.IGNORECASE)
# A Content-Length header name glued to junk on one line (the line is complete already).
_HEADER_NAME = re.compile(rb"content-length[ \t]*:", re.IGNORECASE)
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_RESCAN_BYTES = 128  # a header split across two chunks is found again from this far back

ReadChunk = Callable[[], Awaitable[bytes]]


@dataclass(frozen=True)
class FrameError:
    """A message that could not be framed; the stream has already moved past it."""

    message: str


class FrameReader:
    """Frames LSP messages from a byte stream; `next_frame` gives a body, a `FrameError` or None at EOF."""

    def __init__(self, read_chunk: ReadChunk, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self._read_chunk = read_chunk
        self.max_body_bytes = max_body_bytes
        self._buf = bytearray()
        self._eof = False
        self.dropped_bytes = 0  # junk skipped while resyncing (for logs and tests)

    async def _fill(self) -> bool:
        """Append the next chunk; False at end of stream."""
        if self._eof:
            return False
        chunk = await self._read_chunk()
        if not chunk:
            self._eof = True
            return False
        self._buf += chunk
        return True

    def _drop(self, n: int) -> None:
        self.dropped_bytes += n
        del self._buf[:n]

    async def _line(self) -> bytes | None:
        """The next line without its terminator; None at EOF. Overlong lines are cut (junk)."""
        while True:
            end = self._buf.find(b"\n")
            if end >= 0:
                line = bytes(self._buf[:end])
                del self._buf[: end + 1]
                return line[:-1] if line.endswith(b"\r") else line
            if len(self._buf) > MAX_HEADER_LINE_BYTES:
                match = _HEADER_NAME.search(self._buf, 1)
                keep = match.start() if match else len(self._buf) - _RESCAN_BYTES
                self._drop(keep)
            if not await self._fill():
                return None

    async def next_frame(self) -> bytes | FrameError | None:
        """The next message body, or the error for a message that could not be framed."""
        lengths: list[bytes] = []
        seen_header = False
        while True:
            line = await self._line()
            if line is None:
                return None
            glued = _HEADER_NAME.search(line, 1)
            if glued is not None:  # junk (e.g. the tail of a bad body) then a new message
                self.dropped_bytes += glued.start()
                line, lengths, seen_header = line[glued.start() :], [], False
            if not line.strip():
                if seen_header:
                    break
                continue  # stray blank lines between messages
            seen_header = True
            name, colon, value = line.partition(b":")
            if colon and _TOKEN.fullmatch(name.strip()) and name.strip().lower() == b"content-length":
                lengths.append(value.strip())
        return await self._body(lengths)

    async def _body(self, lengths: list[bytes]) -> bytes | FrameError:
        if not lengths:
            return FrameError("missing Content-Length header")
        if len(set(lengths)) > 1:
            shown = ", ".join(v.decode("latin-1")[:24] for v in lengths)
            return FrameError(f"conflicting Content-Length headers ({shown})")
        value = lengths[0]
        if not value.isdigit() or not value.isascii():
            return FrameError(f"invalid Content-Length {value.decode('latin-1')[:24]!r}")
        n = int(value) if len(value) <= _MAX_DIGITS else self.max_body_bytes + 1
        if n == 0:
            return FrameError("Content-Length 0: empty body")
        if n > self.max_body_bytes:
            return await self._discard(n)
        return await self._read_body(n)

    async def _read_body(self, n: int) -> bytes | FrameError:
        scanned = 0
        while True:
            match = _NEXT_HEADER.search(self._buf, max(scanned - _RESCAN_BYTES, 0))
            if match is not None and match.start() < n:
                self._drop(match.start())
                return FrameError(
                    f"body shorter than its Content-Length {n}: a new message starts at byte {match.start()}"
                )
            if len(self._buf) >= n:
                body = bytes(self._buf[:n])
                del self._buf[:n]
                return body
            scanned = len(self._buf)
            if not await self._fill():
                return FrameError(f"end of stream inside a {n}-byte body")

    async def _discard(self, n: int) -> FrameError:
        """Skip an over-cap body as it arrives (or up to the next message, if one starts inside it)."""
        left = n
        too_large = f"Content-Length {n} exceeds the {self.max_body_bytes}-byte limit: body skipped"
        while left > 0:
            match = _NEXT_HEADER.search(self._buf)
            if match is not None and match.start() < left:
                self._drop(match.start())
                return FrameError(too_large)
            if len(self._buf) >= left:
                self._drop(left)
                return FrameError(too_large)
            keep = min(_RESCAN_BYTES, len(self._buf))
            take = len(self._buf) - keep
            self._drop(take)
            left -= take
            if not await self._fill():
                return FrameError(too_large)
        return FrameError(too_large)
