"""The connection's variables (nginx's ngx_http_core_variables for c->...): addresses, ports, the
connection's number, requests and age, its scheme and protocol; `listen ... proxy_protocol`'s
addresses (server/proxy_protocol.py), not found without them.

Read by the variables registry (routing/variables.py) from the list in ngate/http/modules.py.
"""
from __future__ import annotations

import socket
import time


def _remote_addr(ctx):
    return ctx.conn.remote_addr


def _remote_port(ctx):
    return ctx.conn.remote_port


def _binary_remote_addr(ctx):
    addr = ctx.conn.remote_addr
    if addr == "unix:":
        return addr             # nginx: a unix-socket client's address text (one key for all)
    try:
        return socket.inet_pton(socket.AF_INET6 if ":" in addr else socket.AF_INET,
                                addr).decode("latin-1")
    except (OSError, ValueError):
        return None


def _server_addr(ctx):
    return ctx.conn.server_addr


def _server_port(ctx):
    return ctx.conn.server_port


def _proxy_protocol_addr(ctx):
    pp = ctx.conn.proxy_protocol
    return pp.src_addr if pp is not None else None


def _proxy_protocol_port(ctx):
    pp = ctx.conn.proxy_protocol
    return str(pp.src_port) if pp is not None else None


def _proxy_protocol_server_addr(ctx):
    pp = ctx.conn.proxy_protocol
    return pp.dst_addr if pp is not None else None


def _proxy_protocol_server_port(ctx):
    pp = ctx.conn.proxy_protocol
    return str(pp.dst_port) if pp is not None else None


def _connection(ctx):
    return str(ctx.conn.number)


def _connection_requests(ctx):
    """Pipelined heads already parsed (queued) are not counted yet: nginx makes them later."""
    conn = ctx.conn
    return str(conn.requests - len(conn.queue or ()))


def _connection_time(ctx):
    """Seconds since the connection was accepted, with milliseconds (nginx 1.19.10)."""
    ms = max(int((time.monotonic() - ctx.conn.started) * 1000), 0)
    return f"{ms // 1000}.{ms % 1000:03d}"


def _pipe(ctx):
    return "p" if ctx.pipelined else "."


def _scheme(ctx):
    return ctx.conn.scheme


def _https(ctx):
    return "on" if ctx.conn.scheme == "https" else ""


def _http2(ctx):
    """"h2" (TLS) or "h2c" (clear text) for an HTTP/2 request (ngate/http2/), else empty."""
    return getattr(ctx.conn, "proto", "")


VARIABLES = {
    "remote_addr": _remote_addr, "remote_port": _remote_port,
    "binary_remote_addr": _binary_remote_addr,
    "server_addr": _server_addr, "server_port": _server_port,
    "proxy_protocol_addr": _proxy_protocol_addr, "proxy_protocol_port": _proxy_protocol_port,
    "proxy_protocol_server_addr": _proxy_protocol_server_addr,
    "proxy_protocol_server_port": _proxy_protocol_server_port,
    "connection": _connection, "connection_requests": _connection_requests,
    "connection_time": _connection_time, "pipe": _pipe,
    "scheme": _scheme, "https": _https, "http2": _http2,
}
