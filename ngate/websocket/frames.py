"""WebSocket frame boundaries in a byte stream, and ngate's own frames (sans-IO).

A tunnel forwards frames untouched; to inject its own frames (pings, close frames) it must know
where frames end. `FrameScanner.scan(data)` follows frame headers through one direction of the
stream and returns the bytes to forward:

  between frames  `remaining == 0`: the next byte starts a header. A header split across reads is
                  held back (a few bytes) until it is complete.
  in a payload    `remaining` payload bytes still belong to the current frame; data entirely
                  inside a payload is returned as is (one comparison).
  one frame       data that is exactly one whole frame with a short header (a small message
                  arriving in one read, the common case) is returned as is after a few checks.
  capturing       a pong whose payload length is that of ngate's ping is held until complete; if
                  its payload is ngate's, it is dropped (`own_pongs` counts it), else forwarded.

The forwarded stream is between two frames when `at_boundary` is true: only then may ngate write
a frame of its own in that direction. ngate's own frames are masked toward the backend (ngate is
its client) and unmasked toward the client (RFC 6455 5.1, 5.3); they are built here rather than
with wsproto so that the worker does not import it at its first upgrade.
"""
from __future__ import annotations

import os

PING_PAYLOAD = b"ngate-keepalive"
GOING_AWAY = 1001
_PING = 0x9
_PONG = 0xA
_CLOSE = 0x8
_PING_LEN = len(PING_PAYLOAD)


def _control_frame(opcode: int, payload: bytes, masked: bool) -> bytes:
    """A final control frame (payload at most 125 bytes, RFC 6455 5.5)."""
    if len(payload) > 125:
        raise ValueError("control frame payload over 125 bytes")
    if not masked:
        return bytes((0x80 | opcode, len(payload))) + payload
    key = os.urandom(4)
    return (bytes((0x80 | opcode, 0x80 | len(payload))) + key
            + bytes(b ^ key[i & 3] for i, b in enumerate(payload)))


def ping_frame(to_backend: bool) -> bytes:
    return _control_frame(_PING, PING_PAYLOAD, to_backend)


def close_frame(to_backend: bool, code: int = GOING_AWAY, reason: str = "") -> bytes:
    return _control_frame(_CLOSE, code.to_bytes(2, "big") + reason.encode("utf-8"), to_backend)


def _header_length(b1: int) -> int:
    n = b1 & 0x7F
    return 2 + (2 if n == 126 else 8 if n == 127 else 0) + (4 if b1 & 0x80 else 0)


def _is_own_pong(frame: bytes, hlen: int) -> bool:
    payload = frame[hlen:]
    if frame[1] & 0x80:
        mask = frame[hlen - 4:hlen]
        payload = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
    return payload == PING_PAYLOAD


class FrameScanner:
    """Frame boundaries of one direction of a WebSocket stream (see the module docstring)."""
    __slots__ = ("remaining", "partial", "capture", "own_pongs")

    def __init__(self) -> None:
        self.remaining = 0          # payload bytes of the current frame not yet seen
        self.partial = b""          # an incomplete header, held back
        self.capture = None         # bytearray: a pong candidate being held
        self.own_pongs = 0

    @property
    def at_boundary(self) -> bool:
        """The forwarded bytes end between two frames."""
        return self.remaining == 0 or self.capture is not None

    def scan(self, data: bytes) -> bytes:
        rem = self.remaining
        if rem:
            if rem >= len(data) and self.capture is None:
                self.remaining = rem - len(data)
                return data
        elif not self.partial and len(data) > 1:
            b1 = data[1]
            n = b1 & 0x7F
            if (len(data) == n + (6 if b1 & 0x80 else 2) and n < 126
                    and (n != _PING_LEN or data[0] & 0x0F != _PONG)):
                return data
        return self._scan(self.partial + data if self.partial else data)

    def _scan(self, buf: bytes) -> bytes:
        self.partial = b""
        out = []
        start = pos = 0
        n = len(buf)
        while pos < n:
            rem = self.remaining
            if rem:
                take = rem if rem < n - pos else n - pos
                if self.capture is not None:
                    self.capture += buf[pos:pos + take]
                pos += take
                self.remaining = rem - take
                if self.remaining == 0 and self.capture is not None:
                    self._end_capture(out)
                    start = pos
                continue
            if n - pos < 2 or n - pos < _header_length(buf[pos + 1]):
                self.partial = buf[pos:]
                n = pos
                break
            hlen = _header_length(buf[pos + 1])
            length = buf[pos + 1] & 0x7F
            if length == 126:
                length = int.from_bytes(buf[pos + 2:pos + 4], "big")
            elif length == 127:
                length = int.from_bytes(buf[pos + 2:pos + 10], "big")
            if buf[pos] & 0x0F == _PONG and length == _PING_LEN:
                out.append(buf[start:pos])
                self.capture = bytearray(buf[pos:pos + hlen])
                self.remaining = length
                pos += hlen
                start = pos
                continue
            pos += hlen
            self.remaining = length
        if self.capture is None:
            out.append(buf[start:n])
        return out[0] if len(out) == 1 else b"".join(out)

    def _end_capture(self, out: list) -> None:
        frame = bytes(self.capture)
        self.capture = None
        if _is_own_pong(frame, _header_length(frame[1])):
            self.own_pongs += 1
        else:
            out.append(frame)
