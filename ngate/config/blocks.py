"""Handlers of block directives (events, http, server, location, if, upstream, map, types) and
of the server-level `listen` / `server_name`. Each opens a Level (compile.py) and walks its block,
or, for map/types/upstream, builds its model object directly.
"""
from __future__ import annotations

import dataclasses

from ngate.config.model import IfCondition, MapBlock, Upstream
from ngate.config.servers import listen_display, parse_listen, parse_location_args
from ngate.config.upstreams import make_servers
from ngate.config.values import parse_number, parse_time
from ngate.errors import ConfigError

FILE_TESTS = ("-f", "!-f", "-d", "!-d", "-e", "!-e", "-x", "!-x")
COMPARISONS = ("=", "!=")
MATCHES = ("~", "~*", "!~", "!~*")


# ---------------------------------------------------------------- main structure

def events(c, lv, st):
    if c.events_seen:
        raise ConfigError('"events" directive is duplicate', st.where)
    c.events_seen = True
    ev = c.level("events", lv, st.where)
    c.walk(st.block, ev)
    lv.vals.update(ev.vals)


def http(c, lv, st):
    if c.http is not None:
        raise ConfigError('"http" directive is duplicate', st.where)
    c.http = c.level("http", lv, st.where)
    # upstream blocks first: a proxy_pass may name an upstream defined further down
    upstreams = [s for s in st.block if s.directive == "upstream"]
    c.walk(upstreams, c.http)
    c.walk([s for s in st.block if s.directive != "upstream"], c.http)


def server(c, lv, st):
    srv = c.level("server", lv, st.where)
    c.servers.append(srv)
    c.walk(st.block, srv)


def listen(c, lv, st):
    """nginx's ngx_http_add_listen, for each address (and each port of a range) in turn."""
    listens, sockopts = parse_listen(st.args, st.where)
    for lst in listens:
        shown = listen_display(lst)
        if any(other.key == lst.key for other in lv.listens):
            raise ConfigError(f"a duplicate listen {shown}", st.where)
        seen = c.listen_keys.setdefault(lst.key, {"options": False, "default": False})
        if sockopts:
            if seen["options"]:
                raise ConfigError(f"duplicate listen options for {shown}", st.where)
            seen["options"] = True
        if lst.default_server:
            if seen["default"]:
                raise ConfigError(f"a duplicate default server for {shown}", st.where)
            seen["default"] = True
        lv.listens.append(lst)


def server_name(c, lv, st):
    for name in st.args:
        lv.names.add(name, st.where)


def location(c, lv, st):
    modifier, pattern = parse_location_args(st.args, st.where)
    parent = lv if lv.ctx == "location" else None
    if parent is not None:
        _check_nesting(parent, modifier, pattern, st.where)
    loc = c.level("location", lv, st.where)
    loc.modifier, loc.pattern = modifier, pattern
    if modifier in ("~", "~*"):
        loc.regex = c.regex(pattern, st.where, caseless=modifier == "~*")
    elif modifier != "@":
        _check_duplicate(lv, modifier, pattern, st.where)
    lv.locations.append(loc)
    c.walk(st.block, loc)


def _check_nesting(parent, modifier: str, pattern: str, where) -> None:
    if parent.modifier == "=":
        raise ConfigError(f'location "{pattern}" cannot be inside the exact location '
                          f'"{parent.pattern}"', where)
    if parent.modifier == "@":
        raise ConfigError(f'location "{pattern}" cannot be inside the named location '
                          f'"{parent.pattern}"', where)
    if modifier == "@":
        raise ConfigError(f'named location "{pattern}" can be on the server level only', where)
    if modifier not in ("~", "~*") and not pattern.startswith(parent.pattern):
        raise ConfigError(f'location "{pattern}" is outside location "{parent.pattern}"', where)


def _check_duplicate(lv, modifier: str, pattern: str, where) -> None:
    exact = modifier == "="
    for other in lv.locations:
        if other.modifier in ("~", "~*", "@") or other.pattern != pattern:
            continue
        if (other.modifier == "=") == exact:
            raise ConfigError(f'duplicate location "{pattern}"', where)


# the methods limit_except knows (nginx's ngx_methods_names)
LIMIT_EXCEPT_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "MKCOL", "COPY", "MOVE",
                                  "OPTIONS", "PROPFIND", "PROPPATCH", "LOCK", "UNLOCK", "PATCH"})


