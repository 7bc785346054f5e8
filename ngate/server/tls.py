"""TLS termination: server SSLContexts, SNI, and the accept path of a `listen ... ssl` socket.

Accept path of one connection (TlsAcceptor, a Protocol until it hands over):
  sniffing    waits for the first bytes (client_header_timeout). 0x16 (a TLS record) or 0x80
              (an SSLv2-style hello): TLS. Anything else is plain HTTP on a TLS port: the
              connection goes to PlainHttpOnTls, which answers nginx's 497 ("400 The plain HTTP
              request was sent to HTTPS port") once the request head is read.
  handshaking uvloop's SSLProtocol is put on the transport and fed the sniffed bytes; its
              handshake timeout is what is left of client_header_timeout. The SNI callback picks
              the server (server_name among the servers of this socket, else the default
              server), switches the SSL object to that server's context (for certificates
              with variables, to one loaded for this handshake: tls_certs.py), or refuses the
              handshake (ssl_reject_handshake, a certificate that cannot be loaded, an ALPN
              list without a protocol of ours). A refusal writes its alert record on the socket
              itself (AcceptedSSLObject links the SSL object to this acceptor): uvloop closes a
              failed handshake without sending what OpenSSL queued. A failed or stalled
              handshake is logged at info and closed; it never reaches HTTP.
  handed over the HTTP connection (HttpsConnection) gets the TLS transport. The request's
              server is chosen by Host among the socket's servers as on plain HTTP; a request
              without a known Host goes to the socket's default server, not the SNI one (what
              nginx 1.22 does).

Config time: `server_context(TlsServerConf)` builds one server's context (tls_context.py);
`TlsListen` is one TLS socket's SNI table with its front context (tls_sni.py). After the hand-over:
server/https.py.
"""
from __future__ import annotations

import asyncio
import ssl

from uvloop.loop import SSLProtocol

from ngate.observability import error_log
from ngate.server import tls_certs
from ngate.server.https import HttpsConnection, PlainHttpOnTls
from ngate.server.tls_context import ssl_reason
from ngate.server.tls_sni import AcceptedSSLObject
# where other modules import them from (config/tls.py, upstream/tls.py, runtime.py, http2/)
from ngate.server.https import client_refusal, refuse, server_for as _server_for  # noqa: F401
from ngate.server.tls_context import (VERSIONS, load_pair, load_verify, read_passwords,  # noqa: F401
                                      server_context, set_ciphers, set_protocols)
from ngate.server.tls_sni import TlsListen, build_listens, listen_http2, speaks_http2  # noqa: F401
from ngate.server.ssl_vars import client_s_dn  # noqa: F401

_TLS_FIRST_BYTES = (0x16, 0x80)


# ---------------------------------------------------------------- accept path (per connection)

