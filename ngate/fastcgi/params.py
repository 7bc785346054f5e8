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

from ngate.fastcgi.variables import _fastcgi_script_name as _SCRIPT_NAME
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


def getter(template: Template, conf):
    """What reads a fastcgi_param's value in the location `conf` (None: any): the variable's
    getter for a value of one variable, `prefix + value` for text and one variable (root's
    `$document_root$fastcgi_script_name` once folded), else the template's render; a getter
    made for the location where the registry's reads what the location already knows
    (_LOCATED: $fastcgi_script_name without fastcgi_split_path_info; $remote_user without an
    Authorization header). The made ones give the registry's value for a request in `conf`
    and fall back to it elsewhere."""
    parts = template.parts
    if len(parts) == 1 and parts[0].__class__ is not str:
        return _located(parts[0], conf)
    if len(parts) == 2 and parts[0].__class__ is str and parts[1].__class__ is not str:
        prefix = parts[0]
        if parts[1] is _SCRIPT_NAME and conf is not None \
                and conf.fastcgi.split_path_info is None:
            return _script_name(parts[1], conf, prefix)     # one call, not two
        get = _located(parts[1], conf)

        def prefixed(ctx):
            value = get(ctx)
            return prefix + value if value else prefix
        return prefixed
    return template.render


def _located(get, conf):
    make = _LOCATED.get(get)
    return get if make is None or conf is None else make(get, conf)


def _script_name(get, conf, prefix: str = ""):
    """$fastcgi_script_name (fastcgi/variables.py) of a location without
    fastcgi_split_path_info: $uri, and fastcgi_index after a `/`; after `prefix`."""
    if conf.fastcgi.split_path_info is not None:
        return get
    fc = conf.fastcgi       # what the value depends on: the same in every conf sharing it
    index = fc.index

    def script_name(ctx):
        c = ctx.conf    # (a location's bound conf is a copy of `conf` sharing its sections)
        if c is None or c.fastcgi is not fc:
            return prefix + get(ctx)
        uri = ctx.uri
        return prefix + uri + index if index and uri.endswith("/") else prefix + uri
    return script_name


def _remote_user(get, conf):
    """$remote_user (access/basic.py): none without an Authorization header."""
    def remote_user(ctx):
        hdr = ctx.hdr
        return get(ctx) if hdr and b"authorization" in hdr else None
    return remote_user


def _located_getters() -> dict:
    from ngate.access.basic import remote_user
    return {_SCRIPT_NAME: _script_name, remote_user: _remote_user}


_LOCATED = _located_getters()


class ParamsPlan:
    """`pieces`: per fastcgi_param with variables, (getter, the encoded pairs without variables
    before it + its name's length, its name, what an empty value sends: its name with a zero
    value length after the pairs before it, or for if_not_empty those pairs alone); `tail`: the
    pairs without variables after the last one. The getter is the variable's (str, or None:
    "not found"), a Template's render, or one made for the location (`getter`)."""
    __slots__ = ("pieces", "tail", "skip", "pass_headers", "passed")

    def __init__(self, items, skip: frozenset, pass_headers: bool, conf=None) -> None:
        pieces = []
        before = ""
        for item in items:
            if item[0] == STATIC:
                before += item[1].decode("latin-1")
                continue
            _, name, template, if_not_empty = item
            text = name.decode("latin-1")
            head = before + length_str(len(text))
            pieces.append((getter(template, conf), head, text,
                           before if if_not_empty else head + "\x00" + text))
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
        for get, head, name, empty in self.pieces:
            value = get(ctx)
            if value:
                n = len(value)
                extend((head, _LEN_STR[n] if n < 128 else length_str(n), name, value))
            else:
                append(empty)
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
