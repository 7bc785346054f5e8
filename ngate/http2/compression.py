"""HPACK for a client connection with nginx's rules. The decoder follows (ngx_http_v2_state_header_block,
_field_len, _process_header and ngx_http_v2_table.c) instead of the `hpack` library's.

The connection's framing (framing.py) calls `decode(block)` on a complete header block. As nginx:

- errors carry nginx's error code and log line (HpackFault): a bad index, table size update or Huffman string is a
  COMPRESSION_ERROR; an integer running past the block is a FRAME_SIZE_ERROR (nginx's "incorrect
  length"); an empty header name a PROTOCOL_ERROR;
- sizes are those of large_client_header_buffers: one encoded field longer than a buffer, or a
  decoded list (name + value of each field) longer than all of them, is ENHANCE_YOUR_CALM; the
  decoder stops there, so an HPACK bomb never inflates past that limit;
- a Huffman string may end in more than 7 bits of padding (nginx accepts any EOS prefix);
- a table size update is accepted anywhere in a block, up to 4096 (nginx's table size).

Responses are encoded by hpack_out.py.
"""
from __future__ import annotations

from ngate.http2.frames import ErrorCodes
from ngate.http2.huffman import STATIC_TABLE as _STATIC
from ngate.http2.huffman import HuffmanError, decode as decode_huffman

_NSTATIC = len(_STATIC)
_MEMO_BLOCK = 128           # blocks kept by NginxDecoder.decode, at most _MEMO_MAX of them
_MEMO_MAX = 8
TABLE_SIZE = 4096           # NGX_HTTP_V2_TABLE_SIZE
_INT_OCTETS = 4             # NGX_HTTP_V2_INT_OCTETS


