"""proxy_pass URLs, `upstream` server addresses, and their resolution at load time.

Names are resolved once, at load, with getaddrinfo (nginx does the same for names written in
the config). A proxy_pass to a host that is not an `upstream` block makes an implicit group of
all the host's addresses, shared by every proxy_pass naming the same host:port.
It also parses what the upstream module shares between proxy and FastCGI: *_next_upstream,
*_ignore_headers, and `zone` in an upstream block.
"""
from __future__ import annotations

import socket

from ngate.config.model import ProxyPass, Upstream, UpstreamServer
from ngate.config.values import is_number, parse_size
from ngate.errors import ConfigError

DEFAULT_PORTS = {"http": 80, "https": 443}


def split_host_port(hostport: str, kind: str, where) -> tuple[str, int | None]:
    """`host`, `host:port`, `[::1]:port` -> (host, port or None). kind names the directive
    for the error (`upstream` or `listen`)."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ConfigError(f'invalid host in "{hostport}"', where)
        host, rest = hostport[1:end], hostport[end + 1:]
        if rest and not rest.startswith(":"):
            raise ConfigError(f'invalid host in "{hostport}"', where)
        port_text = rest[1:] if rest else None
    elif ":" in hostport:
        host, _, port_text = hostport.rpartition(":")
    else:
        host, port_text = hostport, None
    if port_text is None:
        return host, None
    if not is_number(port_text) or not 0 < int(port_text.lstrip("0")[:6] or "0") < 65536:
        raise ConfigError(f'invalid port in {kind} "{hostport}"', where)
    return host, int(port_text)


def resolve(host: str, port: int, where) -> list[tuple[str, int]]:
    """All addresses of host, in resolver order, without duplicates."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError):       # ValueError: a NUL byte; UnicodeError is one too
        raise ConfigError(f'host not found in upstream "{host}"', where) from None
    out: list[tuple[str, int]] = []
    for info in infos:
        addr = (info[4][0], port)
        if addr not in out:
            out.append(addr)
    return out


def addr_name(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def make_servers(address: str, where, **params) -> list[UpstreamServer]:
    """An upstream `server` address (`host[:port]` or `unix:/path`) -> one entry per address."""
    if address.startswith("unix:"):
        path = address[5:]
        if not path:
            raise ConfigError(f'no path in the unix domain socket in upstream "{address}"', where)
        return [UpstreamServer(host="", port=0, unix=path, name=address, **params)]
    host, port = split_host_port(address, "upstream", where)
    if not host:
        raise ConfigError(f'no host in upstream "{address}"', where)
    return [UpstreamServer(host=h, port=p, name=addr_name(h, p), **params)
            for h, p in resolve(host, port or 80, where)]


def parse_proxy_pass(url: str, where, upstreams: dict, implicit: dict,
                     location_prefix: str = "") -> ProxyPass:
    """A static proxy_pass URL (no variables) -> ProxyPass with its upstream group."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in DEFAULT_PORTS:
        raise ConfigError("invalid URL prefix", where)
    if rest[:5].lower() == "unix:":
        return _unix_proxy_pass(scheme, rest, where, implicit, location_prefix)
    slash = rest.find("/")
    hostport, uri = (rest, None) if slash < 0 else (rest[:slash], rest[slash:])
    host, port = split_host_port(hostport, "upstream", where)
    if not host:
        raise ConfigError(f'no host in upstream "{hostport}"', where)
    group = upstreams.get(host.lower()) if port is None else None
    if group is None:
        key = (host.lower(), port or DEFAULT_PORTS[scheme])
        group = implicit.get(key)
        if group is None:
            servers = make_servers(addr_name(*key) if ":" not in host else f"[{host}]:{key[1]}", where)
            group = implicit[key] = Upstream(name=hostport, servers=tuple(servers),
                                             implicit=True, where=where)
    return ProxyPass(scheme=scheme, upstream=group, host_header=hostport, uri=uri,
                     location_prefix=location_prefix, where=where)


def _unix_proxy_pass(scheme: str, rest: str, where, implicit: dict,
                     location_prefix: str) -> ProxyPass:
    """`http://unix:/path/to.sock:/uri` (the URI part after the second colon is optional)."""
    path, colon, uri = rest[5:].partition(":")
    if not path:
        raise ConfigError(f'no path in the unix domain socket in upstream "{rest}"', where)
    key = ("unix", path)
    group = implicit.get(key)
    if group is None:
        server = UpstreamServer(host="", port=0, unix=path, name="unix:" + path)
        group = implicit[key] = Upstream(name="unix:" + path, servers=(server,),
                                         implicit=True, where=where)
    return ProxyPass(scheme=scheme, upstream=group, host_header="localhost",
                     uri=uri if colon and uri else None, location_prefix=location_prefix,
                     where=where, ssl_host=path)


# ---------------------------------------------------------------- upstream directives
# proxy_next_upstream / fastcgi_next_upstream, *_ignore_headers, `zone` in an upstream block
NEXT_UPSTREAM = frozenset({"error", "timeout", "invalid_header", "http_500", "http_502",
                           "http_503", "http_504", "http_403", "http_404", "http_429",
                           "non_idempotent", "off"})


IGNORE_HEADERS = ("X-Accel-Redirect", "X-Accel-Expires", "X-Accel-Limit-Rate",
                  "X-Accel-Buffering", "X-Accel-Charset", "Expires", "Cache-Control",
                  "Set-Cookie", "Vary")


def ignore_headers(c, st) -> frozenset:
    """proxy_ignore_headers / fastcgi_ignore_headers: the names nginx knows (any case)."""
    known = {n.lower(): n for n in IGNORE_HEADERS}
    out = set()
    for arg in st.args:
        if arg.lower() not in known:
            raise ConfigError(f'invalid value "{arg}"', st.where)
        out.add(arg.lower().encode())
    return frozenset(out)


def upstream_zone(c, st) -> tuple:
    """`zone name [size]` in an upstream block: (name, size; 0 when declared elsewhere). The
    peers' state is then shared by the workers (upstream/shared_state.py)."""
    size_ = 0
    if not st.args[0]:
        raise ConfigError(f'invalid zone name "{st.args[0]}"', st.where)
    if len(st.args) == 2:
        try:
            size_ = parse_size(st.args[1])
        except ValueError:
            size_ = -1
        if size_ < 0:
            raise ConfigError(f'invalid zone size "{st.args[1]}"', st.where)
        if size_ < 8 * 4096:
            raise ConfigError(f'zone "{st.args[0]}" is too small', st.where)
    return st.args[0], size_, st.where


def next_upstream(c, st) -> frozenset:
    for arg in st.args:
        if arg not in NEXT_UPSTREAM:
            raise ConfigError(f'invalid value "{arg}"', st.where)
    return frozenset(a for a in st.args if a != "off")