class TlsAcceptor(asyncio.Protocol):
    """A new connection on a TLS socket until it is TLS (handed to HttpsConnection through
    SSLProtocol) or plain HTTP (handed to PlainHttpOnTls)."""
    __slots__ = ("runtime", "listen", "transport", "timer", "deadline", "proxy_protocol",
                 "sslobj", "_number", "failure")
    handed_over = False

    def __init__(self, runtime, listen) -> None:
        self.runtime = runtime
        self.listen = listen
        self.proxy_protocol = None      # the PROXY header read before TLS (proxy_protocol.py)
        self.transport = None
        self.timer = None
        self.deadline = 0.0
        self.sslobj = None              # the handshake's SSLObject (AcceptedSSLObject)
        self._number = 0                # the connection number of its log lines
        self.failure = None             # the log text of a handshake a callback refused

    def connection_made(self, transport) -> None:
        self.transport = transport
        if not self.runtime.connection_opened(self):
            return
        loop = self.runtime.loop
        timeout = self.listen.default_server.client_header_timeout
        self.deadline = loop.time() + timeout
        self.timer = loop.call_later(timeout, self._timed_out)

    def data_received(self, data: bytes) -> None:
        self.timer.cancel()
        if data[0] in _TLS_FIRST_BYTES:
            self._start_tls(data)
        else:
            self._plain(data)

    def connection_lost(self, exc) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.runtime.connection_closed(self)

    def _start_tls(self, data: bytes) -> None:
        runtime = self.runtime
        loop = runtime.loop
        waiter = loop.create_future()
        waiter.add_done_callback(self._handshake_done)
        conn = HttpsConnection(runtime, self.listen)
        conn.proxy_protocol = self.proxy_protocol
        proto = SSLProtocol(loop, conn,
                            self.listen.ssl_context.context, waiter, server_side=True,
                            ssl_handshake_timeout=max(self.deadline - loop.time(), 0.001))
        transport = self.transport
        transport.set_protocol(proto)
        AcceptedSSLObject.made = None
        proto.connection_made(transport)
        self.sslobj = AcceptedSSLObject.made
        AcceptedSSLObject.made = None
        if self.sslobj is not None:
            self.sslobj.ngate_acceptor = self
        while data:
            buf = proto.get_buffer(len(data))
            n = min(len(buf), len(data))
            buf[:n] = data[:n]
            proto.buffer_updated(n)
            data = data[n:]

    def _handshake_done(self, waiter) -> None:
        self.runtime.connection_closed(self)
        if self.sslobj is not None:
            self.sslobj.ngate_acceptor = None
            self.sslobj = None
        if waiter.cancelled():
            return
        exc = waiter.exception()
        if exc is not None:
            self._log_failure(exc)

    # what the SNI callback (TlsListen) needs of the connection
    def handshake_conn(self, sslobj) -> tls_certs.HandshakeConn:
        return tls_certs.HandshakeConn(self.transport, self.listen.local, sslobj,
                                       self.proxy_protocol, self.number())

    def number(self) -> int:
        if not self._number:
            self._number = self.runtime.next_connection_number()
        return self._number

    def where(self) -> str:
        return f" while SSL handshaking, client: {self._peer()}, server: {self._local()}"

    def refuse(self, alert: int, text: str) -> None:
        """End the handshake as nginx does: `text` logged at info, and a fatal alert in a TLS
        record of the version the records use so far (what OpenSSL sends before its
        ServerHello), both before the connection closes."""
        self.failure = text
        error_log.info(text + self.where(), self.number())
        self.transport.write(bytes((0x15, 3, 3, 0, 2, 2, alert)))

    def _log_failure(self, exc) -> None:
        where = self.where()
        if self.failure is not None:
            return                      # logged when it was refused
        if isinstance(exc, ssl.SSLError):
            text = f"SSL_do_handshake() failed (SSL: {ssl_reason(exc)})"
        elif isinstance(exc, ConnectionAbortedError) and "longer than" in str(exc):
            text = "client timed out (110: Connection timed out)"
        elif isinstance(exc, (ConnectionResetError, BrokenPipeError)):
            text = "peer closed connection in SSL handshake (104: Connection reset by peer)"
        else:
            text = f"SSL handshake failed ({exc})"
        error_log.info(text + where, self.number())

    def _plain(self, data: bytes) -> None:
        self.runtime.connection_closed(self, handover=True)
        conn = PlainHttpOnTls(self.runtime, self.listen)
        conn.proxy_protocol = self.proxy_protocol
        transport = self.transport
        transport.set_protocol(conn)
        conn.connection_made(transport)
        conn.data_received(data)

    def _timed_out(self) -> None:
        self.timer = None
        error_log.info("client timed out (110: Connection timed out) while SSL handshaking, "
                       f"client: {self._peer()}, server: {self._local()}",
                       self.runtime.next_connection_number())
        self.transport.close()

    def _peer(self) -> str:
        peer = self.transport.get_extra_info("peername")
        return peer[0] if isinstance(peer, tuple) else "unix:"

    def _local(self) -> str:
        key = self.listen.key
        return f"{key[0]}:{key[1]}" if key[0] != "unix" else "unix:" + str(key[1])

    # the runtime's view of a connection (drain and stop)
    def close_if_idle(self) -> bool:
        self.transport.close()
        return True

    def abort(self) -> None:
        self.transport.abort()


