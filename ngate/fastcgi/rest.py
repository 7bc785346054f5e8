"""The body length of a FastCGI response: nginx's `f->rest` (ngx_http_fastcgi_input_filter and
ngx_http_fastcgi_non_buffered_filter, nginx 1.22), sans-IO.

The CGI head's Content-Length bounds the body the application writes on STDOUT:
  204, 304            no body (rest 0)
  HEAD                rest UNKNOWN_HEAD until body bytes come (a HEAD read whole for the cache):
                      then the Content-Length
  Content-Length: n   rest n; bytes past it are cut off, the response ends there ("upstream sent
                      more data than specified in "Content-Length" header", a warning) and the
                      connection is not kept
  none                rest -1: no bound
An END_REQUEST while rest > 0 is an error: the response was too short, the client connection
is closed without the rest (nor what filters such as add_after_body would append).
"""
from __future__ import annotations

UNBOUNDED = -1
UNKNOWN_HEAD = -2
MORE_DATA = 'upstream sent more data than specified in "Content-Length" header'


def initial(status: int, method: str, content_length: int | None) -> int:
    """ngx_http_fastcgi_input_filter_init's f->rest."""
    if status == 204 or status == 304:
        return 0
    if method == "HEAD":
        return UNKNOWN_HEAD
    return UNBOUNDED if content_length is None else content_length


def cut(rest: int, data: bytes, content_length: int | None) -> tuple[bytes, int, bool]:
    """(bytes passed on, rest after them, whether the body went past its length)."""
    if rest == UNKNOWN_HEAD:
        rest = UNBOUNDED if content_length is None else content_length
    if rest < 0:
        return data, rest, False
    if rest == 0:
        return b"", 0, True
    if len(data) > rest:
        return data[:rest], 0, True
    return data, rest - len(data), False


def premature(rest: int, buffered: bool) -> str | None:
    """The error of an END_REQUEST before the body's length was reached, or None."""
    if rest <= 0:
        return None
    return "upstream prematurely closed FastCGI " + ("stdout" if buffered else "request")
