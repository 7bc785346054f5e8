"""`resolver address ... [valid=time] [ipv6=on|off]` and `resolver_timeout`, compiled once
(ngx_resolver_create of nginx 1.22: `ipv4=` came in 1.23.1 and `status_zone=` is commercial, so
both are taken as addresses and fail as there: `host not found in resolver "ipv4=off"`).

Addresses are `ip`, `ip:port`, `[ipv6]:port` or a name resolved now (all its addresses); the
port defaults to 53. Each `resolver` directive is its own resolver with its own cache, shared by
the levels that inherit it; the worker's Resolver (client.py) hangs on `state`.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field

from ngate.config.model import WorkerState
from ngate.config.values import is_number, parse_time
from ngate.errors import ConfigError


@dataclass(frozen=True, slots=True, eq=False)
class ResolverConf:
    servers: tuple          # ((family, sockaddr, "127.0.0.1:53"), ...)
    valid: int = 0          # valid=: seconds an answer is used instead of its TTL (0: the TTL)
    ipv6: bool = True       # ask AAAA too
    state: WorkerState = field(default_factory=WorkerState, compare=False, repr=False)

    def runtime(self, loop):
        r = self.state.value
        if r is None:
            from ngate.resolver.client import Resolver
            r = self.state.value = Resolver(self, loop)
        return r


def parse_resolver(c, st) -> ResolverConf:
    valid, ipv6 = 0, True
    servers: list = []
    for arg in st.args:
        if arg.startswith("valid="):
            try:
                valid = int(parse_time(arg[6:], allow_ms=False))
            except ValueError:
                raise ConfigError(f"invalid parameter: {arg}", st.where) from None
            continue
        if arg.startswith("ipv6="):
            if arg[5:] not in ("on", "off"):
                raise ConfigError(f"invalid parameter: {arg}", st.where)
            ipv6 = arg[5:] == "on"
            continue
        servers.extend(_server(arg, st.where))
    if not servers:
        raise ConfigError("no name servers defined", st.where)
    return ResolverConf(tuple(servers), valid, ipv6)


def _server(arg: str, where) -> list:
    host, port = _split(arg, where)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None:
        addrs = [str(ip)]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except (OSError, ValueError):
            raise ConfigError(f'host not found in resolver "{arg}"', where) from None
        addrs = []
        for info in infos:
            if info[4][0] not in addrs:
                addrs.append(info[4][0])
    out = []
    for a in addrs:
        v6 = ":" in a
        text = f"[{a}]:{port}" if v6 else f"{a}:{port}"
        out.append((socket.AF_INET6 if v6 else socket.AF_INET, (a, port), text))
    return out


def _split(arg: str, where) -> tuple[str, int]:
    """ngx_parse_url's host and port (default 53) for a name server."""
    bad_host = ConfigError(f'invalid host in resolver "{arg}"', where)
    if arg[:5].lower() == "unix:" or "/" in arg or "?" in arg or "#" in arg:
        raise bad_host
    if arg.startswith("["):
        end = arg.find("]")
        if end < 0:
            raise bad_host
        host, rest = arg[1:end], arg[end + 1:]
        if rest and not rest.startswith(":"):
            raise bad_host
        port_text = rest[1:] if rest else None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise bad_host from None
    else:
        host, colon, port_text = arg.partition(":")
        if not colon:
            port_text = None
    if not host:
        raise ConfigError(f'no host in resolver "{arg}"', where)
    if port_text is None:
        return host, 53
    if not is_number(port_text) or not 0 < int(port_text[:6]) < 65536:
        raise ConfigError(f'invalid port in resolver "{arg}"', where)
    return host, int(port_text)

