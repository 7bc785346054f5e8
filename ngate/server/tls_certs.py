"""Certificates with variables (`ssl_certificate $ssl_server_name.crt;`): loaded per handshake.

nginx evaluates such values in its certificate callback (ngx_http_ssl_certificate), with a
request it allocates for the connection once the SNI callback has chosen the server; a server
without certificates of its own keeps the default server's values. Python's ssl has no
certificate callback, so ngate does the same in its SNI callback (tls.py TlsListen): the values
are rendered against a HandshakeRequest (connection variables: $ssl_server_name, $server_addr,
$remote_addr, geo/map over them ...), relative results resolve against the configuration
directory ("data:" values are PEM text), and the handshake switches to an SSLContext holding that
pair (SSLObject.context, i.e. SSL_set_SSL_CTX, which is how nginx switches servers too).

Contexts are cached per worker in a bounded LRU keyed by the server's settings, the values and
the files' identity (inode, size, mtime): a replaced file is read again at the next handshake, as
nginx reads the files at every one. A value that cannot be loaded fails the handshake with
nginx's error line ("cannot load certificate ...") and an internal_error alert.
"""
from __future__ import annotations

import os
from collections import OrderedDict

from ngate.server import openssl

CACHE_SIZE = 64         # contexts kept per TLS socket and worker


class HandshakeConn:
    """What the connection variables read (ctx.conn) while the handshake is under way."""
    __slots__ = ("remote_addr", "remote_port", "server_addr", "server_port", "tls", "scheme",
                 "proxy_protocol", "number", "started", "requests", "queue")

    def __init__(self, transport, local, tls, proxy_protocol, number: int) -> None:
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.remote_addr, self.remote_port = peer[0], str(peer[1])
            if local is None:
                sock = transport.get_extra_info("sockname")
                local = sock[0], str(sock[1])
            self.server_addr, self.server_port = local
        else:
            self.remote_addr = self.remote_port = self.server_addr = self.server_port = "unix:"
            self.remote_port = self.server_port = ""
        self.tls = tls
        self.scheme = "https"
        self.proxy_protocol = proxy_protocol
        self.number = number
        self.started = 0.0
        self.requests = 0
        self.queue = None


class HandshakeRequest:
    """nginx's request of the certificate callback: no request line nor headers yet, so the
    request variables are not found; everything else of a request context reads as unset."""

    def __init__(self, conn: HandshakeConn, server) -> None:
        self.conn = conn
        self.server = server
        self.conf = server.conf
        self.hdr = {}
        self.vars = None
        self.captures = None

    def __getattr__(self, name):
        return None


def render_pairs(conf, request) -> tuple:
    """The server's (certificate, key) values for this handshake, as nginx resolves them."""
    return tuple((_full_name(conf, cert.render(request) if not isinstance(cert, str) else cert),
                  _full_name(conf, key.render(request) if not isinstance(key, str) else key))
                 for cert, key in conf.certificates)


def _full_name(conf, value: str) -> str:
    """ngx_get_full_name against the configuration prefix; "data:" values stay as they are."""
    if value.startswith("data:") or not conf.conf_dir:
        return value
    return os.path.normpath(os.path.join(conf.conf_dir, value))


def _stamp(value: str):
    if value.startswith("data:"):
        return None
    try:
        st = os.stat(value)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class ContextCache:
    """Per-handshake contexts of one TLS socket, least recently used dropped first."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.h2 = False         # ALPN offers h2 on this socket (set by tls.build_listens)
        self.size = size
        self.entries: OrderedDict = OrderedDict()

    def context(self, conf, pairs: tuple):
        """The SSLContext for `pairs` of server settings `conf`; ConfigError (nginx's words)
        when a certificate or key cannot be loaded."""
        key = (conf, pairs, tuple(_stamp(v) for pair in pairs for v in pair))
        ctx = self.entries.get(key)
        if ctx is not None:
            self.entries.move_to_end(key)
            return ctx
        from ngate.server.tls import server_context
        ctx = server_context(conf, quiet=True, pairs=pairs)
        openssl.set_alpn(ctx, self.h2)
        self.entries[key] = ctx
        if len(self.entries) > self.size:
            self.entries.popitem(last=False)
        return ctx

