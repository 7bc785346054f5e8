"""What handlers reach through an HTTP/2 stream's `conn.transport` (stream.py): the stream's
side of the transport interface. Created on first use: a `return` or a proxied GET never asks."""
from __future__ import annotations

from ngate.http2.frames import ErrorCodes


class StreamTransport:
    """What handlers reach through `conn.transport`: reading pauses the stream's receive
    window, closing resets the stream."""
    __slots__ = ("stream",)

    def __init__(self, stream) -> None:
        self.stream = stream

    def pause_reading(self) -> None:
        self.stream.reading = False

    def resume_reading(self) -> None:
        s = self.stream
        if not s.reading:
            s.reading = True
            s.ack_body()

    def is_reading(self) -> bool:
        return self.stream.reading

    def get_write_buffer_size(self) -> int:
        return 0            # queued bytes are copied: a handler may reuse its buffer at once

    def write(self, data) -> None:
        self.stream.write(data)

    def close(self) -> None:
        self.stream.reset(ErrorCodes.INTERNAL_ERROR)

    def abort(self) -> None:
        self.stream.reset(ErrorCodes.INTERNAL_ERROR)

    def is_closing(self) -> bool:
        return self.stream.closing

    def can_write_eof(self) -> bool:
        return False

    def get_extra_info(self, name, default=None):
        return self.stream.h2c.transport.get_extra_info(name, default)
