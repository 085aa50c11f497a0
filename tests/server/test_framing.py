"""FrameReader on scripted chunk streams: header spellings, bad lengths, resync, and the body cap."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from codegeex_lsp.server.framing import CHUNK_BYTES, FrameError, FrameReader

MSG = b'{"jsonrpc": "2.0", "method": "initialized", "params": {}}'


def _frame(body: bytes = MSG, header: bytes | None = None) -> bytes:
    return (header if header is not None else b"Content-Length: %d\r\n\r\n" % len(body)) + body


def _reader(chunks: Iterable[bytes], max_body_bytes: int = 1 << 20) -> FrameReader:
    it = iter(chunks)

    async def read() -> bytes:
        return next(it, b"")

    return FrameReader(read, max_body_bytes)


def _frames(data: bytes | list[bytes], max_body_bytes: int = 1 << 20, chunk: int = 7) -> list[object]:
    chunks = data if isinstance(data, list) else [data[i : i + chunk] for i in range(0, len(data), chunk)]
    reader = _reader(chunks, max_body_bytes)

    async def collect() -> list[object]:
        out = []
        while (frame := await reader.next_frame()) is not None:
            out.append(frame if isinstance(frame, bytes) else "error")
        return out

    return asyncio.run(collect())


def test_header_spellings_are_accepted():
    for header in (
        b"content-length: %d\r\n\r\n",
        b"CONTENT-LENGTH:%d\n\n",
        b"Content-Length: \t%d \r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n",
        b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n",
    ):
        values = (len(MSG),) * header.count(b"%d")
        assert _frames(_frame(header=header % values) + _frame()) == [MSG, MSG], header


def test_bad_lengths_are_errors_and_the_next_message_is_read():
    for value in (b"abc", b"-5", b"0", b"+5", b"5.0", b"0x10", b"", b"9" * 5000):
        data = _frame(header=b"Content-Length: " + value + b"\r\n\r\n") + _frame()
        assert _frames(data) == ["error", MSG], value
    missing = b"Content-Type: x\r\n\r\n" + MSG + _frame()
    assert _frames(missing) == ["error", MSG]
    conflicting = b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n" + MSG + _frame()
    assert _frames(conflicting) == ["error", MSG]


def test_too_short_and_too_long_bodies_resync():
    short = _frame(header=b"Content-Length: %d\r\n\r\n" % (len(MSG) - 3)) + _frame()
    assert _frames(short) == [MSG[:-3], MSG]  # the cut body is handed on: it fails to parse there
    long = _frame(header=b"Content-Length: %d\r\n\r\n" % (len(MSG) + 40)) + _frame()
    for chunk in (1, 7, 4096):
        assert _frames(long, chunk=chunk) == ["error", MSG], chunk


def test_junk_before_a_header_is_dropped():
    data = b"junk line\r\n\x00\xffmore junk" + _frame() + b"\r\n\r\n" + _frame()
    reader_frames = _frames(data)
    assert reader_frames == [MSG, MSG]


def test_over_cap_body_is_skipped_in_bounded_memory():
    n = 200 * CHUNK_BYTES  # 12.5 MiB announced and sent, with a 4 KiB cap
    chunks = [b"Content-Length: %d\r\n\r\n" % n, *([b"x" * CHUNK_BYTES] * 200), _frame()]
    reader = _reader(chunks, max_body_bytes=4096)
    peak = 0
    original = reader._fill

    async def fill() -> bool:
        nonlocal peak
        peak = max(peak, len(reader._buf))
        return await original()

    reader._fill = fill  # type: ignore[method-assign]

    async def two() -> tuple[object, object]:
        return await reader.next_frame(), await reader.next_frame()

    first, second = asyncio.run(two())
    assert isinstance(first, FrameError) and "exceeds" in first.message
    assert second == MSG
    assert peak <= 2 * CHUNK_BYTES


def test_huge_lengths_without_the_body_do_not_block():
    for value in (b"4294967296", b"34359738368"):
        data = b"Content-Length: " + value + b"\r\n\r\n" + MSG + _frame()
        assert _frames(data, max_body_bytes=64 << 20) == ["error", MSG], value


def test_overlong_header_line_is_bounded():
    data = b"x" * (3 * CHUNK_BYTES) + _frame()
    assert _frames(data, chunk=CHUNK_BYTES) == [MSG]
