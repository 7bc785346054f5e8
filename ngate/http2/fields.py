"""A request's header list checked as nginx 1.22 does (ngx_http_v2_validate_header,
ngx_http_v2_pseudo_header, ngx_http_v2_construct_request_line), before request.py builds the
request (a fault here resets the stream or answers 400; the connection lives on).

- a name with a character nginx never accepts (control, space, DEL, ':' past the first, upper
  case) or a value with NUL, CR or LF: the stream is reset (RST_STREAM PROTOCOL_ERROR);
- an unknown, duplicate or empty pseudo-header, an invalid :method, :scheme or :path, or one of
  :method, :scheme, :path missing: 400.
Names nginx only ignores (ignore_invalid_headers, underscores_in_headers) are request.py's.
"""
from __future__ import annotations

RESET = "reset"
BAD_REQUEST = "bad"

_NAME_OK = frozenset(b"abcdefghijklmnopqrstuvwxyz-0123456789")
_NAME_BAD = frozenset(range(0x21)) | {0x7f, ord(":")} | frozenset(range(ord("A"), ord("Z") + 1))
_METHOD_OK = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ_-")
_SCHEME_FIRST = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_SCHEME_NEXT = _SCHEME_FIRST | frozenset(b"0123456789+-.")
_PSEUDO = (b":method", b":scheme", b":path", b":authority", b":protocol")
# bytes.translate(None, X) keeps what X does not list: an empty result means every byte is in X
_NAME_ALLOWED = bytes(c for c in range(256) if c in _NAME_OK or c not in _NAME_BAD)
_METHOD_ALLOWED = bytes(_METHOD_OK)
_SCHEME_ALLOWED = bytes(_SCHEME_NEXT)
_PATH_ALLOWED = bytes(c for c in range(0x21, 256) if c != 0x7f)


def name_ok(name: bytes) -> bool:
    """A regular header name check() takes."""
    return not name.translate(None, _NAME_ALLOWED)


def path_ok(value: bytes) -> bool:
    """A :path _pseudo() takes."""
    return (value[:1] == b"/" or value == b"*") and not value.translate(None, _PATH_ALLOWED)


def check(headers) -> tuple[str, str] | None:
    """None, or (RESET | BAD_REQUEST, nginx's log line) for the first fault found."""
    seen = {}
    for name, value in headers:
        pseudo = name[:1] == b":"
        if (name[1:] if pseudo else name).translate(None, _NAME_ALLOWED):
            return RESET, 'client sent invalid header name: "%s"' % name.decode("latin-1")
        if 0 in value or 10 in value or 13 in value:        # NUL, LF, CR
            return RESET, 'client sent header "%s" with invalid value: "%s"' % (
                name.decode("latin-1"), value.decode("latin-1"))
        if not pseudo:
            continue
        fault = _pseudo(name, value, seen)
        if fault is not None:
            return BAD_REQUEST, fault
    for name in (b":method", b":scheme", b":path"):
        if name not in seen:
            return BAD_REQUEST, "client sent no %s header" % name.decode()
    if b":protocol" in seen and seen[b":method"] != b"CONNECT":
        return RESET, "client sent :protocol without CONNECT"     # RFC 8441 4: malformed
    return None


def _pseudo(name: bytes, value: bytes, seen: dict) -> str | None:
    if name == b":authority":
        seen[name] = value
        return None
    if name not in _PSEUDO:
        return 'client sent unknown pseudo-header "%s"' % name.decode("latin-1")
    if name in seen:
        return "client sent duplicate %s header" % name.decode()
    if not value:
        return "client sent empty %s header" % name.decode()
    seen[name] = value
    if name == b":path":
        if value[0] != 0x2f and value != b"*" or value.translate(None, _PATH_ALLOWED):
            return 'client sent invalid :path header: "%s"' % value.decode("latin-1")
    elif name == b":method":
        if value.translate(None, _METHOD_ALLOWED):
            return 'client sent invalid method: "%s"' % value.decode("latin-1")
    elif name == b":scheme":
        if value[0] not in _SCHEME_FIRST or value.translate(None, _SCHEME_ALLOWED):
            return 'client sent invalid :scheme header: "%s"' % value.decode("latin-1")
    return None
