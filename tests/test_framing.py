"""Framing over a stream: limits before reading, and an idle timeout that is not a frame timeout.

A stand-in stream is enough here: these are properties of ``framing`` alone. It hands out its
bytes a few at a time on trio's clock (``MockClock`` with autojump, so nothing really waits).
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from app.node.framing import FrameError, encode_frame, read_frame


class TrickleStream:
    """Returns ``step`` bytes per read, each after ``delay`` seconds of trio time."""

    def __init__(self, data: bytes, step: int, delay: float) -> None:
        self.data, self.step, self.delay = data, step, delay

    async def read(self, n: int | None = None) -> bytes:
        await trio.sleep(self.delay)
        take = min(self.step, n if n is not None else self.step, len(self.data))
        piece, self.data = self.data[:take], self.data[take:]
        return piece


def run(fn: object) -> None:
    trio.run(fn, clock=trio.testing.MockClock(autojump_threshold=0))  # type: ignore[arg-type]


def test_a_slow_frame_that_keeps_moving_is_read_whole() -> None:
    payload = bytes(range(256)) * 64  # 16 KiB in 1 KiB steps, 1 s apart: 16 s in all

    async def main() -> None:
        stream = TrickleStream(encode_frame(payload), 1024, 1.0)
        started = trio.current_time()
        assert await read_frame(stream, len(payload), idle=5.0) == payload  # type: ignore[arg-type]
        assert trio.current_time() - started > 5.0

    run(main)


def test_a_stream_that_goes_quiet_times_out() -> None:
    async def main() -> None:
        stream = TrickleStream(encode_frame(b"x" * 100), 10, 6.0)
        with pytest.raises(trio.TooSlowError):
            await read_frame(stream, 100, idle=5.0)  # type: ignore[arg-type]

    run(main)


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    async def main() -> None:
        stream = TrickleStream(encode_frame(b"x" * 100), 1000, 0.0)
        with pytest.raises(FrameError, match="exceeds the limit"):
            await read_frame(stream, 99)  # type: ignore[arg-type]
        assert len(stream.data) == 100  # only the length prefix was read

    run(main)
