"""SNI at config time: `TlsListen` is one `listen ... ssl` socket's server table and the front
context every handshake starts on (the default server's settings, the SNI callback, the session
cache and ticket keys, made before the workers fork so that all workers share them). Its
callback (nginx's ngx_http_ssl_servername) picks the server for the name, switches the SSL
object to that server's context (or one loaded for this handshake for certificates with
variables: tls_certs.py) and notes whether ALPN may choose h2 for it (nginx 1.25's per-server
`http2`: openssl._alpn_select), or refuses the handshake with an alert (OpenSSL sends it).
"""
from __future__ import annotations

import ssl
import sys

from ngate.errors import ConfigError
from ngate.observability import error_log
from ngate.routing.servers import ServerSelector, normalize_host
from ngate.server import ocsp_client, ocsp_stapling, openssl, tls_certs
from ngate.server.tls_context import server_context


class TlsListen:
    """One `listen ... ssl` socket: its SNI table and the context handshakes start on."""

    def __init__(self, default_server, servers) -> None:
        self.default = default_server
        self.h2 = False     # `listen ... http2` on this socket: h2 whatever the server (build_listens)
        self.selector = ServerSelector(default_server, servers)
        # some server of this socket verifies client certificates: requests are checked
        self.verifies = any(s.tls.verify_client != "off" for s in servers)
        # sessions are cached (the default server's context holds the cache, as in nginx)
        self.caches = not {"off", "none"} & set(default_server.tls.session_cache)
        front = server_context(default_server.tls, quiet=True)
        if self.verifies and not openssl.AVAILABLE:
            front.verify_mode = ssl.CERT_OPTIONAL    # no way to switch it per SNI server
        front.sni_callback = self._servername
        self.context = front
        for server in (default_server, *servers):      # ngx_ssl_stapling/ocsp_resolver
            context = front if server is default_server else server.tls.context
            ocsp_stapling.set_resolver(context, server.conf.resolver, server.conf.resolver_timeout)
            ocsp_client.set_resolver(context, server.conf.resolver, server.conf.resolver_timeout)
        self.dynamic = tls_certs.ContextCache()     # contexts of certificates with variables

    def _servername(self, ssl_obj, name, _ctx):
        """nginx's ngx_http_ssl_servername: the server for the SNI name (else the default), its
        certificate and its client verification settings; then, for certificates with
        variables, what ngx_http_ssl_certificate loads. A refusal is logged by the acceptor;
        OpenSSL sends the alert."""
        server = None
        if name:
            host = normalize_host(name.encode("latin-1", "replace"))
            server = self.selector.named(host)
        if server is None:
            server = self.default
            host = None
        tls = server.tls
        acceptor = getattr(ssl_obj, "ngate_acceptor", None)
        if tls.reject_handshake:
            return _refuse(acceptor, ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME, "handshake rejected")
        # $ssl_server_name; one string for all the connections that sent the same name (an
        # interned string is freed with its last user)
        ssl_obj.ngate_name = sys.intern(name) if name else name
        ssl_obj.ngate_host = host       # set when SNI named a server: the 421 check
        ssl_obj.ngate_h2 = self.h2 or server.http2      # ALPN offers h2 (openssl._alpn_select)
        owner = server if tls.certificates else self.default
        if owner.tls.dynamic:
            return self._load_dynamic(ssl_obj, acceptor, server, owner.tls)
        if server is not self.default and tls.certificates:
            ssl_obj.context = tls.context
            openssl.adopt_verify(ssl_obj, tls.context)
        return None

    def _load_dynamic(self, ssl_obj, acceptor, server, conf):
        """The certificates of `conf` with this handshake's variables; an alert on failure."""
        if acceptor is None:
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        request = tls_certs.HandshakeRequest(acceptor.handshake_conn(ssl_obj), server)
        try:
            context = self.dynamic.context(conf, tls_certs.render_pairs(conf, request))
        except ConfigError as exc:
            error_log.error(exc.message + acceptor.where(), acceptor.number())
            return _refuse(acceptor, ssl.ALERT_DESCRIPTION_INTERNAL_ERROR,
                           "SSL_do_handshake() failed (SSL: error:0A000179:SSL routines::cert "
                           "cb error)")
        ssl_obj.context = context
        openssl.adopt_verify(ssl_obj, server.tls.context if server.tls.certificates else context)
        return None


def _refuse(acceptor, alert: int, text: str) -> int:
    """End the handshake with `alert` (OpenSSL sends it), logged now."""
    if acceptor is not None:
        acceptor.refuse(alert, text)
    return alert


class AcceptedSSLObject(ssl.SSLObject):
    """The SSLObject of a handshake on a TLS socket, over the socket itself (tls.py's
    TlsAcceptor makes it with SSLContext._wrap_socket and sets itself as `ngate_acceptor`, so
    the SNI and ALPN callbacks reach the connection: its addresses for the variables, its log
    lines)."""


def build_listens(by_listen: dict) -> dict:
    """listen key -> TlsListen, for every `listen ... ssl` socket (`ssl` on any listen of that
    address, as nginx ORs it). A plain listen of a server that also has an ssl one stays plain."""
    out = {key: TlsListen(default, servers)
           for key, (default, servers) in by_listen.items()
           if any(lst.ssl for srv in servers for lst in srv.listens if lst.key == key)}
    for key, tls_listen in out.items():
        servers = by_listen[key][1]
        tls_listen.h2 = listen_http2(key, servers)
        if speaks_http2(key, servers):      # ALPN offers h2 first (ngate/http2/)
            tls_listen.dynamic.h2 = True
            for c in {id(c): c for c in [tls_listen.context] + [
                    s.tls.context for s in servers if s.tls is not None and s.tls.context]}.values():
                openssl.set_alpn(c, h2=True)
    return out


def speaks_http2(key, servers) -> bool:
    """`listen ... http2` on the socket (nginx 1.22) or `http2 on` in a server of it (1.25)."""
    return listen_http2(key, servers) or any(srv.http2 for srv in servers)


def listen_http2(key, servers) -> bool:
    """`listen ... http2` on the socket: HTTP/2 for every server of it, whatever its `http2`."""
    return any(lst.http2 for srv in servers for lst in srv.listens if lst.key == key)
