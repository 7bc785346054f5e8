"""Virtual server selection (nginx's ngx_http_find_virtual_server) and Host validation.

Among the servers of one listen socket, for a validated host name:
1. an exact name; 2. the longest leading wildcard ("*.example.com", stored ".example.com");
3. the longest trailing wildcard ("www.example.*", stored "www.example."); 4. the first regex in
config order; else the default server. When several servers give the same name, the first one
in config order has it (nginx warns "conflicting server name" and ignores the others).

A leading wildcard only matches names with at least one more label. nginx's ".example.com" form
also matches "example.com" itself: the config compiler adds "example.com" to `exact` for it
(equivalent, because nginx refuses the same bare name in another server as a conflict).
"""
from __future__ import annotations

import re

_CACHE_MAX = 1024
# The common Host: labels of letters, digits and "-", an optional numeric port.
_PLAIN_HOST = re.compile(rb"([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)(?::[0-9]*)?")


class ServerSelector:
    __slots__ = ("default", "exact", "front", "back", "regexes", "cache", "routes")

    def __init__(self, default_server, servers) -> None:
        self.default = default_server
        self.exact: dict = {}
        self.front: dict = {}
        self.back: dict = {}
        regexes = []
        for srv in servers:
            names = srv.names
            for name in names.exact:
                self.exact.setdefault(name, srv)
            for name in names.wildcard_front:
                self.front.setdefault(name, srv)
            for name in names.wildcard_back:
                self.back.setdefault(name, srv)
            regexes.extend((rx, srv) for rx in names.regexes)
        self.regexes = tuple(regexes)
        self.cache: dict = {}
        self.routes: dict = {}      # http/phases.py: Host -> {target: its route (_route)}

    def select(self, host: str | None):
        """The server for `host` (normalize_host's result). No host (HTTP/1.0 without Host) looks
        up the name "" as nginx does: `server_name ""`, or a server without server_name."""
        if not host:
            return self.exact.get("", self.default)
        srv = self.cache.get(host)
        if srv is None:
            srv = self._find(host) or self.default
            if len(self.cache) >= _CACHE_MAX:
                self.cache.clear()
            self.cache[host] = srv
        return srv

    def _find(self, host: str):
        srv = self.exact.get(host)
        if srv is not None:
            return srv
        if self.front:
            dot = host.find(".", 1)
            while dot > 0:
                srv = self.front.get(host[dot:])
                if srv is not None:
                    return srv
                dot = host.find(".", dot + 1)
        if self.back:
            dot = host.rfind(".", 0, len(host) - 1)
            while dot > 0:
                srv = self.back.get(host[:dot + 1])
                if srv is not None:
                    return srv
                dot = host.rfind(".", 0, dot)
        for rx, srv in self.regexes:
            if rx.search(host) is not None:
                return srv
        return None

    def named(self, host: str | None):
        """The server whose server_name matches `host`; None when none does (no default)."""
        return self._find(host) if host else None


_HOSTS: dict = {}


def normalize_host(raw: bytes) -> str | None:
    """nginx's ngx_http_validate_host: the lower-cased host without port and trailing dot, or
    None for an invalid one (400): empty, "..", "/", NUL, controls, space or DEL."""
    try:
        return _HOSTS[raw]
    except KeyError:
        pass
    host = _validate_host(raw)
    if len(_HOSTS) >= _CACHE_MAX:
        _HOSTS.clear()
    _HOSTS[raw] = host
    return host


def _validate_host(raw: bytes) -> str | None:
    m = _PLAIN_HOST.fullmatch(raw)
    if m is not None:
        return m.group(1).lower().decode("ascii")
    host_len = len(raw)
    if not host_len:
        return None
    dot_pos = -2
    in_literal = False
    cut = False
    for i, ch in enumerate(raw):
        if ch == 0x2e:                      # "."
            if dot_pos == i - 1:
                return None
            dot_pos = i
        elif ch == 0x3a:                    # ":"
            if not cut and not in_literal:
                host_len = i
                cut = True
        elif ch == 0x5b:                    # "["
            if i == 0:
                in_literal = True
        elif ch == 0x5d:                    # "]"
            if in_literal and not cut:
                host_len = i + 1
                in_literal = False
                cut = True
        elif ch <= 0x20 or ch == 0x7f or ch == 0x2f:
            return None
    if dot_pos == host_len - 1:
        host_len -= 1
    if host_len <= 0:
        return None
    return raw[:host_len].lower().decode("latin-1")
