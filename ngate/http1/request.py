"""Request heads and chunked request bodies, parsed as nginx 1.22 parses them (sans-IO).

ngx_http_parse_request_line, ngx_http_parse_header_line and ngx_http_parse_chunked decide what
nginx accepts; these functions follow them, so that ngate accepts and refuses the same requests:

- head_end(buf, start): where a head ends (after the first empty line), -1 if not yet. A bare CR
  (a CR not followed by LF) is refused by the caller before a head is parsed.
- parse_request_line(line): method, target, version ("1.1", "1.2", "0.9" ...) or HeadError.
  Methods are `[A-Z_-]+` (any length), the target is origin-form or absolute-form with any
  scheme, any byte but controls, space and DEL in the URI (raw UTF-8 included); versions are
  HTTP/1.0 ... HTTP/1.999 (major > 1: 505); a line without a version is HTTP/0.9.
- split_header(line): name and value of one header line: the value loses leading and trailing
  spaces (only spaces: a tab stays part of it, as in nginx 1.22); a name starting with or
  containing a control byte or space is refused (400), NUL anywhere is refused (400). Control
  bytes and DEL inside a value are accepted, as nginx does.
- ChunkedDecoder: ngx_http_parse_chunked as a state machine: chunk sizes may be followed by
  spaces, tabs or `;extensions`, lines may end in LF alone, and trailer lines are skipped
  unparsed (nginx discards request trailers: they never become headers or variables).
"""
from __future__ import annotations

import re

MAX_OFF_T = (1 << 63) - 1


class HeadError(Exception):
    """A request head is refused before routing (status and log message). `user_agent`: the
    User-Agent of the header lines nginx had parsed before the error (its status page's
    msie_padding reads it), where the parse knows them."""

    user_agent = None

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def user_agent_before_bare_cr(head) -> bytes | None:
    """The first User-Agent of a head (complete or arriving) refused for a bare CR: among the
    complete header lines before the first one holding it (nginx parses up to that line)."""
    lines = bytes(head).split(b"\n")
    last = len(lines) - 1
    for i, line in enumerate(lines[1:], 1):
        if line.endswith(b"\r"):
            line = line[:-1]
        if b"\r" in line:
            return None
        if i < last:
            name, sep, value = line.partition(b":")
            if sep and name.lower() == b"user-agent":
                return value.strip(b" \t")
    return None


def user_agent_of(lines) -> bytes | None:
    """The first User-Agent value among these header lines (bytes, no line ends), or None."""
    for line in lines:
        name, sep, value = line.partition(b":")
        if sep and name.lower() == b"user-agent":
            return value.strip(b" \t")
    return None


class BodyError(Exception):
    """A request body that cannot be parsed (nginx: 400, connection closed)."""


# ---------------------------------------------------------------- request line

_URI = rb"[^\x00-\x20\x7f]*"
_TARGET = (rb"/" + _URI + rb"|[A-Za-z][A-Za-z0-9+.-]*://"
           rb"(?:\[[0-9A-Za-z:._~!$&'()*+,;=-]*\]|[A-Za-z0-9.-]*)(?::[0-9]*)?(?:[/?]" + _URI + rb")?")
_REQUEST_LINE = re.compile(rb"([A-Z_-]+) +(" + _TARGET + rb")(?: +HTTP/1\.([0-9]{1,3}))? *\Z")
# 505 only for a line nginx reads up to the version: "PRI * HTTP/2.0" is an invalid request
_BAD_VERSION = re.compile(rb"[A-Z_-]+ +(?:" + _TARGET + rb") +HTTP/(?:[2-9]|1[0-9])")
_FIRST = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ_-"


def parse_request_line(line: bytes) -> tuple[bytes, bytes, str]:
    """(method, target, version) of a request line (without its line end), or HeadError."""
    m = _REQUEST_LINE.match(line)
    if m is None:
        if line[:1] and line[0] not in _FIRST:
            raise HeadError(400, "client sent invalid method")
        if _BAD_VERSION.match(line):
            raise HeadError(505, "client sent invalid version")
        raise HeadError(400, "client sent invalid request")
    method, target, minor = m.groups()
    if minor is None:
        return method, target, "0.9"    # the caller refuses anything but GET
    if minor == b"1":
        return method, target, "1.1"
    return method, target, "1.%d" % int(minor)


# ---------------------------------------------------------------- header lines

_BAD_NAME = re.compile(rb"[\x00-\x20\x7f]")


def split_header(line: bytes) -> tuple[bytes, bytes]:
    """Name and value of a header line (without its line end), or HeadError."""
    name, sep, value = line.partition(b":")
    if not sep or not name or _BAD_NAME.search(name):
        # nginx takes a line without a colon as a header with an empty value: ngate refuses it
        # (README, differences); a name with a space or control byte is refused by nginx too
        raise HeadError(400, "client sent invalid header line")
    return name, value.strip(b" ")


