"""HTTP/2 frames (RFC 9113 4 and 6): the codes, and the frames ngate sends, packed in one step.

Frames received are parsed by framing.py (a frame head is one struct.unpack_from); what is
written here is bytes to append to the connection's output buffer.
"""
from __future__ import annotations

import enum
import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)

END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# SETTINGS parameters
HEADER_TABLE_SIZE = 0x1
ENABLE_PUSH = 0x2
MAX_CONCURRENT_STREAMS = 0x3
INITIAL_WINDOW_SIZE = 0x4
MAX_FRAME_SIZE = 0x5
MAX_HEADER_LIST_SIZE = 0x6
ENABLE_CONNECT_PROTOCOL = 0x8       # RFC 8441

MAX_WINDOW = 2 ** 31 - 1
DEFAULT_WINDOW = 65535
DEFAULT_FRAME_SIZE = 16384
MAX_FRAME_SIZE_VALUE = 2 ** 24 - 1


class ErrorCodes(enum.IntEnum):
    """RFC 9113 7."""
    NO_ERROR = 0x0
    PROTOCOL_ERROR = 0x1
    INTERNAL_ERROR = 0x2
    FLOW_CONTROL_ERROR = 0x3
    SETTINGS_TIMEOUT = 0x4
    STREAM_CLOSED = 0x5
    FRAME_SIZE_ERROR = 0x6
    REFUSED_STREAM = 0x7
    CANCEL = 0x8
    COMPRESSION_ERROR = 0x9
    CONNECT_ERROR = 0xa
    ENHANCE_YOUR_CALM = 0xb
    INADEQUATE_SECURITY = 0xc
    HTTP_1_1_REQUIRED = 0xd


HEAD = struct.Struct(">HBBBL")
head = HEAD.pack         # (length >> 8, length & 0xFF, type, flags, stream id)
unpack_head = HEAD.unpack_from
_U32 = struct.Struct(">L")
_U32U32 = struct.Struct(">LL")
_SETTING = struct.Struct(">HL")


def frame(kind: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    n = len(payload)
    return head(n >> 8, n & 0xFF, kind, flags, sid) + payload


def settings(values: dict) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(_SETTING.pack(k, v) for k, v in values.items()))


SETTINGS_ACK = frame(SETTINGS, ACK, 0)


def ping_ack(payload: bytes) -> bytes:
    return frame(PING, ACK, 0, payload)


def rst_stream(sid: int, code: int) -> bytes:
    return head(0, 4, RST_STREAM, 0, sid) + _U32.pack(code)


def window_update(sid: int, increment: int) -> bytes:
    return head(0, 4, WINDOW_UPDATE, 0, sid) + _U32.pack(increment)


def goaway(last_sid: int, code: int) -> bytes:
    return head(0, 8, GOAWAY, 0, 0) + _U32U32.pack(last_sid, code)


def u32(data, pos: int = 0) -> int:
    return _U32.unpack_from(data, pos)[0]


def settings_pairs(payload):
    """(identifier, value) of a SETTINGS frame's parameters (its length a multiple of 6)."""
    return _SETTING.iter_unpack(payload)
