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
    "not found"), a Template's render, or one made for the location (`getter`).

    `build(ctx)`: the request's PARAMS content, by the location's own function (compile_build:
    the pieces written out, common variables read inline); `build_pairs(ctx)` is the same by
    the loop over the pieces, the general way it follows."""
    __slots__ = ("pieces", "tail", "skip", "pass_headers", "passed", "build")

    def __init__(self, items, skip: frozenset, pass_headers: bool, conf=None) -> None:
        pieces = []
        sources = []    # per piece, its template (compile_build reads inline what it can)
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
            sources.append((template, if_not_empty))
            before = ""
        self.pieces = tuple(pieces)
        self.tail = before
        self.skip = skip
        self.pass_headers = pass_headers
        self.passed = {}        # client header lists -> their HTTP_* pairs (bounded)
        self.build = compile_build(self, sources, conf)

    def build_pairs(self, ctx) -> bytes:
        """The request's PARAMS content, piece by piece (compile_build's function writes this
        out for the location)."""
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


# ---------------------------------------------------------------- the block as one function

def _inline_table() -> dict:
    """Getters a compiled block reads inline (compile_build): the registry's getter -> the
    statements that set `v` to what it returns (observability/log_format.py's _INLINE does the
    same for a log line; tests/unit/test_fastcgi_params.py checks each against its getter)."""
    from ngate.access.basic import remote_user
    names = registry().names
    table = {
        "args": ["v = ctx.args or None"],
        "request_method": ["v = ctx.main", "v = ctx.method if v is None else v.method"],
        "content_type": ["v = ctx.hdr.get(b'content-type')",
                         "if v is not None: v = v.decode('latin-1')"],
        "content_length": ["v = ctx.hdr.get(b'content-length')",
                           "if v is not None: v = v.decode('latin-1')",
                           "else:",
                           "    v = ctx.content_length_in",
                           "    if v is not None: v = str(v)"],
        "request_uri": ["v = ctx.request_uri"],
        "uri": ["v = ctx.uri"],
        "server_protocol": ["v = f'HTTP/{ctx.http_version}'"],
        "scheme": ["v = ctx.conn.scheme"],
        "https": ["v = 'on' if ctx.conn.scheme == 'https' else ''"],
        "remote_addr": ["v = ctx.conn.remote_addr"],
        "remote_port": ["v = ctx.conn.remote_port"],
        "server_addr": ["v = ctx.conn.server_addr"],
        "server_port": ["v = ctx.conn.server_port"],
        "server_name": ["v = ctx.server", "v = v.names.first if v is not None else ''"],
        "host": ["v = ctx.host"],
    }
    inline = {names[name]: src for name, src in table.items()}
    # _remote_user's rule: none without an Authorization header
    inline[remote_user] = ["v = ctx.hdr",
                           "v = _REMOTE_USER(ctx) if v and b'authorization' in v else None"]
    return inline


_INLINE: dict = {}


def _value_source(get, conf, env: dict) -> list:
    """Statements setting `v` to the value of the getter `get` (a template's one variable)."""
    if not _INLINE:
        _INLINE.update(_inline_table())
    src = _INLINE.get(get)
    if src is not None:
        return src
    if get is _SCRIPT_NAME and conf is not None and conf.fastcgi.split_path_info is None:
        # _script_name's rule (its value depends on the fastcgi section only)
        env["_FC"] = conf.fastcgi
        index = conf.fastcgi.index
        return ["c = ctx.conf",
                "if c is not None and c.fastcgi is _FC:",
                "    v = ctx.uri"] + (
               [f"    if v.endswith('/'): v = v + {index!r}"] if index else []) + [
                "else:",
                "    v = _SCRIPT_NAME(ctx)"]
    return _call_source(get, env)


def _call_source(get, env: dict) -> list:
    name = "_g%d" % len(env)
    env[name] = get
    return [f"v = {name}(ctx)"]


_PAIR_HEADS: dict[str, list] = {}


def pair_heads(name: str) -> list:
    """The heads of the pairs named `name` by value length: [n] is the name's length, n and the
    name (a value's length below 128 is one character), made when first needed (_pair_head);
    one list per name in the worker (at most 128 heads each)."""
    heads = _PAIR_HEADS.get(name)
    if heads is None:
        heads = _PAIR_HEADS[name] = [None] * 128
    return heads


def _pair_head(heads: list, name: str, value: str) -> str:
    n = len(value)
    head = heads[n] = length_str(len(name)) + _LEN_STR[n] + name
    return head


def compile_build(plan: ParamsPlan, sources: list, conf):
    """`build(ctx)`: plan.build_pairs written out as one function for the location (made when
    the config is compiled): per piece its value read inline where the getter is a common one
    (`_INLINE`, or $fastcgi_script_name as _script_name reads it), else by a call (the same
    getter build_pairs calls: `getter`), for text and one variable the text before it; then
    the pieces and the text between them in one join, a pair's name length, value length and
    name one string of pair_heads (a value below 128 characters: an IndexError is a longer
    one, and the join is made again with the lengths as build_pairs encodes them); then the
    client's headers as build_pairs adds them."""
    env = {"_L": _LEN_STR, "_ls": length_str, "_SCRIPT_NAME": _SCRIPT_NAME, "_ph": _pair_head,
           "_passed_get": plan.passed.get, "_http_pairs": plan._http_pairs}
    from ngate.access.basic import remote_user
    env["_REMOTE_USER"] = remote_user
    body = []
    short = []      # the join's items, every length below 128
    items = []      # the same with any length
    for i, ((get, head, name, empty), (template, if_not_empty)) in enumerate(
            zip(plan.pieces, sources)):
        parts = template.parts
        if len(parts) == 1 and parts[0].__class__ is not str:
            src = _value_source(parts[0], conf, env)
        elif len(parts) == 2 and parts[0].__class__ is str and parts[1].__class__ is not str:
            src = _value_source(parts[1], conf, env) + [
                f"v = {parts[0]!r} + v if v else {parts[0]!r}"]
        else:
            src = _call_source(get, env)
        if if_not_empty:        # the pair, or nothing: the text before it either way
            body += src + ["if v:",
                           "    n = len(v)",
                           f"    s{i} = {head[len(empty):]!r} + (_L[n] if n < 128 else"
                           f" _ls(n)) + {name!r} + v",
                           "else:",
                           f"    s{i} = ''"]
            short += [repr(empty), f"s{i}"]
            items += [repr(empty), f"s{i}"]
            continue
        if len(src) == 1 and src[0].startswith("v = "):
            body.append(f"v{i} = ({src[0][4:]}) or ''")
        else:
            body += src + [f"v{i} = v or ''"]
        env[f"_H{i}"] = pair_heads(name)
        short += [repr(head[:len(head) - len(length_str(len(name)))]),
                  f"_H{i}[len(v{i})] or _ph(_H{i}, {name!r}, v{i})", f"v{i}"]
        items += [repr(head), f"(_L[n] if (n := len(v{i})) < 128 else _ls(n))", repr(name),
                  f"v{i}"]
    short.append(repr(plan.tail))
    items.append(repr(plan.tail))
    body += ["try:",
             "    data = ''.join((%s))" % "".join(x + ", " for x in short if x != "''"),
             "except IndexError:",
             "    data = ''.join((%s))" % "".join(x + ", " for x in items if x != "''"),
             "data = data.encode('latin-1', 'replace')"]
    if plan.pass_headers:
        body += ["headers = tuple(ctx.headers)",
                 "passed = _passed_get(headers)",
                 "if passed is None:",
                 "    passed = _http_pairs(headers)",
                 "return data + passed"]
    else:
        body.append("return data")
    src = "def build(ctx):\n" + "".join("    " + line + "\n" for line in body)
    exec(compile(src, "<fastcgi_params>", "exec"), env)
    return env["build"]


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