def limit_except(c, lv, st):
    """The methods named are allowed (GET implies HEAD); any other method, unknown ones too,
    gets the block's configuration."""
    if lv.limit_except is not None:
        raise ConfigError('"limit_except" directive is duplicate', st.where)
    methods = set()
    for arg in st.args:
        if arg.upper() not in LIMIT_EXCEPT_METHODS:
            raise ConfigError(f'invalid method "{arg}"', st.where)
        methods.add(arg.upper())
    if "GET" in methods:
        methods.add("HEAD")
    lim = c.level("limit_except", lv, st.where)
    lim.methods = frozenset(methods)
    lv.limit_except = lim
    c.walk(st.block, lim)


def if_block(c, lv, st):
    cond = _condition(c, st)
    sub = c.level("sif" if lv.ctx in ("server", "sif") else "lif", lv, st.where)
    sub.condition = cond
    lv.ops.append(sub)
    c.walk(st.block, sub)


def _condition(c, st) -> IfCondition:
    args = st.args
    first = args[0]
    if first.startswith("$") and len(first) > 1:
        left = c.template(first, st.where)
        if len(args) == 1:
            return IfCondition("var", left)
        if len(args) != 3:
            raise ConfigError(f'invalid condition "{first}"', st.where)
        op, right = args[1], args[2]
        if op in COMPARISONS:
            return IfCondition(op, left, c.template(right, st.where))
        if op in MATCHES:
            return IfCondition(op, left, c.regex(right, st.where, caseless=op.endswith("*")))
        raise ConfigError(f'unexpected "{op}" in condition', st.where)
    if first in FILE_TESTS and len(args) == 2:
        return IfCondition(first, c.template(args[1], st.where))
    raise ConfigError(f'invalid condition "{first}"', st.where)


# ---------------------------------------------------------------- upstream

def upstream(c, lv, st):
    name = st.args[0]
    if name.lower() in c.upstreams:
        raise ConfigError(f'duplicate upstream "{name}"', st.where)
    ups = c.level("upstream", lv, st.where)
    ups.servers, ups.balancer, ups.hash_key = [], "round_robin", None
    c.walk(st.block, ups)
    if not ups.servers:
        raise ConfigError("no servers are inside upstream", st.where)
    v = ups.vals
    servers = tuple(dataclasses.replace(s, slot=i) for i, s in enumerate(ups.servers))
    zone = v.get("zone")
    if zone is not None:
        zone = c.upstream_zones.add(*zone)
    c.upstreams[name.lower()] = Upstream(
        name=name, servers=servers, balancer=ups.balancer, hash_key=ups.hash_key,
        keepalive=v.get("keepalive", 0), keepalive_timeout=v.get("keepalive_timeout", 60.0),
        keepalive_requests=v.get("keepalive_requests", 1000), where=st.where,
        keepalive_time=v.get("keepalive_time", 3600.0),
        zone=zone, counts_conns=ups.balancer in ("least_conn", "random_two") or any(
            s.max_conns for s in servers))


def upstream_server(c, lv, st):
    params: dict = {}
    for arg in st.args[1:]:
        params.update(_server_param(arg, st.where))
    lv.servers.extend(make_servers(st.args[0], st.where, **params))


def _server_param(arg: str, where) -> dict:
    name, eq, value = arg.partition("=")
    try:
        if eq and name == "weight" and parse_number(value) > 0:
            return {"weight": parse_number(value)}
        if eq and name == "max_fails":
            return {"max_fails": parse_number(value)}
        if eq and name == "fail_timeout":
            return {"fail_timeout": parse_time(value, allow_ms=False)}
        if eq and name == "max_conns":
            return {"max_conns": parse_number(value)}
    except ValueError:
        pass
    if not eq and arg in ("backup", "down"):
        return {arg: True}
    raise ConfigError(f'invalid parameter "{arg}"', where)


def balancer(c, lv, st):
    lv.balancer = st.directive
    if st.directive == "hash":
        if len(st.args) == 2 and st.args[1] != "consistent":
            raise ConfigError(f'invalid parameter "{st.args[1]}"', st.where)
        lv.hash_key = c.template(st.args[0], st.where)
        if len(st.args) == 2:
            lv.balancer = "hash_consistent"
    elif st.directive == "random" and st.args:
        # random [two [least_conn]]
        if st.args[0] != "two":
            raise ConfigError(f'invalid parameter "{st.args[0]}"', st.where)
        if len(st.args) == 2 and st.args[1] != "least_conn":
            raise ConfigError(f'invalid parameter "{st.args[1]}"', st.where)
        lv.balancer = "random_two"


