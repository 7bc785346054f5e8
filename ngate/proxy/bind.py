"""proxy_bind: the local address of upstream connections, as nginx 1.22 sets it.

- parse_addr_port(text): ngx_parse_addr_port: "127.0.0.2", "127.0.0.2:8000", "::1", "[::1]:80"
  -> (family, host, port) (port 0: any), or None for what nginx declines.
- parse(c, st): the directive (ngx_http_upstream_bind_set_slot): `off` -> None, a value with
  variables -> Template, else the parsed address or `[emerg] invalid address`. `transparent`
  (IP_TRANSPARENT, which needs CAP_NET_ADMIN and TPROXY routing) is refused with an [emerg].
- local_address(ctx, value): the address of one request (ngx_http_upstream_set_local): an empty
  value binds nothing; an invalid one is logged ("invalid local address") and binds nothing.
- connect_bound(loop, peer, local): a connected non-blocking socket bound to `local`, as
  ngx_event_connect_peer does (IP_BIND_ADDRESS_NO_PORT when no port is given); a failed bind
  raises BindError (nginx: [crit] bind(...) failed, 500 without trying the next peer).
"""
from __future__ import annotations

import ipaddress
import socket

from ngate.errors import ConfigError
from ngate.observability import error_log

_IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


class BindError(OSError):
    """bind() of an upstream socket failed (nginx: 500, no next upstream)."""


def _parse_addr(text: str):
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if ip.version == 4 and text.count(".") != 3:
        return None
    return (socket.AF_INET if ip.version == 4 else socket.AF_INET6), str(ip)


def parse_addr_port(text: str):
    """(family, host, port) or None (nginx: NGX_DECLINED)."""
    if text.startswith("[") and text.endswith("]"):
        addr = _parse_addr(text[1:-1])
        return None if addr is None else addr + (0,)
    bracket = text.find("]")
    colon = text.find(":", bracket if bracket >= 0 else 0)
    if colon < 0:
        addr = _parse_addr(text)
        return None if addr is None else addr + (0,)
    port_text = text[colon + 1:]
    if not port_text.isdigit() or not port_text.isascii():
        addr = _parse_addr(text)        # "::1": the colon was the address's own
        return None if addr is None else addr + (0,)
    port = int(port_text)
    if port < 1 or port > 65535:
        return None
    host = text[:colon]
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    addr = _parse_addr(host)
    return None if addr is None else addr + (port,)


def parse(c, st):
    """The value of proxy_bind (and fastcgi_bind) in the compiled config."""
    args = st.args
    if len(args) == 1 and args[0] == "off":
        return None
    value = c.template(args[0], st.where)
    if len(args) > 1:
        if args[1] != "transparent":
            raise ConfigError(f'invalid parameter "{args[1]}"', st.where)
        raise ConfigError(f'"{st.directive}" with "transparent" is not supported by ngate',
                          st.where)
    if not value.static:
        return value
    local = parse_addr_port(args[0])
    if local is None:
        raise ConfigError(f'invalid address "{args[0]}"', st.where)
    return local + (args[0],)


def local_address(ctx, value):
    """(family, host, port, name) to bind for this request, or None."""
    if value is None or value.__class__ is tuple:
        return value
    text = value.render(ctx)
    if not text:
        return None
    local = parse_addr_port(text)
    if local is None:
        error_log.error(f'invalid local address "{text}"' + error_log.request_suffix(ctx),
                        ctx.conn.number)
        return None
    return local + (text,)


async def connect_bound(loop, peer, local) -> socket.socket:
    """A socket bound to `local` and connected to `peer` (BindError, or OSError of connect)."""
    family, host, port, name = local
    if peer.unix:
        raise BindError(22, f"bind({name}) failed (22: Invalid argument)")
    peer_family = socket.AF_INET6 if ":" in peer.host else socket.AF_INET
    if family != peer_family:
        raise BindError(22, f"bind({name}) failed (22: Invalid argument)")
    sock = socket.socket(peer_family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if port == 0 and peer_family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, _IP_BIND_ADDRESS_NO_PORT, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise BindError(exc.errno, f"bind({name}) failed ({exc.errno}: {exc.strerror})") \
                from None
        await loop.sock_connect(sock, (peer.host, peer.port))
    except BaseException:
        sock.close()
        raise
    return sock
