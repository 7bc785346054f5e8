"""Which listen socket, which server and which location, and why: the same tables the router
uses (config.by_listen, ServerSelector, the LocationMatcher of each level), walked in nginx's
order while writing down every candidate. The answers are checked against the router's own
`select()` and `find_location()`.
"""
from __future__ import annotations

import ipaddress

from ngate.config.servers import listen_display
from ngate.supervisor.listeners import config_listens
from ngate.routing.locations import LocationMatcher, find_location
from ngate.routing.servers import ServerSelector

KINDS = {"": "prefix", "=": "exact", "^~": "prefix", "~": "regex", "~*": "regex", "@": "named"}


class NotRouted(Exception):
    """The request never reaches a server (no listen socket for it)."""


def where(obj) -> str:
    w = getattr(obj, "where", None)
    return str(w) if w is not None else "?"


def describe_location(loc) -> str:
    """E.g. `prefix /api at nginx.conf:12`, `regex ~ \\.php$ at nginx.conf:20`."""
    mod = loc.modifier
    shown = f"{mod} {loc.pattern}" if mod and mod != "@" else loc.pattern
    return f"{KINDS[mod]} {shown} at {where(loc)}"


# ---------------------------------------------------------------- listen

def listens_of(config, key) -> list:
    return [lst for srv in config.servers for lst in srv.listens if lst.key == key]


def choose_listen(config, req) -> tuple:
    """(listen key, why) for the request's connection."""
    keys = [k for k in config.by_listen if k[0] != "unix"]
    if req.host is None:
        if not config.by_listen:
            raise NotRouted("the configuration has no server")
        key = next(iter(config.by_listen))
        return key, "the first listen socket of the configuration (bare /path)"
    port = req.port
    on_port = [k for k in keys if k[1] == port]
    if not on_port:
        have = ", ".join(listen_display(listens_of(config, k)[0]) for k in keys) or "none"
        raise NotRouted(f"no listen socket on port {port}: the connection is refused "
                        f"(listening: {have})")
    host = "127.0.0.1" if req.host == "localhost" else req.host
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        addr = None
    wild = [k for k in on_port if _is_wildcard(k[0])]
    if addr is not None:
        exact = [k for k in on_port if not _is_wildcard(k[0]) and _same_addr(k[0], addr)]
        if exact:
            if exact[0] in config_listens(config) or not wild:
                return exact[0], f"bound to {host} itself"
            return exact[0], (f"{host}'s own listen, its connections accepted on the wildcard "
                              f"socket of port {port} (no `bind` or socket option of its own)")
        wild = [k for k in wild if (":" in k[0]) == (addr.version == 6)] or wild
        if wild:
            return wild[0], f"the wildcard address of port {port} ({host} has no listen of its own)"
        raise NotRouted(f"no listen socket accepts {host}:{port}: the connection is refused")
    if wild:
        return wild[0], f"the wildcard address of port {port}"
    note = "the only" if len(on_port) == 1 else "the first of several"
    return on_port[0], (f"{note} listen socket on port {port}, assuming {req.host} resolves to "
                        f"its address (names are not resolved here)")


def _is_wildcard(host: str) -> bool:
    return host in ("0.0.0.0", "::", "[::]", "*")


def _same_addr(host: str, addr) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")) == addr
    except ValueError:
        return False


# ---------------------------------------------------------------- server

def server_names(srv) -> str:
    n = srv.names
    names = sorted(x for x in n.exact if x) + ["*" + x for x in n.wildcard_front] \
        + [x + "*" for x in n.wildcard_back] + ["~" + rx.pattern for rx in n.regexes]
    return " ".join(names) if names else '""'


def choose_server(config, key, host: str | None) -> tuple:
    """(server, why) as ngx_http_find_virtual_server picks it for a normalised host."""
    default, servers = config.by_listen[key]
    selector = ServerSelector(default, servers)
    srv, why = _find(selector, host) if host else (None, None)
    if srv is None:
        why = (f'no server_name matches "{host}": ' if host else "no host name: ") \
            + _default_reason(default, key)
        srv = default
    assert srv is selector.select(host), "explain disagrees with the server selector"
    return srv, why