# ---------------------------------------------------------------- map and types

def map_block(c, lv, st):
    src, var = st.args
    if not var.startswith("$") or len(var) < 2:
        raise ConfigError(f'invalid variable name "{var[1:] if var.startswith("$") else var}"',
                          st.where)
    name = var[1:]
    if name in c.maps:
        raise ConfigError(f'the duplicate "{name}" variable', st.where)
    m = _MapBuilder(c, st)
    for entry in st.block:
        m.add(entry)
    c.maps[name] = m.build(name)


def _var_name(var: str, where) -> str:
    if not var.startswith("$") or len(var) < 2:
        raise ConfigError(f'invalid variable name "{var}"', where)
    return var[1:]


def geo_block(c, lv, st):
    """geo [$source] $name { ... } (routing/geo.py); like map, a variable of c.maps."""
    from ngate.routing.geo import GeoBuilder
    source = None
    if len(st.args) == 2:
        source = c.template("$" + _var_name(st.args[0], st.where), st.where)
    name = _var_name(st.args[-1], st.where)
    g = GeoBuilder(source)
    for entry in st.block:
        if entry.block is not None:
            raise ConfigError('unexpected "{"', entry.where)
        g.add([entry.directive] + entry.args, entry.where)
    c.maps[name] = g.build()


def split_clients_block(c, lv, st):
    """split_clients $source $name { N% value; * value; } (routing/split_clients.py)."""
    from ngate.routing import split_clients
    source = c.template(st.args[0], st.where)
    name = _var_name(st.args[1], st.where)
    entries = []
    for entry in st.block:
        if entry.block is not None:
            raise ConfigError('unexpected "{"', entry.where)
        if len(entry.args) != 1:
            raise ConfigError("invalid number of the split_clients parameters", entry.where)
        entries.append((entry.directive, entry.args[0], entry.where))
    c.maps[name] = split_clients.build(source, entries)


class _MapBuilder:
    def __init__(self, c, st) -> None:
        self.c, self.st = c, st
        self.hostnames = self.volatile = False
        self.default = None
        self.exact: dict = {}
        self.regexes: list = []
        self.front: list = []
        self.back: list = []

    def add(self, entry) -> None:
        words = [entry.directive] + entry.args
        if entry.block is not None:
            raise ConfigError('unexpected "{"', entry.where)
        if len(words) == 1 and words[0] in ("hostnames", "volatile"):
            setattr(self, words[0], True)
            return
        if len(words) != 2:
            raise ConfigError("invalid number of the map parameters", entry.where)
        key, value = words
        tpl = self.c.template(value, entry.where)
        if key == "default":
            self._once("default", entry)
            self.default = tpl
        elif key.startswith("~"):
            caseless = key.startswith("~*")
            rx = self.c.regex(key[2:] if caseless else key[1:], entry.where, caseless)
            self.regexes.append((rx, tpl))
        else:
            self._plain(key.removeprefix("\\"), tpl, entry)

    def _plain(self, key: str, tpl, entry) -> None:
        low = key.lower()
        if self.hostnames and low.startswith(("*.", ".")) and len(low) > 1:
            self.front.append((low[1:] if low.startswith("*") else low, tpl))
            if low.startswith("."):
                self.exact.setdefault(low[1:], tpl)     # ".example.com" also matches example.com
        elif self.hostnames and low.endswith(".*"):
            self.back.append((low[:-1], tpl))
        else:
            self._once(low, entry)
            self.exact[low] = tpl

    def _once(self, key: str, entry) -> None:
        if key in self.exact or (key == "default" and self.default is not None):
            raise ConfigError(f'conflicting parameter "{key}"', entry.where)

    def build(self, name: str) -> MapBlock:
        longest = lambda kv: -len(kv[0])  # noqa: E731
        return MapBlock(source=self.c.template(self.st.args[0], self.st.where), variable=name,
                        default=self.default, exact=self.exact, regexes=tuple(self.regexes),
                        hostnames=self.hostnames, wild_front=tuple(sorted(self.front, key=longest)),
                        wild_back=tuple(sorted(self.back, key=longest)), volatile=self.volatile)


def types(c, lv, st):
    table = lv.vals.setdefault("types", {})
    for entry in st.block:
        if entry.block is not None or not entry.args:
            raise ConfigError(f'invalid number of arguments in "{entry.directive}" directive',
                              entry.where)
        for ext in entry.args:
            table[ext.lower()] = entry.directive
