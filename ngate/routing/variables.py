"""nginx variables: a registry of lazy getters, and templates compiled once at config time.

A getter is `f(ctx) -> str | None` (None: the variable is "not found", which renders as "").
Templates ("$scheme://$host$request_uri") compile to a tuple of parts; rendering is a join.
Values are str; bytes from the wire are latin-1 decoded (lossless) and re-encoded the same way.

Each module owns its variables: it has a table `VARIABLES = {"name": getter}` and, for families
of names, `PREFIXES = {"http_": make_getter}` (make_getter("user_agent") -> getter). The
registry is assembled once from the list of modules in ngate/http/modules.py (VARIABLE_MODULES,
nginx's preconfiguration where each module adds its variables); compiling a template looks its
names up there and binds the getters, so rendering never looks a name up.
"""
from __future__ import annotations

import re
from types import MappingProxyType
from typing import Callable

from ngate.errors import ConfigError

Getter = Callable[[object], "str | None"]

# `$1`..`$9` is one digit (nginx: `$12` is capture 1 and "2"); `${1}` and `$0` are names
_VAR_RE = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([1-9])|([A-Za-z0-9_]+))")


class Template:
    """A compiled value with variables. `render(ctx)` returns str."""
    __slots__ = ("text", "parts", "static", "_single")

    def __init__(self, text: str, parts: tuple) -> None:
        self.text = text
        self.parts = parts
        self.static = all(isinstance(p, str) for p in parts)
        self._single = parts[0] if len(parts) == 1 and not self.static else None

    def render(self, ctx) -> str:
        if self.static:
            return self.text
        if self._single is not None:
            v = self._single(ctx)
            return "" if v is None else v
        out = []
        for p in self.parts:
            if p.__class__ is str:
                out.append(p)
            else:
                v = p(ctx)
                if v:
                    out.append(v)
        return "".join(out)

    def __repr__(self) -> str:
        return f"Template({self.text!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Template) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


# ---------------------------------------------------------------- registry

class Registry:
    """The variables of a list of modules: `names` (name -> getter) and `prefixes` (prefix ->
    the maker of one name's getter), each defined by one module only."""
    __slots__ = ("names", "prefixes")

    def __init__(self, modules) -> None:
        names: dict[str, Getter] = {}
        prefixes: dict[str, Callable[[str], Getter]] = {}
        for module in modules:
            for table, into in ((getattr(module, "VARIABLES", None), names),
                                (getattr(module, "PREFIXES", None), prefixes)):
                for name, getter in (table or {}).items():
                    if name in into:
                        raise ValueError(f"variable {name!r} of {module.__name__} is "
                                         f"already defined")
                    into[name] = getter
        self.names = MappingProxyType(names)
        self.prefixes = MappingProxyType(prefixes)

    def __contains__(self, name: str) -> bool:
        return name in self.names

    def prefixed(self, name: str) -> Getter | None:
        for prefix, make in self.prefixes.items():
            if name.startswith(prefix):          # `$http_` too (an empty name, as nginx)
                return make(name[len(prefix):])
        return None

    def known(self, name: str) -> bool:
        """A name of a module's own, or a prefix's with something after it."""
        return name in self.names or any(name.startswith(p) and len(name) > len(p)
                                         for p in self.prefixes)


_REGISTRY: list = []

# changeable variables of a module that a `map` may define after their first use (names of
# variables the modules define are not user variables, so the map's block is bound here): the
# map's value when it has one, else the module's (userid.py: "")
_MAPPED_LATER = frozenset({"uid_reset"})


def registry() -> Registry:
    """The variables of every module, assembled on first use (the first config compiled, in
    the master before any worker starts) from ngate/http/modules.py's list, imported here and
    not at the top: that list's modules import this one."""
    if not _REGISTRY:
        from ngate.http.modules import VARIABLE_MODULES
        _REGISTRY.append(Registry(VARIABLE_MODULES))
    return _REGISTRY[0]