class HpackFault(Exception):
    """A connection error found while decoding a header block: GOAWAY `code`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _comp(message: str) -> HpackFault:
    return HpackFault(ErrorCodes.COMPRESSION_ERROR, message)


def _length() -> HpackFault:
    return HpackFault(ErrorCodes.FRAME_SIZE_ERROR, "client sent header block with incorrect length")


class _Incomplete(Exception):
    """The block so far ends inside an integer (check_partial)."""


def _int(data: bytes, pos: int, prefix: int, what: str, total: int = 0) -> tuple[int, int]:
    """ngx_http_v2_parse_int: (value, next position); `total`: the block's declared length
    when `data` is only its start."""
    end = len(data)
    total = total or end
    if pos >= end:
        if pos < total:
            raise _Incomplete
        raise _length()
    value = data[pos] & prefix
    pos += 1
    if value != prefix:
        return value, pos
    start = pos - 1
    stop = min(end, start + _INT_OCTETS)
    shift = 0
    while pos < stop:
        octet = data[pos]
        pos += 1
        value += (octet & 0x7f) << shift
        if octet < 128:
            return value, pos
        shift += 7
    if stop >= total:
        raise _length()
    if stop == start + _INT_OCTETS:
        raise _comp(f"client sent header block with too long {what} value")
    raise _Incomplete


_HUFF_CACHE: dict = {}      # encoded -> decoded: request heads repeat (user-agent, paths)
_HUFF_CACHE_MAX = 2048


def huffman(raw: bytes) -> bytes:
    """Huffman-decode; padding longer than 7 bits (any prefix of EOS) is tolerated as nginx."""
    s = _HUFF_CACHE.get(raw)
    if s is not None:
        return s
    try:
        s = decode_huffman(raw)
    except HuffmanError:
        raise _comp("client sent invalid encoded header field") from None
    if len(raw) <= 256:
        if len(_HUFF_CACHE) >= _HUFF_CACHE_MAX:
            _HUFF_CACHE.clear()
        _HUFF_CACHE[raw] = s
    return s


class NginxDecoder:
    """The HPACK decoder of a connection, with nginx's limits (see the module doc)."""
    __slots__ = ("entries", "size", "max_size", "field_limit", "header_limit", "memo")

    def __init__(self, field_limit: int, header_limit: int) -> None:
        self.entries = None             # newest first: (name, value); a list once used
        self.memo = None                # {block: its header list} while the table is unchanged
        self.size = 0
        self.max_size = TABLE_SIZE
        self.field_limit = field_limit
        self.header_limit = header_limit

    def _get(self, index: int) -> tuple[bytes, bytes]:
        if index == 0:
            raise _comp("client sent invalid hpack table index 0")
        if index <= _NSTATIC:
            return _STATIC[index - 1]
        i = index - _NSTATIC - 1
        if self.entries is not None and i < len(self.entries):
            return self.entries[i]
        raise _comp(f"client sent out of bound hpack table index: {i}")

    def _add(self, name: bytes, value: bytes) -> None:
        self.memo = None
        size = len(name) + len(value) + 32
        entries = self.entries
        if entries is None:
            entries = self.entries = []
        while entries and self.size + size > self.max_size:
            n, v = entries.pop()
            self.size -= len(n) + len(v) + 32
        if size <= self.max_size:
            entries.insert(0, (name, value))
            self.size += size

    def _resize(self, size: int) -> None:
        self.memo = None
        if size > TABLE_SIZE:
            raise _comp(f"client sent invalid table size update: {size}")
        self.max_size = size
        entries = self.entries
        while entries and self.size > size:
            n, v = entries.pop()
            self.size -= len(n) + len(v) + 32

    def _field(self, data: bytes, pos: int) -> tuple[bytes, int]:
        """ngx_http_v2_state_field_len and _field_huff/_raw."""
        if pos >= len(data):
            raise _length()
        huff = data[pos] & 0x80
        n, pos = _int(data, pos, 0x7f, "length")
        if n > self.field_limit:
            raise HpackFault(ErrorCodes.ENHANCE_YOUR_CALM, "client sent too large header field")
        end = pos + n
        if end > len(data):
            raise HpackFault(ErrorCodes.FRAME_SIZE_ERROR,
                             "client sent header field with incorrect length")
        raw = data[pos:end]
        return (huffman(raw) if huff else raw), end

    def decode(self, data):
        """The header list of a complete block (a tuple when it is one decoded before).

        A block that neither adds to the table nor resizes it decodes to the same list as long
        as the table stays as it is: a client repeating a request sends the same block (every
        field an index), so such blocks are kept (`memo`, emptied by any change to the table,
        bounded) and not decoded again."""
        if len(data) > _MEMO_BLOCK or data.__class__ is not bytes:
            return self._decode(data)
        memo = self.memo
        if memo is None:
            memo = self.memo = {}
        else:
            headers = memo.get(data)
            if headers is not None:
                return headers
        headers = self._decode(data)
        if self.memo is memo:       # the table did not change (_add and _resize drop the memo)
            if len(memo) >= _MEMO_MAX:
                memo.clear()
            headers = memo[data] = tuple(headers)
        return headers

    def _decode(self, data) -> list:
        headers = []
        limit = self.header_limit
        pos = 0
        end = len(data)
        while pos < end:
            ch = data[pos]
            if ch & 0x80:
                if ch != 0xff:          # an index in the first octet (_int's first step)
                    pos += 1
                    index = ch & 0x7f
                    if 0 < index <= _NSTATIC:
                        name, value = _STATIC[index - 1]
                    else:
                        name, value = self._get(index)
                else:
                    index, pos = _int(data, pos, 0x7f, "header index")
                    name, value = self._get(index)
                index_it = False
            elif ch & 0x20 and not ch & 0x40:
                size, pos = _int(data, pos, 0x1f, "size update")
                self._resize(size)
                continue
            else:
                index_it = bool(ch & 0x40)
                index, pos = _int(data, pos, 0x3f if index_it else 0x0f, "header index")
                if index:
                    name = self._get(index)[0]
                else:
                    name, pos = self._field(data, pos)
                    if not name:
                        raise HpackFault(ErrorCodes.PROTOCOL_ERROR,
                                         "client sent zero header name length")
                value, pos = self._field(data, pos)
            size = len(name) + len(value)
            if size > limit:
                raise HpackFault(ErrorCodes.ENHANCE_YOUR_CALM, "client sent too large header")
            limit -= size
            if index_it:
                self._add(name, value)
            headers.append((name, value))
        return headers


def check_partial(frame: bytes) -> None:
    """The start of a HEADERS frame still arriving: nginx decodes a header block as it comes,
    so an integer longer than 4 octets is its COMPRESSION_ERROR before the frame is complete."""
    if len(frame) < 10 or frame[3] != 0x1:
        return
    flags = frame[4]
    pos = 9 + (1 if flags & 0x8 else 0) + (5 if flags & 0x20 else 0)
    total = 9 + int.from_bytes(frame[:3], "big") - (frame[9] if flags & 0x8 else 0)
    data = frame[:total]
    try:
        while pos < len(data):
            ch = data[pos]
            if ch & 0x80:
                _, pos = _int(data, pos, 0x7f, "header index", total)
                continue
            if ch & 0x20 and not ch & 0x40:
                _, pos = _int(data, pos, 0x1f, "size update", total)
                continue
            index, pos = _int(data, pos, 0x3f if ch & 0x40 else 0x0f, "header index", total)
            for _ in range(1 if index else 2):
                n, pos = _int(data, pos, 0x7f, "length", total)
                pos += n
    except _Incomplete:
        return
    except HpackFault as exc:
        if exc.code == ErrorCodes.COMPRESSION_ERROR:
            exc.message = "client sent header field with too long length value" \
                if "length" in exc.message else exc.message
            raise
