"""The request URI: split off the query, normalise the path, escape it again.

`normalize_uri` reproduces nginx's ngx_http_parse_complex_uri (1.22): `%XX` is decoded (a decoded
`/` or `.` takes part in the dot and slash rules, a decoded `%`, `?` or `#` is an ordinary
character, `%00` and a malformed escape are errors), `.` segments are dropped, `..` removes the
segment before it (climbing above the root is an error) and runs of `/` are merged when
`merge_slashes` is on. Strings are latin-1 decoded bytes, so a decoded byte is one character.
"""
from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

_ESCAPE_RE = re.compile(r"%(..)?", re.S)
_HEX = frozenset("0123456789abcdefABCDEF")

# NGX_ESCAPE_URI: controls and space, "#", "%", "?", DEL and every byte >= 0x80.
_URI_UNSAFE_RE = re.compile(r"[\x00-\x20\"#%<>?\\^`{|}\x7f-\xff]")   # nginx 1.22's NGX_ESCAPE_URI
_URI_ESCAPES = {chr(b): "%%%02X" % b for b in range(256)}


def split_request_uri(request_uri: str) -> tuple[str, str | None]:
    """(raw path, args) of a request target. args is None without "?" ("" for a bare "?").

    As nginx: the path ends at the first "?" or "#"; a "#" before any "?" leaves no args; args end
    at "#". An absolute-form target ("http://host/p?a") gives its path ("/" when empty).
    """
    if "#" not in request_uri:
        path, sep, args = request_uri.partition("?")
        if path[:1] != "/":
            path = _absolute_form_path(path)
        return path, (args if sep else None)
    q = request_uri.find("?")
    h = request_uri.find("#")
    if q < 0 or h < q:
        path, args = request_uri[:h], None
    elif q >= 0:
        path, args = request_uri[:q], request_uri[q + 1:]
        if h >= 0:
            args = args[:h - q - 1]
    else:
        path, args = request_uri, None
    if path[:1] != "/":
        path = _absolute_form_path(path)
    return path, args


def _absolute_form_path(path: str) -> str:
    scheme, sep, rest = path.partition("://")
    if not sep or not scheme.isalpha():
        return path
    slash = rest.find("/")
    return "/" if slash < 0 else rest[slash:]


def normalize_uri(raw_path: str, merge_slashes: bool = True) -> str:
    """nginx's normalised $uri for a raw path (without args). ValueError means 400."""
    if raw_path[:1] != "/":
        raise ValueError("the URI does not start with /")
    if "%" not in raw_path and "/." not in raw_path and "//" not in raw_path:
        return raw_path
    path = _percent_decode(raw_path) if "%" in raw_path else raw_path
    if "/." not in path and ("//" not in path or not merge_slashes):
        return path
    return _resolve_segments(path, merge_slashes)


def _percent_decode(path: str) -> str:
    def decode(m: re.Match) -> str:
        hx = m.group(1)
        if hx is None or hx[0] not in _HEX or hx[1] not in _HEX:
            raise ValueError("malformed %-escape in the URI")
        ch = chr(int(hx, 16))
        if ch == "\0":
            raise ValueError("%00 in the URI")
        return ch
    return _ESCAPE_RE.sub(decode, path)


def _resolve_segments(path: str, merge_slashes: bool) -> str:
    """Dot segments and slash runs of a decoded path that starts with "/"."""
    segs = path.split("/")
    last = len(segs) - 1
    out: list[str] = []
    for i in range(1, last + 1):
        s = segs[i]
        if s == "." or s == "..":
            if s == "..":
                if not out:
                    raise ValueError("the URI climbs above the root")
                out.pop()
            if i == last:
                out.append("")          # "/a/." and "/a/b/.." end with a slash
            continue
        if not s and merge_slashes and i != last:
            continue
        out.append(s)
    return "/" + "/".join(out)


def escape_uri(path: str) -> str:
    """ngx_escape_uri(NGX_ESCAPE_URI): what nginx writes when it sends a changed URI upstream."""
    if _URI_UNSAFE_RE.search(path) is None:
        return path
    return _URI_UNSAFE_RE.sub(lambda m: _URI_ESCAPES[m.group()], path)


def parse_unsafe_uri(uri: str):
    """ngx_http_parse_unsafe_uri: (path, args or None), the path percent-decoded (a decoded "?"
    stays in the path); None for an unsafe URI ("..", "/../", "/.." at the end, NUL)."""
    if not uri or uri[0] == "?":
        return None
    path, sep, args = uri.partition("?")
    if _unsafe(path):
        return None
    if "%" in path:
        path = unquote_to_bytes(path).decode("latin-1")
        if _unsafe(path):
            return None
    return path, (args if sep else None)


def _unsafe(path: str) -> bool:
    return (path == ".." or path.startswith("../") or "/../" in path or path.endswith("/..")
            or "\0" in path)
