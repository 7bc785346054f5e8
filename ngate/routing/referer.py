"""nginx's referer module: `valid_referers` and $invalid_referer (ngx_http_referer_module.c).

$invalid_referer is "" for a valid Referer and "1" otherwise. With no valid_referers at the level
every request is valid. A missing Referer is valid with `none`; one that does not start with
"http://" or "https://" (or is shorter than "http://i.ru") is valid with `blocked`. Otherwise
the host (up to "/" or ":", lower-cased, at most 256 characters) is looked up among the exact
names, then the leading wildcards ("*.example.com", ".example.com"), then the trailing ones
("www.example.*"): a name given with a URI part ("example.org/uri") also needs the Referer's
path to start with it (case-sensitive). `server_names` adds the server's names (its regexes
tested against the host), and `~regex` entries (caseless) are tried on the Referer after its
scheme.
"""
from __future__ import annotations

from dataclasses import dataclass

from ngate.errors import ConfigError

_NO_URI = ""


@dataclass(frozen=True, slots=True)
class ValidReferers:
    none: bool
    blocked: bool
    server_names: bool
    exact: dict            # host -> uri prefix ("" for none)
    front: tuple           # (".example.com", uri), longest first
    back: tuple            # ("www.example.", uri), longest first
    regexes: tuple


class RefererBuilder:
    """The valid_referers of one level (several directives add up, as in nginx)."""

    def __init__(self, where) -> None:
        self.where = where
        self.none = self.blocked = self.server_names = False
        self.exact: dict = {}
        self.front: dict = {}
        self.back: dict = {}
        self.regexes: list = []

    def add(self, c, args, where) -> None:
        for arg in args:
            if not arg:
                raise ConfigError(f'invalid referer "{arg}"', where)
            if arg == "none":
                self.none = True
            elif arg == "blocked":
                self.blocked = True
            elif arg == "server_names":
                self.server_names = True
            elif arg.startswith("~"):
                if len(arg) == 1:
                    raise ConfigError(f'empty regex in "{arg}"', where)
                self.regexes.append(c.regex(arg[1:], where, caseless=True))
            else:
                self.add_name(arg, where)

    def add_name(self, arg: str, where) -> None:
        host, slash, uri = arg.partition("/")
        uri = slash + uri if slash else _NO_URI
        low = host.lower()
        if low.startswith("*."):
            table, key = self.front, low[1:]
        elif low.startswith(".") and len(low) > 1:
            table, key = self.front, low
            self.exact.setdefault(low[1:], uri)
        elif low.endswith(".*"):
            table, key = self.back, low[:-1]
        elif "*" in low or not low:
            raise ConfigError(f'invalid hostname or wildcard "{host}"', where)
        else:
            table, key = self.exact, low
        if key in table and table[key] != uri:
            raise ConfigError(f'conflicting parameter "{host}"', where)
        table[key] = uri

    def build(self) -> ValidReferers:
        if (self.none or self.blocked) and not (self.exact or self.front or self.back
                                                or self.server_names):
            raise ConfigError('the "none" or "blocked" referers are specified in the '
                              '"valid_referers" directive without any valid referer', self.where)
        return ValidReferers(
            none=self.none, blocked=self.blocked, server_names=self.server_names,
            exact=dict(self.exact),
            front=tuple(sorted(self.front.items(), key=lambda kv: -len(kv[0]))),
            back=tuple(sorted(self.back.items(), key=lambda kv: -len(kv[0]))),
            regexes=tuple(self.regexes))


def _lookup(vr: ValidReferers, host: str):
    """The URI prefix a host is valid with (exact, leading, trailing wildcard), or None."""
    uri = vr.exact.get(host)
    if uri is not None:
        return uri
    for suffix, uri in vr.front:
        if host.endswith(suffix) and len(host) > len(suffix):
            return uri
    for prefix, uri in vr.back:
        if host.startswith(prefix) and len(host) > len(prefix):
            return uri
    return None


def _server_name_match(names, host: str) -> bool:
    if host in names.exact:
        return True
    if any(host.endswith(s) and len(host) > len(s) for s in names.wildcard_front):
        return True
    if any(host.startswith(p) and len(host) > len(p) for p in names.wildcard_back):
        return True
    return any(rx.search(host) is not None for rx in names.regexes)


def invalid(ctx) -> str:
    """$invalid_referer for the request's current configuration."""
    vr = ctx.conf.valid_referers if ctx.conf is not None else None
    if vr is None:
        return ""
    ref = ctx.hdr.get(b"referer")
    if ref is None:
        return "" if vr.none else "1"
    low = ref[:8].lower()
    if len(ref) >= 11 and low.startswith(b"http://"):
        rest = ref[7:]
    elif len(ref) >= 11 and low.startswith(b"https://"):
        rest = ref[8:]
    else:
        return "" if vr.blocked else "1"
    end = len(rest)
    for i, ch in enumerate(rest):
        if ch in b"/:":
            end = i
            break
    if end > 256:
        return "1"
    host = rest[:end].decode("latin-1").lower()
    uri = _lookup(vr, host)
    if uri is None and vr.server_names and _server_name_match(ctx.server.names, host):
        uri = _NO_URI
    if uri is not None:
        if uri == _NO_URI:
            return ""
        slash = rest.find(b"/", end)
        path = rest[slash:] if slash >= 0 else b""
        return "" if path.startswith(uri.encode("latin-1")) else "1"
    if vr.regexes:
        text = rest.decode("latin-1")
        if any(rx.search(text) is not None for rx in vr.regexes):
            return ""
    return "1"


def valid_referers(c, lv, st) -> None:
    """The `valid_referers` handler: every directive of a level adds to the level's list."""
    builder = lv.vals.get("valid_referers")
    if builder is None:
        builder = lv.vals["valid_referers"] = RefererBuilder(st.where)
    builder.add(c, st.args, st.where)


VARIABLES = {"invalid_referer": invalid}
