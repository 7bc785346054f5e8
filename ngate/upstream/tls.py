"""TLS to upstreams (`proxy_pass https://...`): client SSLContexts and the name to verify/send.

One client context per distinct ProxyTls (equal settings share it), built at load time so that a
bad file is a config error, and inherited by the workers. `upstream_tls(ctx, conf)` gives an
exchange what `loop.create_connection` needs: (SSLContext, server_hostname), or None for plain
HTTP. The pair is also the TLS identity of a pooled keepalive connection.

`open_tls` connects to a peer (TCP or unix socket) and runs the handshake, offering the session
saved from the last connection to that peer with that identity (proxy_ssl_session_reuse, as
nginx keeps one session per peer); `save_session` stores it once a response was read (a TLS 1.3
ticket arrives after the handshake).
"""
from __future__ import annotations

import asyncio
import re
import ssl

from uvloop.loop import SSLProtocol

from ngate.errors import ConfigError
from ngate.server import openssl
from ngate.server.tls import load_pair, load_verify, read_passwords, set_ciphers, set_protocols

_CONTEXTS: dict = {}
_SESSIONS: dict = {}        # (peer address, port, SSLContext, server_hostname) -> SSLSession
_HOSTNAME_MISMATCH = 62     # X509_V_ERR_HOSTNAME_MISMATCH
_MISMATCH = re.compile(r"not valid for '(.*)'")


def clear_cache() -> None:
    _CONTEXTS.clear()
    _SESSIONS.clear()


def client_context(conf) -> ssl.SSLContext:
    """The client SSLContext for a ProxyTls (cached)."""
    ctx = _CONTEXTS.get(conf)
    if ctx is None:
        ctx = _CONTEXTS[conf] = _build(conf)
    return ctx


def _build(conf) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    set_protocols(ctx, conf.protocols)
    if conf.ciphers is not None:
        set_ciphers(ctx, conf.ciphers)
    if conf.verify:
        if not conf.trusted_certificate:
            raise ConfigError("no proxy_ssl_trusted_certificate for proxy_ssl_verify")
        load_verify(ctx, conf.trusted_certificate)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.check_hostname = True
        openssl.verify_per_request(ctx, conf.verify_depth)   # judged after the handshake
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if conf.certificate:
        load_pair(ctx, conf.certificate, conf.certificate_key,
                  read_passwords(conf.password_file), prefix="")
    return ctx


def ssl_name(ctx, conf, host_header: str) -> str:
    """proxy_ssl_name (default $proxy_host), without a port, as nginx cuts it."""
    name = conf.name.render(ctx) if conf.name is not None else host_header
    if name.startswith("["):
        return name[1:name.find("]")] if "]" in name else name
    return name.rsplit(":", 1)[0] if name.count(":") == 1 else name


def upstream_tls(ctx, conf, scheme: str, host_header: str):
    """(SSLContext, server_hostname, session_reuse) for an https upstream, else None.

    server_hostname is the name sent as SNI (proxy_ssl_server_name on) and verified
    (proxy_ssl_verify on); with both off it is None: no SNI, nothing checked."""
    if scheme != "https":
        return None
    pt = conf.proxy.ssl
    name = None
    if pt.server_name or pt.verify:
        name = ssl_name(ctx, pt, conf.proxy.pass_.ssl_host or host_header) or None
    return client_context(pt), name, pt.session_reuse


async def open_tls(loop, peer, tls: tuple, app, sock=None):
    """Connect to `peer` (or use `sock`, connected to it: proxy_bind) and hand `app` (a
    Protocol) a TLS transport once the handshake is done.
    Cancelled (proxy_connect_timeout) or failed: the socket is closed and the error raised."""
    context, name, reuse = tls
    if sock is not None:
        transport, _ = await loop.create_connection(asyncio.Protocol, sock=sock)
    elif peer.unix:
        transport, _ = await loop.create_unix_connection(asyncio.Protocol, peer.unix)
    else:
        transport, _ = await loop.create_connection(asyncio.Protocol, peer.host, peer.port)
    key = (peer.unix or peer.host, peer.port, context, name)
    session = _SESSIONS.get(key) if reuse else None
    waiter = loop.create_future()
    proto = SSLProtocol(loop, app, context if session is None else _Offer(context, session),
                        waiter, False, name)
    transport.set_protocol(proto)
    proto.connection_made(transport)
    try:
        await waiter
        if context.verify_mode != ssl.CERT_NONE:
            check_verified(app.transport.get_extra_info("ssl_object"), name)
    except BaseException:
        transport.abort()
        raise
    return key if reuse else None


def check_verified(ssl_object, name: str | None) -> None:
    """proxy_ssl_verify as nginx applies it: the handshake accepted any chain; the verify result
    (the last error OpenSSL met, e.g. 20 when proxy_ssl_verify_depth cut the chain) decides."""
    code = openssl.verify_result(ssl_object)
    if code:
        exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
        exc.verify_code = code
        exc.verify_message = (f"Hostname mismatch, certificate is not valid for '{name}'."
                              if code == _HOSTNAME_MISMATCH else openssl.verify_error(code))
        raise exc


def save_session(key: tuple, transport) -> None:
    """Keep the connection's session for the next connection to the same peer."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is not None:
        _SESSIONS[key] = ssl_object.session


class _Offer:
    """What SSLProtocol sees as its context: it wraps the connection with a saved session."""
    __slots__ = ("context", "session")

    def __init__(self, context: ssl.SSLContext, session: ssl.SSLSession) -> None:
        self.context = context
        self.session = session

    def wrap_bio(self, incoming, outgoing, server_side=False, server_hostname=None):
        return self.context.wrap_bio(incoming, outgoing, server_side, server_hostname,
                                     session=self.session)


def handshake_error(exc: ssl.SSLError) -> str:
    """nginx's error log text for a failed handshake to an upstream."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        name = _MISMATCH.search(exc.verify_message or "")
        if exc.verify_code == _HOSTNAME_MISMATCH and name:
            return (f'upstream SSL certificate does not match "{name.group(1)}" '
                    "while SSL handshaking to upstream")
        return (f"upstream SSL certificate verify error: ({exc.verify_code}:"
                f"{exc.verify_message}) while SSL handshaking to upstream")
    reason = getattr(exc, "reason", None) or str(exc)
    return f"SSL_do_handshake() failed (SSL: {reason}) while SSL handshaking to upstream"