def _find(sel: ServerSelector, host: str) -> tuple:
    srv = sel.exact.get(host)
    if srv is not None:
        return srv, f'exact name "{host}"'
    dot = host.find(".", 1)
    while dot > 0:
        srv = sel.front.get(host[dot:])
        if srv is not None:
            return srv, f'leading wildcard "*{host[dot:]}"'
        dot = host.find(".", dot + 1)
    dot = host.rfind(".", 0, len(host) - 1)
    while dot > 0:
        srv = sel.back.get(host[:dot + 1])
        if srv is not None:
            return srv, f'trailing wildcard "{host[:dot + 1]}*"'
        dot = host.rfind(".", 0, dot)
    for rx, srv in sel.regexes:
        if rx.search(host) is not None:
            return srv, f'regex "~{rx.pattern}" (the first matching regex in config order)'
    return None, None


def _default_reason(default, key) -> str:
    flagged = [lst for lst in default.listens if lst.key == key and lst.default_server]
    if flagged:
        return f"the default server (listen ... default_server at {where(flagged[0])})"
    return "the default server (the first server on this socket; none says default_server)"


# ---------------------------------------------------------------- location

class LocationTrace:
    """nginx's location search (routing/locations.py) with a note for every candidate."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def find(self, server, uri: str):
        """(location, captures), checked against the router's find_location."""
        self.notes = []
        m = server.matcher
        loc, caps, _ = self._level(m, uri, 0) if m is not None else (None, (), 3)
        if m is None:
            self.notes.append("the server has no locations")
        real, real_caps = find_location(server, uri)
        if real is not loc:
            self.notes.append("(explain's trace disagreed with the router; the router's answer "
                              "is shown)")
            loc, caps = real, real_caps
        return loc, caps

    def _note(self, depth: int, text: str) -> None:
        self.notes.append("  " * depth + text)

    def _level(self, m: LocationMatcher, uri: str, depth: int):
        entry = m.exact.get(uri)
        if entry is not None:
            self._note(depth, f"{describe_location(entry[0])}: exact match, the search stops")
            return entry[0], (), 0
        prefixes = sorted((e for p, e in m.prefix.items() if uri.startswith(p)),
                          key=lambda e: -len(e[0].pattern))
        entry = prefixes[0] if prefixes else None
        if entry is None or len(entry[0].pattern) != len(uri):
            redirect = m.auto_redirect.get(uri)
            if redirect is not None:
                self._note(depth, f"{describe_location(redirect[0])}: {uri} is its name without "
                                  "the trailing slash: 301 to the slash form")
                return redirect[0], (), 1
        loc, caps, rc, noregex = None, (), 3, False
        if entry is not None:
            loc, nested = entry
            rc = 2
            noregex = loc.modifier == "^~"
            self._note(depth, f"{describe_location(loc)}: the longest matching prefix"
                       + (" (^~: regexes are not checked)" if noregex else ""))
            for other, _ in prefixes[1:]:
                self._note(depth, f"{describe_location(other)}: matches too, but is shorter")
            if nested is not None:
                self._note(depth, f"inside {describe_location(loc)}:")
                nloc, ncaps, nrc = self._level(nested, uri, depth + 1)
                if nrc in (0, 1):
                    return nloc, ncaps, nrc
                if nloc is not None:
                    loc, caps = nloc, ncaps
        elif not m.regexes:
            self._note(depth, "no location matches")
        if noregex:
            for rloc, _ in m.regexes:
                self._note(depth, f"{describe_location(rloc)}: not checked (^~)")
            return loc, caps, rc
        return self._regexes(m, uri, depth, loc, caps, rc)

    def _regexes(self, m, uri, depth, loc, caps, rc):
        winner = None
        for rloc, nested in m.regexes:
            if winner is not None:
                self._note(depth, f"{describe_location(rloc)}: not tried (the first matching "
                                  "regex wins)")
                continue
            mo = rloc.regex.search(uri)
            if mo is None:
                self._note(depth, f"{describe_location(rloc)}: does not match")
                continue
            lost = f": wins over {describe_location(loc)}" if loc is not None else ""
            self._note(depth, f"{describe_location(rloc)}: matches{lost}")
            rcaps = (mo.group(0),) + mo.groups("")
            winner = (rloc, rcaps, 0)
            if nested is not None:
                self._note(depth, f"inside {describe_location(rloc)}:")
                nloc, ncaps, _ = self._level(nested, uri, depth + 1)
                if nloc is not None:
                    winner = (nloc, ncaps or rcaps, 0)
        if winner is not None:
            return winner
        if loc is None and m.regexes:
            self._note(depth, "no location matches")
        return loc, caps, rc
