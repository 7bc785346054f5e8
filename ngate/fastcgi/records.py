"""FastCGI records, sans-IO (FastCGI 1.0 spec, the subset a web server's client uses).

Encoding (request side): `begin_request`, `params`, `stdin`, `stdin_end` return bytes, every
record padded to 8 bytes as nginx does; one request id (1) per connection, as nginx.

Decoding (response side): `RecordParser.feed(data)` returns events in arrival order:
  (STDOUT, bytes)   a piece of the CGI response (head, then body)
  (STDERR, bytes)   text the application wrote to stderr
  (END_REQUEST, app_status, protocol_status)
Records for another request id and unknown types are skipped; a bad version is a ValueError.
After END_REQUEST the parser is `done` and ignores further bytes until `reset()`.
"""
from __future__ import annotations

import struct
from functools import partial

VERSION = 1
BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR = 1, 2, 3, 4, 5, 6, 7
RESPONDER = 1
KEEP_CONN = 1
REQUEST_ID = 1
MAX_CONTENT = 65535
# protocol_status values of END_REQUEST
REQUEST_COMPLETE, CANT_MPX_CONN, OVERLOADED, UNKNOWN_ROLE = 0, 1, 2, 3

_HEADER = struct.Struct(">BBHHBx")
_unpack_header = _HEADER.unpack_from
_END_BODY = struct.Struct(">IB3x")
_PAD = bytes(8)


def record(rtype: int, content: bytes = b"") -> bytes:
    """One record (content up to 65535 bytes), padded to a multiple of 8."""
    n = len(content)
    pad = -n & 7
    return _HEADER.pack(VERSION, rtype, REQUEST_ID, n, pad) + content + _PAD[:pad]


PARAMS_END = record(PARAMS)
STDIN_END = record(STDIN)
PARAMS_STDIN_END = PARAMS_END + STDIN_END      # the end of a request without a body
PAD = tuple(_PAD[:n] for n in range(8))         # padding of n bytes


# params_header(n, pad): the header of a PARAMS record of n bytes of content and `pad` of
# padding (a partial of the struct's pack: no Python frame)
params_header = partial(_HEADER.pack, VERSION, PARAMS, REQUEST_ID)
# a one-record PARAMS of a request without a body ends with its padding, the empty PARAMS and
# the empty STDIN: those bytes per padding length
PAD_PARAMS_STDIN_END = tuple(pad + PARAMS_STDIN_END for pad in PAD)


def stream(rtype: int, data: bytes) -> bytes:
    """`data` split into records of at most 65535 bytes (no terminator)."""
    if len(data) <= MAX_CONTENT:
        return record(rtype, data) if data else b""
    view = memoryview(data)
    return b"".join(record(rtype, bytes(view[i:i + MAX_CONTENT]))
                    for i in range(0, len(data), MAX_CONTENT))


def begin_request(keep_conn: bool) -> bytes:
    return record(BEGIN_REQUEST, struct.pack(">HB5x", RESPONDER, KEEP_CONN if keep_conn else 0))


def _length(n: int) -> bytes:
    return bytes((n,)) if n < 128 else struct.pack(">I", n | 0x80000000)


def pair(name: bytes, value: bytes) -> bytes:
    """One name-value pair as PARAMS content."""
    n = len(name)
    v = len(value)
    if n < 128 and v < 128:
        return bytes((n, v)) + name + value
    return _length(n) + _length(v) + name + value


def params(content: bytes, before: bytes = b"", after: bytes = b"") -> bytes:
    """Encoded pairs as PARAMS records, followed by the empty PARAMS record; `before` and
    `after` are joined to them in the same copy (a request's head is written whole)."""
    n = len(content)
    if 0 < n <= MAX_CONTENT:        # one record (the common case)
        pad = -n & 7
        return b"".join((before, _HEADER.pack(VERSION, PARAMS, REQUEST_ID, n, pad), content,
                         _PAD[:pad], PARAMS_END, after))
    return b"".join((before, stream(PARAMS, content), PARAMS_END, after))


def encode_params(pairs) -> bytes:
    return params(b"".join(pair(k, v) for k, v in pairs))


def stdin(data: bytes) -> bytes:
    return stream(STDIN, data)


def stdin_end() -> bytes:
    return STDIN_END


def abort_request() -> bytes:
    return record(ABORT_REQUEST)


def decode_params(data: bytes) -> list[tuple[bytes, bytes]]:
    """The inverse of encode_params' content (for tests and tools)."""
    out = []
    i = 0
    while i < len(data):
        lens = []
        for _ in range(2):
            if data[i] < 128:
                lens.append(data[i])
                i += 1
            else:
                lens.append(struct.unpack_from(">I", data, i)[0] & 0x7FFFFFFF)
                i += 4
        k = data[i:i + lens[0]]
        i += lens[0]
        out.append((k, data[i:i + lens[1]]))
        i += lens[1]
    return out


class RecordParser:
    """Response records -> events. Holds at most one partial record (<= 64 KiB + 263 bytes).
    `read`: the bytes fed so far; a STDOUT/STDERR event carries the offset (in those bytes) of
    its content's end, for $upstream_response_length (what nginx read after the CGI head)."""
    __slots__ = ("buf", "done", "read")

    def __init__(self) -> None:
        self.buf = b""
        self.done = False
        self.read = 0

    def reset(self) -> None:
        self.buf = b""
        self.done = False
        self.read = 0

    def feed(self, data: bytes) -> list:
        if self.done:
            return []
        buf = self.buf
        if buf:
            base = self.read - len(buf)         # the offset of data[0] once joined
            data = buf + data
        else:
            base = self.read
        end = len(data)
        self.read = base + end
        events = []
        pos = 0
        while pos + 8 <= end:
            version, rtype, rid, n, pad = _unpack_header(data, pos)
            if version != VERSION:
                raise ValueError(f"upstream sent unsupported FastCGI protocol version: {version}")
            start = pos + 8
            stop = start + n
            if stop + pad > end:
                break
            pos = stop + pad
            if rid != REQUEST_ID:
                continue
            if rtype == STDOUT or rtype == STDERR:
                if n:
                    events.append((rtype, data[start:stop], base + stop))
            elif rtype == END_REQUEST:
                events.append((END_REQUEST, *_END_BODY.unpack_from(data, start))
                              if n >= 8 else (END_REQUEST, 0, 0))
                self.done = True
                self.buf = b""
                return events
        self.buf = data[pos:] if pos < end else b""
        return events
