"""A location's PARAMS content, compiled once (nginx's fastcgi params lengths/values scripts).

`ParamsPlan(items, skip, pass_headers)` is built when the config is compiled; `build(ctx)`
returns the PARAMS content of one request: the fastcgi_param pairs in order, then the client's
headers as HTTP_* pairs (upper case, `-` -> `_`) unless a fastcgi_param already set that name
(`skip`) or fastcgi_pass_request_headers is off.

`items` are FastCGIPlan's: (STATIC, encoded pair) or (TEMPLATE, name, Template, if_not_empty).
A pair is nameLength valueLength name value, a length below 128 in one byte, else in four with
the high bit set. What does not depend on the request is encoded here once: the pairs without
variables are joined to the encoded name length of the pair with variables after them (or kept
as the tail), and a pair with variables keeps its name. Pieces are str while a request's block
is built (latin-1: one character per byte, so a length counted in characters is the length in
bytes), encoded once at the end with "replace" (a character latin-1 cannot hold becomes one
"?", as before); the headers, bytes from the wire, are appended as bytes.
"""
from __future__ import annotations

import struct

from ngate.routing.variables import Template, registry

STATIC, TEMPLATE = 0, 1

_LEN_STR = tuple(chr(n) for n in range(128))
_LEN_BYTES = tuple(bytes((n,)) for n in range(128))
_LONG = struct.Struct(">I")


def length_str(n: int) -> str:
    return _LEN_STR[n] if n < 128 else _LONG.pack(n | 0x80000000).decode("latin-1")


def length_bytes(n: int) -> bytes:
    return _LEN_BYTES[n] if n < 128 else _LONG.pack(n | 0x80000000)


def fold(template: Template, conf) -> Template:
    """`template` with the variables whose value is the location's own replaced by their text:
    $nginx_version, and $document_root when root (or alias) has no variables (a pair whose
    value becomes static is then encoded once)."""
    names = registry().names
    version, docroot = names.get("nginx_version"), names.get("document_root")
    if template.static or not any(p is version or p is docroot for p in template.parts):
        return template
    own = conf.alias if conf.alias is not None else conf.root
    parts: list = []
    for p in template.parts:
        if p is version:
            p = p(None)
        elif p is docroot and (own is None or own.static):
            p = "" if own is None else own.text
        if p.__class__ is str and parts and parts[-1].__class__ is str:
            parts[-1] += p
        elif p != "":
            parts.append(p)
    if all(p.__class__ is str for p in parts):
        text = "".join(parts)
        return Template(text, (text,))
    return Template(template.text, tuple(parts))


class ParamsPlan:
    """`pieces`: per fastcgi_param with variables, (the encoded pairs without variables before
    it + its name's length, those pairs alone, getter, name, if_not_empty); `tail`: the pairs
    without variables after the last one. The getter is the variable's (str, or None: "not
    found") or a Template's render."""
    __slots__ = ("pieces", "tail", "skip", "pass_headers", "passed")

    def __init__(self, items, skip: frozenset, pass_headers: bool) -> None:
        pieces = []
        before = ""
        for item in items:
            if item[0] == STATIC:
                before += item[1].decode("latin-1")
                continue
            _, name, template, if_not_empty = item
            parts = template.parts
            get = parts[0] if len(parts) == 1 and parts[0].__class__ is not str \
                else template.render
            text = name.decode("latin-1")
            pieces.append((before + length_str(len(text)), before, get, text, if_not_empty))
            before = ""
        self.pieces = tuple(pieces)
        self.tail = before
        self.skip = skip
        self.pass_headers = pass_headers
        self.passed = {}        # client header lists -> their HTTP_* pairs (bounded)

    def build(self, ctx) -> bytes:
        """The request's PARAMS content."""
        out: list = []
        append = out.append
        extend = out.extend
        for head, before, get, name, if_not_empty in self.pieces:
            value = get(ctx)
            if value:
                n = len(value)
                extend((head, _LEN_STR[n] if n < 128 else length_str(n), name, value))
            elif not if_not_empty:
                extend((head, "\x00", name))
            elif before:
                append(before)
        append(self.tail)
        data = "".join(out).encode("latin-1", "replace")
        if not self.pass_headers:
            return data
        headers = tuple(ctx.headers)
        passed = self.passed.get(headers)
        if passed is None:
            passed = self._http_pairs(headers)
        return data + passed

    def _http_pairs(self, headers: tuple) -> bytes:
        """The client's headers as HTTP_* pairs, kept for the next request with the same ones
        (up to _PASSED_MAX lists of up to _PASSED_LEN bytes: the same lists recur)."""
        pieces = []
        extend = pieces.extend
        skip = self.skip
        keys = _HEADER_KEYS
        for name, value in headers:
            key = keys.get(name)
            if key is None:
                key = header_key(name)
            if key[0] not in skip:
                n = len(value)
                extend((key[1], _LEN_BYTES[n] if n < 128 else length_bytes(n), key[2], value))
        passed = b"".join(pieces)
        if len(passed) <= _PASSED_LEN:
            if len(self.passed) >= _PASSED_MAX:
                self.passed.clear()
            self.passed[headers] = passed
        return passed


_PASSED_MAX = 64
_PASSED_LEN = 1024


_HEADER_KEYS: dict[bytes, tuple[bytes, bytes, bytes]] = {}


def header_key(name: bytes) -> tuple[bytes, bytes, bytes]:
    """(`x_foo`, the length of `HTTP_X_FOO`, `HTTP_X_FOO`) for the header `X-Foo`; cached per
    worker (header names repeat; at most 4096 names)."""
    key = _HEADER_KEYS.get(name)
    if key is None:
        low = name.lower().replace(b"-", b"_")
        param = b"HTTP_" + low.upper()
        key = (low, length_bytes(len(param)), param)
        if len(_HEADER_KEYS) < 4096:
            _HEADER_KEYS[name] = key
    return key
