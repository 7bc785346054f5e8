"""The realip module (ngx_http_realip_module): the client address from a trusted proxy.

Config: `set_real_ip_from` (addresses, CIDRs, host names resolved at load, `unix:`),
`real_ip_header` (X-Real-IP, X-Forwarded-For, proxy_protocol or any header),
`real_ip_recursive`. A level without `set_real_ip_from` inherits its parent's list; a level
whose merged list is empty compiles to `LocConf.realip = None` and costs nothing per request.

Per request, as nginx runs it in two phases: once after the server is chosen (POST_READ, with
the server's settings) and again before access checks (PREACCESS, the location's settings); the
first that finds an address wins and later runs do nothing. The new address replaces the
connection's ($remote_addr, $remote_port, $binary_remote_addr, allow/deny, the logs) until the
request is logged, then the connection's own comes back (nginx's pool cleanup).
`$realip_remote_addr` / `$realip_remote_port` keep the original.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass

from ngate.errors import ConfigError
from ngate.realip import addr as A

XREALIP, XFWD, PROXY, HEADER = "X-Real-IP", "X-Forwarded-For", "proxy_protocol", "header"


@dataclass(frozen=True, slots=True)
class RealIp:
    cidrs: tuple            # (family, net, mask); unix: (0, 0, 0)
    kind: str               # XREALIP | XFWD | PROXY | HEADER
    header: bytes           # lower-case name for HEADER (and x-real-ip)
    recursive: bool


# ---------------------------------------------------------------- config

def parse_from(c, st) -> list:
    """set_real_ip_from: -> list of CIDRs (a host name gives one per address)."""
    arg = st.args[0]
    if arg == "unix:":
        return [(0, 0, 0)]
    r = A.ptocidr(arg)
    if r is not None:
        cidr, exact = r
        if not exact:
            from ngate.observability import error_log
            error_log.warn(f"low address bits of {arg} are meaningless in {st.where}")
        return [cidr]
    try:
        infos = socket.getaddrinfo(arg, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise ConfigError(f'host not found in set_real_ip_from "{arg}"', st.where) from None
    out = []
    for family, *_, sockaddr in infos:
        a = A.parse_addr(sockaddr[0])
        if a is not None:
            cidr = (a[0], a[1], (1 << (32 if a[0] == 4 else 128)) - 1)
            if cidr not in out:
                out.append(cidr)
    return out


def parse_header(c, st) -> str:
    name = st.args[0]
    return name if name in (XREALIP, XFWD, PROXY) else name.lower()


def compile_conf(vals: dict) -> RealIp | None:
    """The merged level's RealIp, or None when no address is trusted."""
    cidrs = vals.get("set_real_ip_from")
    if not cidrs:
        return None
    header = vals.get("real_ip_header", XREALIP)
    kind = header if header in (XREALIP, XFWD, PROXY) else HEADER
    return RealIp(cidrs=tuple(cidrs), kind=kind,
                  header=b"x-real-ip" if kind == XREALIP else header.encode("latin-1"),
                  recursive=bool(vals.get("real_ip_recursive", False)))


# ---------------------------------------------------------------- per request

def apply(ctx, conf: RealIp) -> None:
    """ngx_http_realip_handler: set the client address from the header when the connection's
    address is trusted. Runs at most once per request (ctx.realip holds the original)."""
    if ctx.realip is not None:
        return
    conn = ctx.conn
    kind = conf.kind
    if kind == XFWD:
        values = [v.decode("latin-1") for n, v in ctx.headers if n.lower() == b"x-forwarded-for"]
        if not values:
            return
    elif kind == PROXY:
        pp = conn.proxy_protocol
        if pp is None or pp.src_addr is None:
            return
        values = [pp.src_addr]
    else:
        v = ctx.hdr.get(conf.header)
        if v is None:
            return
        values = [v.decode("latin-1")]
    found = A.forwarded_addr(A.from_text(conn.remote_addr), values, conf.cidrs, conf.recursive)
    if found is None:
        return
    new, port = found
    if kind == PROXY:
        port = conn.proxy_protocol.src_port
    ctx.realip = (conn.remote_addr, conn.remote_port)
    ctx.rare = True     # (http/context.py _GUARDED)
    conn.remote_addr = A.to_text(new)
    conn.remote_port = str(port) if port else ""


def restore(ctx) -> None:
    """The request is over: the connection's own address again (nginx's realip cleanup)."""
    conn = ctx.conn
    conn.remote_addr, conn.remote_port = ctx.realip


def remote_addr(ctx):
    """$realip_remote_addr: the address before realip changed it."""
    r = ctx.realip
    return r[0] if r is not None else ctx.conn.remote_addr


def remote_port(ctx):
    r = ctx.realip
    return r[1] if r is not None else ctx.conn.remote_port


VARIABLES = {"realip_remote_addr": remote_addr, "realip_remote_port": remote_port}