def lookup(name: str, user_vars: "UserVars | set[str] | frozenset[str]" = frozenset(),
           where=None) -> Getter:
    """The getter for `$name`. `user_vars` are the names made by `set`, `map`, ... (read from
    ctx.vars); a UserVars also carries the config's map-like blocks, which the getter binds."""
    if len(name) == 1 and name in "123456789":
        n = int(name)
        return lambda ctx: _capture(ctx, n)
    if name in user_vars:
        user = _user_getter(name, getattr(user_vars, "maps", _NO_MAPS))
        prefixed = registry().prefixed(name)
        return user if prefixed is None else _set_or(user, prefixed)
    reg = registry()
    if name in _MAPPED_LATER:
        return _set_or(_user_getter(name, getattr(user_vars, "maps", _NO_MAPS)), reg.names[name])
    g = reg.names.get(name) or reg.prefixed(name)
    if g is not None:
        return g
    raise ConfigError(f'unknown "{name}" variable', where)


def _set_or(user: Getter, prefixed: Getter) -> Getter:
    """`set $http_x ...` somewhere: the value set in this request, else the header (nginx's
    ngx_http_add_prefix_variable gives such a variable the prefix's getter)."""
    def get(ctx):
        v = user(ctx)
        return prefixed(ctx) if v is None else v
    return get


def compile_template(text: str, user_vars=frozenset(), where=None) -> Template:
    parts: list = []
    pos = 0
    for m in _VAR_RE.finditer(text):
        if m.start() > pos:
            parts.append(text[pos:m.start()])
        braced = m.group(1)
        if braced is not None and braced.isdigit():
            raise ConfigError(f'unknown "{braced}" variable', where)   # nginx: not a capture
        parts.append(lookup(braced or m.group(2) or m.group(3), user_vars, where))
        pos = m.end()
    if pos < len(text):
        parts.append(text[pos:])
    if "$" in text and not any(callable(p) for p in parts):
        # a lone "$" with nothing valid after it
        if re.search(r"\$(?![A-Za-z0-9_{])", text):
            raise ConfigError(f'invalid variable name in "{text}"', where)
    if not parts:
        parts = [""]
    return Template(text, tuple(parts))


def has_variables(text: str) -> bool:
    return _VAR_RE.search(text) is not None


# ---------------------------------------------------------------- user variables (set / map)

_NO_MAPS: dict = {}


class UserVars:
    """The variables one configuration makes (`set`, `map`, `geo`, `split_clients`, named
    captures): their names, found before anything compiles, and the map-like blocks by
    variable name, which the compiler fills as it reads them (a map may come after its use).
    A template compiled with it binds this config's blocks: two configs loaded in one process
    never see each other's maps. `getter(name)` is the runtime lookup by name (SSI's echo)."""
    __slots__ = ("names", "maps", "_getters")

    def __init__(self, names=frozenset(), maps: dict | None = None) -> None:
        self.names = frozenset(names)
        self.maps = {} if maps is None else maps
        self._getters: dict = {}

    def __contains__(self, name: str) -> bool:
        return name in self.names or name in self.maps

    def __iter__(self):
        return iter(self.names | self.maps.keys())

    def getter(self, name: str):
        """The getter for `$name` in this config, or None for an unknown variable."""
        g = self._getters.get(name)
        if g is None:
            try:
                g = lookup(name, self)
            except ConfigError:
                return None
            if len(self._getters) < 4096:
                self._getters[name] = g
        return g


def _user_getter(name: str, maps: dict) -> Getter:
    def get(ctx, name=name):
        vs = ctx.vars
        if vs is not None and name in vs:
            return vs[name]
        m = maps.get(name)
        if m is not None:
            evaluate = getattr(m, "evaluate", None)     # geo, split_clients
            if evaluate is not None:
                v = evaluate(ctx)
            else:
                from ngate.routing.maps import evaluate_map
                v = evaluate_map(m, ctx)
            if not m.volatile:
                if vs is None:
                    ctx.vars = vs = {}
                vs[name] = v
            return v
        return None
    return get


def _capture(ctx, n: int):
    caps = ctx.captures
    if n == 0:
        return caps[0] if caps else None
    if caps and n < len(caps):
        return caps[n]
    return None
