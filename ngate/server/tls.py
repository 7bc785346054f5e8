"""TLS termination: server SSLContexts, SNI, and the accept path of a `listen ... ssl` socket.

Accept path of one connection (TlsAcceptor, on the raw non-blocking socket that TlsServer
accepted, until it hands over; client_header_timeout bounds all of it):
  proxy       on a `listen ... proxy_protocol` socket, the PROXY header first: peeked, parsed
              (proxy_protocol.py) and exactly the header consumed, as nginx does before TLS.
  sniffing    the first byte, peeked. 0x16 (a TLS record) or 0x80 (an SSLv2-style hello): TLS.
              Anything else is plain HTTP on a TLS port: the socket goes to uvloop as a plain
              connection for PlainHttpOnTls, which answers nginx's 497 ("400 The plain HTTP
              request was sent to HTTPS port") once the request head is read.
  handshaking OpenSSL on the socket itself (its socket BIO; SSL_do_handshake on readiness).
              The SNI callback picks the server (server_name among the servers of this
              socket, else the default server), switches the SSL object to that server's
              context (for certificates with variables, to one loaded for this handshake:
              tls_certs.py), or refuses the handshake (ssl_reject_handshake, a certificate that
              cannot be loaded, an ALPN list without a protocol of ours); OpenSSL sends the
              alert itself. A failed or stalled handshake is logged at info and closed; it
              never reaches HTTP.
  handed over a TlsTransport (tls_transport.py) for the HTTP connection (HttpsConnection, or
              VerifyingHttpsConnection where some server verifies client certificates). The
              request's server is chosen by Host among the socket's servers as on plain HTTP;
              a request without a known Host goes to the socket's default server, not the SNI
              one (what nginx 1.22 does).

Config time: `server_context(TlsServerConf)` builds one server's context (tls_context.py);
`TlsListen` is one TLS socket's SNI table with its front context (tls_sni.py). After the hand-over:
server/https.py.
"""
from __future__ import annotations

import socket
import ssl
from functools import partial

from ngate.observability import error_log
from ngate.server import proxy_protocol as pp
from ngate.server import ocsp_client, tls_certs
from ngate.server.https import PlainHttpOnTls, https_connection
from ngate.server.tls_context import ssl_reason
from ngate.server.tls_sni import AcceptedSSLObject
from ngate.server.tls_transport import TlsTransport
# where other modules import them from (config/tls.py, upstream/tls.py, runtime.py, http2/)
from ngate.server.https import client_refusal, refuse, server_for as _server_for  # noqa: F401
from ngate.server.tls_context import (VERSIONS, load_pair, load_verify, read_passwords,  # noqa: F401
                                      server_context, set_ciphers, set_protocols)
from ngate.server.tls_sni import TlsListen, build_listens, listen_http2, speaks_http2  # noqa: F401
from ngate.server.ssl_vars import client_s_dn  # noqa: F401

_TLS_FIRST_BYTES = (0x16, 0x80)
_PEEK = socket.MSG_PEEK
_PROXY, _SNIFF, _HANDSHAKE, _DONE, _OCSP = range(5)


# ---------------------------------------------------------------- accept path (per connection)

