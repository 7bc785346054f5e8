"""HTTP/1.x response heads, sans-IO: status lines, nginx's header order, nginx-style status pages.

nginx writes a response head in a fixed order (ngx_http_header_filter_module): status line,
Server, Date, Content-Type, Content-Length, Last-Modified, Location, Transfer-Encoding,
Connection, then every other header in order (upstream headers, then add_header). `build_head`
reproduces that order; constant pieces are pre-encoded.
"""
from __future__ import annotations

import time
from email.utils import formatdate

from ngate import SERVER_NAME, __version__

REASONS = {
    100: "Continue", 101: "Switching Protocols",
    200: "OK", 201: "Created", 202: "Accepted", 203: "Non-Authoritative Information",
    204: "No Content", 205: "Reset Content", 206: "Partial Content",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily", 303: "See Other",
    304: "Not Modified", 307: "Temporary Redirect", 308: "Permanent Redirect",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Not Allowed", 406: "Not Acceptable", 408: "Request Time-out",
    409: "Conflict", 410: "Gone", 411: "Length Required", 412: "Precondition Failed",
    413: "Request Entity Too Large", 414: "Request-URI Too Large", 415: "Unsupported Media Type",
    416: "Requested Range Not Satisfiable", 421: "Misdirected Request", 429: "Too Many Requests",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Temporarily Unavailable", 504: "Gateway Time-out", 505: "HTTP Version Not Supported",
    507: "Insufficient Storage",
}

# nginx's own status pages (ngx_http_error_pages): the codes that have one, and the titles that
# differ from the status line's reason
PAGE_CODES = frozenset({301, 302, 303, 307, 308, 400, 401, 402, 403, 404, 405, 406, 408, 409, 410,
                        411, 412, 413, 414, 415, 416, 421, 429, 494, 495, 496, 497, 500, 501, 502,
                        503, 504, 505, 507})
PAGE_TITLES = {
    302: "302 Found",
    401: "401 Authorization Required",
    494: "400 Request Header Or Cookie Too Large",
    495: "400 The SSL certificate error",
    496: "400 No required SSL certificate was sent",
    497: "400 The plain HTTP request was sent to HTTPS port",
}

SERVER_FULL = f"{SERVER_NAME}/{__version__}"
SERVER_HEADER_TOKENS = f"Server: {SERVER_FULL}\r\n".encode()
SERVER_HEADER_BARE = f"Server: {SERVER_NAME}\r\n".encode()

_STATUS_LINES: dict = {}
_REASON_LINES: dict = {}    # (status, minor, upstream's reason) -> status line


def status_line(status: int, minor: int = 1) -> bytes:
    key = (status, minor)
    line = _STATUS_LINES.get(key)
    if line is None:
        reason = REASONS.get(status)
        if reason is None:
            line = f"HTTP/1.{minor} {status} \r\n".encode()
        else:
            line = f"HTTP/1.{minor} {status} {reason}\r\n".encode()
        _STATUS_LINES[key] = line
    return line


# HTTP/1.1 status lines of the codes with a reason (the common case of status_line)
STATUS_LINES_11 = {code: f"HTTP/1.1 {code} {reason}\r\n".encode() for code, reason in REASONS.items()}


class _DateCache:
    """`Date: ...\\r\\n` refreshed at most once a second."""
    __slots__ = ("second", "header")

    def __init__(self) -> None:
        self.second = -1
        self.header = b""

    def get(self) -> bytes:
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.header = b"Date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
        return self.header


DATE = _DateCache()

CONN_KEEPALIVE = b"Connection: keep-alive\r\n"
CONN_CLOSE = b"Connection: close\r\n"
CONN_UPGRADE = b"Connection: upgrade\r\n"
TE_CHUNKED = b"Transfer-Encoding: chunked\r\n"


class StatusText(bytes):
    """An upstream's status line after the code, kept verbatim as nginx keeps it: b"" for
    `HTTP/1.1 200`, b" " for `HTTP/1.1 200 ` (Tomcat). build_head writes it as it is."""
    __slots__ = ()


def build_head(status: int, minor: int, *, server_tokens: bool = True,
               content_type: bytes | None = None, content_length: int | None = None,
               last_modified: bytes | None = None, location: bytes | None = None,
               chunked: bool = False, connection: bytes | None = None,
               headers=(), reason: bytes | None = None, server: bool = True,
               date: bool = True) -> bytes:
    """A response head in nginx's order. `headers` is an iterable of (name, value) bytes pairs.
    `server`, `date`: False when the response has its own (proxy_pass_header Server, Date: the
    upstream's, among `headers`, or none at all when the upstream sent none, as nginx).

    `location` is written in its own slot only when ngate made it absolute from a relative one
    (nginx's header filter does that); an absolute Location stays among `headers`.
    """
    if reason is None:
        parts = [status_line(status, minor)]
    elif reason.__class__ is StatusText:
        parts = [b"HTTP/1.%d %d%s\r\n" % (minor, status, reason)]
    else:
        line = _REASON_LINES.get((status, minor, reason))
        if line is None:
            line = b"HTTP/1.%d %d %s\r\n" % (minor, status, reason)
            if len(_REASON_LINES) < 1024:
                _REASON_LINES[(status, minor, reason)] = line
        parts = [line]
    if server:
        parts.append(SERVER_HEADER_TOKENS if server_tokens else SERVER_HEADER_BARE)
    if date:
        parts.append(DATE.get())
    if content_type is not None:
        parts.append(b"Content-Type: " + content_type + b"\r\n")
    if content_length is not None:
        parts.append(b"Content-Length: %d\r\n" % content_length)
    if last_modified is not None:
        parts.append(b"Last-Modified: " + last_modified + b"\r\n")
    if location is not None:
        parts.append(b"Location: " + location + b"\r\n")
    if chunked:
        parts.append(TE_CHUNKED)
    if connection is not None:
        parts.append(connection)
    for name, value in headers:
        parts.append(name + b": " + value + b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


# ---------------------------------------------------------------- status pages

_TAIL_TOKENS = f"<hr><center>{SERVER_FULL}</center>\r\n</body>\r\n</html>\r\n".encode()
_TAIL_BARE = f"<hr><center>{SERVER_NAME}</center>\r\n</body>\r\n</html>\r\n".encode()

# nginx sends no body for these (ngx_http_special_response_handler)
NO_BODY_STATUSES = frozenset({100, 101, 204, 304})


def status_page(status: int, server_tokens: bool = True) -> bytes | None:
    """nginx's built-in HTML page for an error/redirect status, or None when it has none."""
    if status not in PAGE_CODES:
        return None
    title = PAGE_TITLES.get(status)
    if title is None:
        reason = REASONS.get(status)
        if reason is None:
            return None
        title = f"{status} {reason}"
    if 494 <= status <= 497:
        # "400 <what>" in the title, "400 Bad Request" in h1 and the reason below it
        head = (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
                f"<center><h1>400 Bad Request</h1></center>\r\n"
                f"<center>{title[4:]}</center>\r\n").encode()
    else:
        head = (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
                f"<center><h1>{title}</h1></center>\r\n").encode()
    return head + (_TAIL_TOKENS if server_tokens else _TAIL_BARE)


def page_status(status: int) -> int:
    """The status on the wire for nginx's internal codes (494-497 are sent as 400)."""
    return 400 if 494 <= status <= 497 else status


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