def head_end(buf, start: int = 0) -> int:
    """Offset just past the empty line that ends a head beginning at or after `start`, else -1.

    Leading empty lines (which nginx skips before a request line) may end "early": the caller
    skips them first."""
    i = buf.find(b"\n\r\n", start)
    j = buf.find(b"\n\n", start, i if i >= 0 else len(buf))
    if j >= 0:
        return j + 2
    return i + 3 if i >= 0 else -1


# ---------------------------------------------------------------- chunked bodies

# states of ngx_http_parse_chunked
(CHUNK_START, CHUNK_SIZE, CHUNK_EXTENSION, CHUNK_SIZE_ALMOST_DONE, CHUNK_DATA, AFTER_DATA,
 AFTER_DATA_ALMOST_DONE, LAST_CHUNK_EXTENSION, LAST_CHUNK_EXTENSION_ALMOST_DONE, TRAILER,
 TRAILER_ALMOST_DONE, TRAILER_HEADER, TRAILER_HEADER_ALMOST_DONE) = range(13)

_HEX = {c: int(chr(c), 16) for c in b"0123456789abcdefABCDEF"}
_LF, _CR = 10, 13


class ChunkedDecoder:
    """A chunked request body, byte for byte as ngx_http_parse_chunked reads it.

    `feed(data, sink)` passes the decoded data to `sink(bytes)` and returns the number of bytes
    of `data` that belong to the body once its end (the empty line after the last chunk and
    any trailer lines) is reached, or -1 when all of `data` was consumed and more is expected.
    Raises BodyError on bytes nginx refuses. Trailer lines are consumed and dropped."""
    __slots__ = ("state", "size")

    def __init__(self) -> None:
        self.state = CHUNK_START
        self.size = 0

    def feed(self, data: bytes, sink) -> int:
        state = self.state
        size = self.size
        pos = 0
        n = len(data)
        while pos < n:
            if state == CHUNK_DATA:
                take = min(size, n - pos)
                sink(data[pos:pos + take])
                pos += take
                size -= take
                if size == 0:
                    state = AFTER_DATA
                continue
            if state == TRAILER_HEADER or state == CHUNK_EXTENSION or state == LAST_CHUNK_EXTENSION:
                # skip to the line end (extensions and trailer lines are not interpreted)
                lf = data.find(b"\n", pos)
                cr = data.find(b"\r", pos, lf if lf >= 0 else n)
                if cr >= 0:
                    pos = cr + 1
                    state = (TRAILER_HEADER_ALMOST_DONE if state == TRAILER_HEADER else
                             CHUNK_SIZE_ALMOST_DONE if state == CHUNK_EXTENSION else
                             LAST_CHUNK_EXTENSION_ALMOST_DONE)
                elif lf >= 0:
                    pos = lf + 1
                    if state == TRAILER_HEADER:
                        state = TRAILER
                    elif state == LAST_CHUNK_EXTENSION:
                        state = TRAILER
                    else:
                        state = CHUNK_DATA
                else:
                    pos = n
                continue
            ch = data[pos]
            pos += 1
            if state == CHUNK_START:
                d = _HEX.get(ch)
                if d is None:
                    raise BodyError("invalid chunk size")
                size = d
                state = CHUNK_SIZE
            elif state == CHUNK_SIZE:
                d = _HEX.get(ch)
                if d is not None:
                    if size > MAX_OFF_T // 16:
                        raise BodyError("chunk size too large")
                    size = size * 16 + d
                elif ch == _CR:
                    state = CHUNK_SIZE_ALMOST_DONE
                elif ch == _LF:
                    state = TRAILER if size == 0 else CHUNK_DATA
                elif ch in b"; \t":
                    state = LAST_CHUNK_EXTENSION if size == 0 else CHUNK_EXTENSION
                else:
                    raise BodyError("invalid chunk size")
            elif state == CHUNK_SIZE_ALMOST_DONE:
                if ch != _LF:
                    raise BodyError("invalid chunk size line")
                state = TRAILER if size == 0 else CHUNK_DATA
            elif state == LAST_CHUNK_EXTENSION_ALMOST_DONE:
                if ch != _LF:
                    raise BodyError("invalid last chunk")
                state = TRAILER
            elif state == AFTER_DATA:
                if ch == _CR:
                    state = AFTER_DATA_ALMOST_DONE
                elif ch == _LF:
                    state = CHUNK_START
                else:
                    raise BodyError("invalid chunk end")
            elif state == AFTER_DATA_ALMOST_DONE:
                if ch != _LF:
                    raise BodyError("invalid chunk end")
                state = CHUNK_START
            elif state == TRAILER:
                if ch == _CR:
                    state = TRAILER_ALMOST_DONE
                elif ch == _LF:
                    self.state = TRAILER
                    return pos
                else:
                    state = TRAILER_HEADER
            elif state == TRAILER_ALMOST_DONE:
                if ch != _LF:
                    raise BodyError("invalid trailer end")
                self.state = TRAILER
                return pos
            elif state == TRAILER_HEADER_ALMOST_DONE:
                if ch != _LF:
                    raise BodyError("invalid trailer line")
                state = TRAILER
        self.state = state
        self.size = size
        return -1