class TlsAcceptor:
    """A new connection on a TLS socket until it is TLS (a TlsTransport for HttpsConnection)
    or plain HTTP (handed to PlainHttpOnTls). The runtime counts it as a connection."""
    __slots__ = ("runtime", "listen", "sock", "fd", "peer", "state", "timer", "buf",
                 "proxy_protocol", "sslobj", "_number", "failure", "writing", "ocsp")
    handed_over = False

    def __init__(self, runtime, listen, sock, peer) -> None:
        self.runtime = runtime
        self.listen = listen
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = peer
        self.proxy_protocol = None      # the PROXY header read before TLS (proxy_protocol.py)
        self.timer = None
        self.buf = b""                  # a PROXY header's beginning, consumed
        self.sslobj = None              # the handshake's SSLObject (AcceptedSSLObject)
        self._number = 0                # the connection number of its log lines
        self.failure = None             # the log text of a handshake a callback refused
        self.writing = False            # the handshake waits for the socket to be writable
        self.ocsp = None                # ssl_ocsp: the check of the client's chain, then True
        self.state = _PROXY if listen.proxy_protocol else _SNIFF
        if not runtime.connection_opened(self):
            return
        self._arm()
        runtime.loop.add_reader(self.fd, self._readable)

    @property
    def transport(self):                # what the runtime closes (worker_connections, stop)
        return self

    def _arm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        timeout = self.listen.default_server.client_header_timeout
        self.timer = self.runtime.loop.call_later(timeout, self._timed_out)

    def _readable(self) -> None:
        state = self.state
        if state == _HANDSHAKE:
            return self._handshake()
        if state == _PROXY:
            return self._read_proxy()
        try:
            first = self.sock.recv(1, _PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return self._close()
        if not first:                   # nginx's MSG_PEEK read of 0 bytes
            error_log.info("client closed connection" + self.where(), self.number())
            return self._close()
        if first[0] in _TLS_FIRST_BYTES:
            self._start_tls()
        else:
            self._plain()

    # ------------------------------------------------------------ PROXY header

    def _read_proxy(self) -> None:
        sock = self.sock
        try:
            peeked = sock.recv(4096, _PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            peeked = b""
        if not peeked:      # closed before a whole header: nginx peeks, an empty peek is broken
            self._proxy_log("error", pp._broken(self.buf)[3])
            return self._close()
        buf = self.buf + peeked
        status, header, consumed, message = pp.parse(buf)
        if status is pp.NEED_MORE:
            sock.recv(len(peeked))
            self.buf = buf
            return
        if status is pp.BROKEN:
            if message:
                self._proxy_log("error", message)
            return self._close()
        sock.recv(consumed - len(self.buf))
        self.buf = b""
        self.proxy_protocol = header
        self.state = _SNIFF
        self._arm()

    def _proxy_log(self, level: str, message: str) -> None:
        pp.log(level, message, self.runtime, self.listen, self.peer)

    # ------------------------------------------------------------ TLS

    def _start_tls(self) -> None:
        obj = AcceptedSSLObject.__new__(AcceptedSSLObject)
        obj.ngate_acceptor = self
        try:
            obj._sslobj = self.listen.ssl_context.context._wrap_socket(
                self.sock, server_side=True, owner=obj)
        except (ssl.SSLError, OSError) as exc:
            return self._failed(exc)
        self.sslobj = obj
        self.state = _HANDSHAKE
        self._handshake()

    def _handshake(self) -> None:
        try:
            self.sslobj._sslobj.do_handshake()
        except ssl.SSLWantReadError:
            return self._want_write(False)
        except ssl.SSLWantWriteError:
            return self._want_write(True)
        except (ssl.SSLError, OSError) as exc:
            return self._failed(exc)
        self._established()

    def _want_write(self, write: bool) -> None:
        if write != self.writing:
            self.writing = write
            loop = self.runtime.loop
            if write:
                loop.remove_reader(self.fd)
                loop.add_writer(self.fd, self._handshake)
            else:
                loop.remove_writer(self.fd)
                loop.add_reader(self.fd, self._readable)

    def _established(self) -> None:
        if self.ocsp is None:           # ssl_ocsp: the connection waits for the check
            check = ocsp_client.validate(self, self.sslobj)
            if check is False:
                return self._close()
            self.ocsp = check or True
            if check is not None:
                loop = self.runtime.loop
                loop.remove_writer(self.fd) if self.writing else loop.remove_reader(self.fd)
                self.state = _OCSP
                return
        runtime = self.runtime
        self._stop()
        sslobj = self.sslobj
        sslobj.ngate_acceptor = None
        self.sslobj = None
        runtime.connection_closed(self, handover=True)
        conn = https_connection(self.listen)(runtime, self.listen)
        conn.number = self._number      # the handshake's log lines had this one (0: none yet)
        conn.proxy_protocol = self.proxy_protocol
        transport = TlsTransport(runtime.loop, self.sock, sslobj, self.peer)
        self.sock = None
        transport.start(conn)

    def ocsp_done(self) -> None:
        """The client's chain was checked (ocsp_client.py): on to HTTP."""
        if self.state == _OCSP:
            self.ocsp = True
            self._established()

    def _failed(self, exc) -> None:
        if self.failure is None:        # else logged when it was refused
            self._log_failure(exc)
        self._close()

    def _stop(self) -> None:
        """No more events or timer for this acceptor (the socket goes on elsewhere or closes)."""
        self.state = _DONE
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        loop = self.runtime.loop
        if self.writing:
            loop.remove_writer(self.fd)
        else:
            loop.remove_reader(self.fd)

    def _close(self) -> None:
        if self.state == _DONE:
            return
        if self.state == _OCSP:
            self.ocsp.cancel()
        self._stop()
        if self.sslobj is not None:
            self.sslobj.ngate_acceptor = None
            self.sslobj = None
        self.sock.close()
        self.sock = None
        self.runtime.connection_closed(self)

    # the runtime's view of a connection (drain, stop, worker_connections)
    def close_if_idle(self) -> bool:
        self._close()
        return True

    def abort(self) -> None:
        if self.state != _DONE and self.timer is None:     # refused by connection_opened
            self.state = _DONE
            self.sock.close()
            self.sock = None
            return
        self._close()

    close = abort

    def get_extra_info(self, name, default=None):
        if name == "peername":
            return self.peer
        if name == "sockname" and self.sock is not None:
            return self.sock.getsockname()
        return default

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
        """A callback ends the handshake as nginx does: `text` logged at info (OpenSSL sends
        the fatal alert on the socket itself)."""
        self.failure = text
        error_log.info(text + self.where(), self.number())

    def _log_failure(self, exc) -> None:
        if isinstance(exc, ssl.SSLEOFError) or isinstance(exc, ssl.SSLZeroReturnError):
            text = "peer closed connection in SSL handshake"
        elif isinstance(exc, ssl.SSLError):
            text = f"SSL_do_handshake() failed (SSL: {ssl_reason(exc)})"
        elif isinstance(exc, (ConnectionResetError, BrokenPipeError)):
            text = "peer closed connection in SSL handshake (104: Connection reset by peer)"
        else:
            text = f"SSL handshake failed ({exc})"
        error_log.info(text + self.where(), self.number())

    def _plain(self) -> None:
        """Plain HTTP on the TLS port: the socket becomes a uvloop connection (its bytes are
        still unread) for PlainHttpOnTls."""
        runtime = self.runtime
        self._stop()
        sock = self.sock
        self.sock = None
        runtime.connection_closed(self)     # PlainHttpOnTls counts as handed over
        factory = partial(_plain_connection, runtime, self.listen, self.proxy_protocol)
        runtime.loop.create_task(runtime.loop.connect_accepted_socket(factory, sock))

    def _timed_out(self) -> None:
        self.timer = None
        if self.state == _PROXY:
            self._proxy_log("info", "client timed out (110: Connection timed out)")
        else:
            error_log.info("client timed out (110: Connection timed out)" + self.where(),
                           self.number())
        self._close()

    def _peer(self) -> str:
        peer = self.peer
        return peer[0] if isinstance(peer, tuple) else "unix:"

    def _local(self) -> str:
        key = self.listen.key
        return f"{key[0]}:{key[1]}" if key[0] != "unix" else "unix:" + str(key[1])


def _plain_connection(runtime, listen, header):
    conn = PlainHttpOnTls(runtime, listen)
    conn.proxy_protocol = header
    return conn
