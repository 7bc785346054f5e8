"""The HTTP core writes HTTP/1.1 response heads; an HTTP/2 stream sends them as a HEADERS frame.

`h1_to_h2(head)` turns "HTTP/1.1 200 OK\\r\\nName: value\\r\\n...\\r\\n\\r\\n" into a HEADERS
list: `:status` first, lower-case names, and without the hop-by-hop headers HTTP/2 forbids
(Connection, Keep-Alive, Transfer-Encoding, Upgrade, Proxy-Connection), as nginx's
ngx_http_v2_header_filter builds it from the same response."""
from __future__ import annotations

from time import time as _time

from ngate import SERVER_NAME
from ngate.http1 import response as resp
from ngate.http2.hpack_out import StatelessEncoder

_HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"upgrade",
                  b"proxy-connection"})


def h1_to_h2(head: bytes) -> tuple[int, list, bool]:
    """(status, [(name, value)], chunked?) of a complete HTTP/1.x response head."""
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    out = [(b":status", b"%d" % status)]
    chunked = False
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name in _HOP:
            if name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            continue
        out.append((name, value.strip()))
    return status, out, chunked


_SERVER_TOKENS = (b"server", resp.SERVER_FULL.encode())
_SERVER_BARE = (b"server", SERVER_NAME.encode())
_DATE = [-1, (b"date", b""), 0]    # the second, its Date field, the HTTP/1.1 line's length
_TYPES: dict = {}       # Content-Type value -> its field (a few per server: bounded)
_NAMES: dict = {}       # a header name as written -> its HTTP/2 name, b"" if hop-by-hop (bounded)
_PREFIX: dict = {}      # (status, server_tokens, server) -> ([:status, server], HTTP/1.1 size)


def _prefix(status: int, server_tokens: bool, server: bool) -> tuple[list, int]:
    """The fields every response of this status begins with, and the size of their HTTP/1.1
    lines (status line, Server, the head's last CRLF): fixed per status and setting."""
    out = [(b":status", b"%d" % status)]
    size = len(resp.status_line(status, 1)) + 2
    if server:
        field = _SERVER_TOKENS if server_tokens else _SERVER_BARE
        out.append(field)
        size += len(field[1]) + 10
    if len(_PREFIX) < 4096:
        _PREFIX[(status, server_tokens, server)] = (out, size)
    return out, size


def response_fields(status: int, *, server_tokens: bool = True,
                    content_type: bytes | None = None, content_length: int | None = None,
                    last_modified: bytes | None = None, location: bytes | None = None,
                    connection: bytes | None = None, headers=(), server: bool = True,
                    date: bool = True) -> tuple[list, int]:
    """h1_to_h2(resp.build_head(status, 1, ...)) without the HTTP/1.1 bytes in between (the
    same arguments, no chunked framing, the reason unused): (the HEADERS list, the length of
    the HTTP/1.1 head it stands for, which $bytes_sent counts)."""
    prefix = _PREFIX.get((status, server_tokens, server))
    if prefix is None:
        prefix = _prefix(status, server_tokens, server)
    out = prefix[0].copy()
    size = prefix[1] + (len(connection) if connection else 0)
    if date:
        cached = _DATE
        now = int(_time())
        if now != cached[0]:        # once a second: resp.DATE's line as a field
            line = resp.DATE.get()
            _DATE[:] = cached = [now, (b"date", line[6:-2]), len(line)]
        out.append(cached[1])
        size += cached[2]
    if content_type is not None:
        field = _TYPES.get(content_type)
        if field is None:
            field = (b"content-type", content_type.strip())
            if len(_TYPES) < 256:
                _TYPES[content_type] = field
        out.append(field)
        size += len(content_type) + 16
    if content_length is not None:
        value = b"%d" % content_length
        out.append((b"content-length", value))
        size += len(value) + 18
    if last_modified is not None:
        out.append((b"last-modified", last_modified.strip()))
        size += len(last_modified) + 17
    if location is not None:
        out.append((b"location", location.strip()))
        size += len(location) + 12
    names = _NAMES
    for name, value in headers:
        size += len(name) + len(value) + 4
        key = names.get(name)
        if key is None:
            key = name.strip().lower()
            if key in _HOP:
                key = b""
            if len(names) < 1024:
                names[name] = key
        if key:
            out.append((key, value.strip()))
    return out, size


_ENCODER = StatelessEncoder()
_BLOCKS: dict = {}      # (status, server_tokens, content_type, content_length) -> this second's
_BLOCKS_AT = [-1]       # (HEADERS block, HTTP/1.1 size); the second they are of
_BLOCKS_MAX = 256


def response_block(status: int, server_tokens: bool, content_type: bytes | None,
                   content_length: int | None) -> tuple[bytes, int]:
    """response_fields(status, server_tokens=, content_type=, content_length=) HPACK-encoded
    (hpack_out.py: stateless, a field list always encodes to the same bytes), and the size of
    the HTTP/1.1 head it stands for without its Connection line. A generated response (a
    `return`, a status page) repeats within a second, Date included: its block is kept for
    that second, so such a response is one lookup instead of a field list and its encoding."""
    now = int(_time())
    if now != _BLOCKS_AT[0]:
        _BLOCKS.clear()
        _BLOCKS_AT[0] = now
    key = (status, server_tokens, content_type, content_length)
    got = _BLOCKS.get(key)
    if got is None:
        fields, size = response_fields(status, server_tokens=server_tokens,
                                       content_type=content_type, content_length=content_length)
        got = (_ENCODER.encode(fields), size)
        if len(_BLOCKS) < _BLOCKS_MAX:
            _BLOCKS[key] = got
    return got
