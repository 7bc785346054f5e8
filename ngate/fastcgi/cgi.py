"""The CGI response head a FastCGI application writes on STDOUT (RFC 3875 section 6), sans-IO.

`HeadReader.feed(data)` collects STDOUT bytes until the blank line that ends the head (CRLF or
bare LF lines, as nginx accepts), then returns a `CgiHead` and the body bytes that followed it;
more than `limit` bytes of head is a ValueError (nginx: "upstream sent too big header").
Status rules are nginx's (ngx_http_fastcgi_process_header):
  `Status: 404 Not Found`  status 404, reason "Not Found" (a bad code is a ValueError)
  `Status: 404`            status 404, the status line as sent: `HTTP/1.1 404` (nginx copies
                           the Status value into the status line), reason StatusText(b"")
  `Location:` and no Status  302
  neither                   200
"""
from __future__ import annotations

from dataclasses import dataclass

from ngate.http1.response import StatusText

_AS_SENT = StatusText(b"")      # build_head: the code alone, as the Status value gave it


@dataclass(slots=True)
class CgiHead:
    status: int
    reason: bytes | None          # from `Status:`; None: the standard reason (no Status)
    headers: list                 # [(name, value)] in order, `Status` removed, repeats kept


def _end_of_head(buf: bytes) -> tuple[int, int]:
    """(end of the last header line, start of the body) or (-1, -1)."""
    if buf.startswith(b"\r\n"):
        return 0, 2
    if buf.startswith(b"\n"):
        return 0, 1
    crlf = buf.find(b"\r\n\r\n")
    lf = buf.find(b"\n\n")
    if lf >= 0 and (crlf < 0 or lf < crlf):
        return lf, lf + 2
    if crlf >= 0:
        return crlf, crlf + 4
    return -1, -1


def parse_head(block: bytes) -> CgiHead:
    headers = []
    status = None
    reason = None
    has_location = False
    for line in block.split(b"\n"):
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            continue
        name, colon, value = line.partition(b":")
        name = name.strip()
        if not colon or not name or b" " in name:
            raise ValueError("upstream sent invalid header")
        value = value.strip()
        lname = name.lower()
        if lname == b"status":
            code = value[:3]
            if len(code) != 3 or not code.isdigit():
                raise ValueError(f'upstream sent invalid status "{value.decode("latin-1")}"')
            status = int(code)
            rest = value[3:].strip()
            reason = rest or _AS_SENT
            continue
        if lname == b"location" and value:
            has_location = True
        headers.append((name, value))
    if status is None:
        status = 302 if has_location else 200
    return CgiHead(status, reason, headers)


class HeadReader:
    __slots__ = ("buf", "limit")

    def __init__(self, limit: int) -> None:
        self.buf = b""
        self.limit = limit

    def feed(self, data: bytes) -> tuple[CgiHead, bytes] | None:
        buf = self.buf + data if self.buf else data
        end, body = _end_of_head(buf)
        if (body if end >= 0 else len(buf)) > self.limit:
            raise ValueError("upstream sent too big header")
        if end < 0:
            self.buf = buf
            return None
        self.buf = b""
        return parse_head(buf[:end]), buf[body:]
