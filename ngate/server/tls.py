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

Config time: `server_context(TlsServerConf)` builds one server's context (errors as nginx -t);
`TlsListen` is one TLS socket's SNI table with its front context (the one every handshake starts
on: the default server's settings, the SNI callback, and the session cache/ticket keys, made
before the workers fork so that all workers share them).
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import ssl

from uvloop.loop import SSLProtocol

from ngate.errors import ConfigError
from ngate.observability import error_log
from ngate.http import phases
from ngate.server import openssl, tls_certs
from ngate.routing.servers import ServerSelector, normalize_host
from ngate.server.connection import HttpConnection

VERSIONS = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
            "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
_TLS_FIRST_BYTES = (0x16, 0x80)
_NO_SUCH_FILE = ("BIO_new_file() failed (SSL: error:80000002:system library::No such file or "
                 "directory:calling fopen({path}, r) error:10000080:BIO routines::no such file)")


# ---------------------------------------------------------------- contexts (config time)

def server_context(conf, quiet: bool = False, pairs=None) -> ssl.SSLContext:
    """An SSLContext for one server's TlsServerConf; ConfigError as nginx words it. `quiet`: a
    second context for the same server (a listening socket's), whose warnings were given.
    `pairs`: the (certificate, key) values of one handshake, for a server whose certificates
    have variables (tls_certs.py); such a server's own context has no certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    set_protocols(ctx, conf.protocols)
    if conf.ciphers is not None:
        set_ciphers(ctx, conf.ciphers)
    if conf.prefer_server_ciphers:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    if not conf.session_tickets:
        ctx.options |= ssl.OP_NO_TICKET
    if pairs is None:
        passwords = read_passwords(conf.password_file)
        pairs = () if conf.dynamic else conf.certificates
    else:
        passwords = conf.passwords
    for cert, key in pairs:
        load_pair(ctx, cert, key, passwords)
    if conf.dhparam:
        _load(ctx.load_dh_params, conf.dhparam)
    if conf.ecdh_curve != "auto":
        set_curves(ctx, conf.ecdh_curve)
    if conf.verify_client != "off":
        if not conf.client_certificate and conf.verify_client != "optional_no_ca":
            raise ConfigError("no ssl_client_certificate for ssl_verify_client")
        ctx.verify_mode = ssl.CERT_OPTIONAL      # "on" without a certificate: 496 per request
        openssl.verify_per_request(ctx, conf.verify_depth)
    if conf.client_certificate:
        load_verify(ctx, conf.client_certificate)
        openssl.set_client_ca_list(ctx, conf.client_certificate)
    if conf.trusted_certificate:
        load_verify(ctx, conf.trusted_certificate)
    if conf.crl:
        load_verify(ctx, conf.crl)
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN
    openssl.set_session_cache(ctx, conf.session_cache, conf.session_timeout)
    openssl.set_session_id_context(ctx, session_id_context(conf))
    openssl.set_alpn(ctx, h2=False)
    if conf.stapling:
        set_stapling(ctx, conf, quiet)
    return ctx


def set_stapling(ctx: ssl.SSLContext, conf, quiet: bool = False) -> None:
    """ssl_stapling as ngx_ssl_stapling sets it up, certificate by certificate: with
    ssl_stapling_file the response is checked and stapled; without it nginx would fetch responses
    from the OCSP responder, which ngate does not do: the certificates nginx would ignore get
    nginx's warning, the others a warning that ngate does not fetch."""
    if not openssl.STAPLING:
        if not quiet:
            error_log.warn('"ssl_stapling" ignored, not supported')
        return
    if conf.stapling_file:
        return openssl.staple_file(ctx, read_ocsp_response(conf.stapling_file))
    for cert, _key in () if quiet or conf.dynamic else conf.certificates:
        problem = openssl.stapling_problem(ctx, cert, conf.stapling_responder) or (
            "ngate does not fetch OCSP responses (give one with ssl_stapling_file) "
            "for the certificate")
        error_log.warn(f'"ssl_stapling" ignored, {problem} "{cert}"')


def read_ocsp_response(path: str) -> bytes:
    """ssl_stapling_file: a DER OCSP response; ConfigError in nginx's words when unreadable."""
    try:
        with open(path, "rb") as f:
            der = f.read()
    except OSError:
        raise ConfigError(_NO_SUCH_FILE.format(path=path).replace(
            "BIO_new_file()", f'BIO_new_file("{path}")').replace(", r)", ", rb)")) from None
    error = openssl.ocsp_response_error(der)
    if error is not None:
        raise ConfigError(f'd2i_OCSP_RESPONSE_bio("{path}") failed (SSL: {error})')
    return der


def set_curves(ctx: ssl.SSLContext, curves: str) -> None:
    """ssl_ecdh_curve: one curve or a list ("X25519:prime256v1")."""
    if openssl.AVAILABLE:
        ok = openssl.set_groups(ctx, curves)
    else:
        try:
            ctx.set_ecdh_curve(curves)
            ok = True
        except ValueError:
            ok = False
    if not ok:
        bad = next((c for c in curves.split(":") if not openssl.set_groups(ctx, c)), curves)
        raise ConfigError(f'SSL_CTX_set1_curves_list("{curves}") failed (SSL: error:0A080106:'
                          f"SSL routines::passed invalid argument:group '{bad}' cannot be set)")


def session_id_context(conf) -> bytes:
    """What a resumed session must have been made for (nginx hashes the same things): the
    certificates and the client CA settings of the server."""
    digest = hashlib.sha256()
    for path in (*(p for pair in conf.certificates for p in pair), conf.client_certificate,
                 conf.trusted_certificate):
        if not path:
            continue
        if not isinstance(path, str):       # a Template: loaded per handshake
            digest.update(path.text.encode())
        elif path.startswith("data:"):
            digest.update(path.encode())
        else:
            with open(path, "rb") as f:
                digest.update(f.read())
    digest.update(conf.verify_client.encode())
    return digest.digest()


def set_protocols(ctx: ssl.SSLContext, protocols) -> None:
    """ssl_protocols: the lowest and highest version named (SSLv2/SSLv3 cannot be enabled)."""
    versions = sorted(VERSIONS[p] for p in protocols if p in VERSIONS)
    if versions:
        ctx.minimum_version, ctx.maximum_version = versions[0], versions[-1]


def set_ciphers(ctx: ssl.SSLContext, ciphers: str) -> None:
    try:
        ctx.set_ciphers(ciphers)
    except ssl.SSLError:
        raise ConfigError(f'SSL_CTX_set_cipher_list("{ciphers}") failed (SSL: '
                          "error:0A0000B9:SSL routines::no cipher match)") from None


def read_passwords(path: str | None) -> list:
    """ssl_password_file: one password a line, tried in turn."""
    if not path:
        return [None]
    try:
        with open(path, "rb") as f:
            return [line.rstrip(b"\r\n") for line in f if line.strip()] or [b""]
    except OSError as err:
        raise ConfigError(f'open() "{path}" failed ({err.errno}: {err.strerror})') from None


def load_pair(ctx: ssl.SSLContext, cert: str, key: str, passwords, prefix: str = "") -> None:
    """One certificate and its key (PEM files, or "data:" values). Several pairs of different
    key types may be loaded."""
    cert_pem = _check_pem(cert, b"CERTIFICATE", f'cannot load {prefix}certificate "{cert}": ',
                          "PEM_read_bio_X509_AUX() failed (SSL: error:0480006C:PEM routines::"
                          "no start line:Expecting: TRUSTED CERTIFICATE)")
    key_pem = _check_pem(key, b"PRIVATE KEY", f'cannot load {prefix}certificate key "{key}": ',
                         "PEM_read_bio_PrivateKey() failed (SSL: error:1E08010C:DECODER "
                         "routines::unsupported:No supported data to decode. Input type: PEM)")
    error = None
    with _pem_path(cert, cert_pem) as cert_path, _pem_path(key, key_pem) as key_path:
        for password in passwords:
            try:
                ctx.load_cert_chain(cert_path, key_path,
                                    password=password if password is not None else _none)
                return
            except (ssl.SSLError, ValueError, TypeError) as exc:
                error = exc
    raise ConfigError(f'cannot load {prefix}certificate key "{key}": '
                      f"PEM_read_bio_PrivateKey() failed (SSL: {_reason(error)})")


def _bio_new_file_failed(path: str, err: OSError) -> str:
    """OpenSSL's words for a file fopen() could not open (ENOENT, EACCES ...)."""
    if err.errno == errno.ENOENT or not err.errno:
        return _NO_SUCH_FILE.format(path=path)
    return (f"BIO_new_file() failed (SSL: error:{0x80000000 | err.errno:08X}:system library::"
            f"{err.strerror}:calling fopen({path}, r) error:10080002:BIO routines::system lib)")


@contextlib.contextmanager
def _pem_path(value: str, pem: bytes):
    """A path OpenSSL can read `value` from: the file itself, or for a "data:" value an
    anonymous memory file holding it (Python's ssl loads certificates from paths only)."""
    if not value.startswith("data:"):
        yield value
        return
    fd = os.memfd_create("ngate-pem", os.MFD_CLOEXEC)
    try:
        os.write(fd, pem)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def _none() -> bytes:
    """The password callback when no ssl_password_file is given: never prompt on a tty."""
    return b""


def _check_pem(path: str, label: bytes, head: str, bad: str) -> bytes:
    if path.startswith("data:"):
        data = path[5:].encode("utf-8", "surrogateescape")
    else:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as err:
            raise ConfigError(head + _bio_new_file_failed(path, err)) from None
    if b"-----BEGIN " not in data or label not in data:
        raise ConfigError(head + bad)
    return data


def load_verify(ctx: ssl.SSLContext, path: str) -> None:
    if not os.path.exists(path):
        raise ConfigError(f'SSL_CTX_load_verify_locations("{path}") failed (SSL: error:80000002:'
                          f"system library::No such file or directory:calling fopen({path}, r) "
                          "error:10000080:BIO routines::no such file error:05880002:x509 "
                          "certificate routines::system lib)")
    try:
        ctx.load_verify_locations(path)
    except ssl.SSLError as exc:
        raise ConfigError(f'SSL_CTX_load_verify_locations("{path}") failed (SSL: {_reason(exc)})'
                          ) from None


def _load(method, path: str) -> None:
    if not os.path.exists(path):
        raise ConfigError(f'BIO_new_file("{path}") failed (SSL: error:80000002:system library::'
                          f"No such file or directory:calling fopen({path}, r) "
                          "error:10000080:BIO routines::no such file)")
    try:
        method(path)
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(f'PEM_read_bio_DHparams("{path}") failed (SSL: {_reason(exc)})') from None


def _reason(exc) -> str:
    return getattr(exc, "reason", None) or str(exc)


# ---------------------------------------------------------------- SNI (config time)

class TlsListen:
    """One `listen ... ssl` socket: its SNI table and the context handshakes start on."""

    def __init__(self, default_server, servers) -> None:
        self.default = default_server
        self.selector = ServerSelector(default_server, servers)
        # some server of this socket verifies client certificates: requests are checked
        self.verifies = any(s.tls.verify_client != "off" for s in servers)
        # sessions are cached (the default server's context holds the cache, as in nginx)
        self.caches = not {"off", "none"} & set(default_server.tls.session_cache)
        front = server_context(default_server.tls, quiet=True)
        if self.verifies and not openssl.AVAILABLE:
            front.verify_mode = ssl.CERT_OPTIONAL    # no way to switch it per SNI server
        front.sni_callback = self._servername
        front.sslobject_class = AcceptedSSLObject
        self.context = front
        self.dynamic = tls_certs.ContextCache()     # contexts of certificates with variables

    def _servername(self, ssl_obj, name, _ctx):
        """nginx's ngx_http_ssl_servername: the server for the SNI name (else the default), its
        certificate and its client verification settings; then, for certificates with
        variables, what ngx_http_ssl_certificate loads. A refusal sends its alert itself
        (uvloop's SSL transport drops what OpenSSL queues when a handshake fails)."""
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
        ssl_obj.ngate_name = name
        ssl_obj.ngate_host = host       # set when SNI named a server: the 421 check
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
    """End the handshake with `alert`: sent on the socket now, logged once it is closed."""
    if acceptor is not None:
        acceptor.refuse(alert, text)
    return alert


class AcceptedSSLObject(ssl.SSLObject):
    """The SSLObject of a handshake on a TLS socket: the TlsAcceptor that started it picks it up
    (`made`) right after uvloop's SSLProtocol creates it, so the SNI callback reaches the
    connection (its addresses for the variables, its socket for alerts)."""
    made = None

    @classmethod
    def _create(cls, *args, **kwargs):
        obj = super()._create(*args, **kwargs)
        AcceptedSSLObject.made = obj
        return obj


def build_listens(by_listen: dict) -> dict:
    """listen key -> TlsListen, for every `listen ... ssl` socket (`ssl` on any listen of that
    address, as nginx ORs it). A plain listen of a server that also has an ssl one stays plain."""
    out = {key: TlsListen(default, servers)
           for key, (default, servers) in by_listen.items()
           if any(lst.ssl for srv in servers for lst in srv.listens if lst.key == key)}
    for key, tls_listen in out.items():
        servers = by_listen[key][1]
        if speaks_http2(key, servers):      # ALPN offers h2 first (ngate/http2/)
            tls_listen.dynamic.h2 = True
            for c in {id(c): c for c in [tls_listen.context] + [
                    s.tls.context for s in servers if s.tls is not None and s.tls.context]}.values():
                openssl.set_alpn(c, h2=True)
    return out


def speaks_http2(key, servers) -> bool:
    """`listen ... http2` on the socket (nginx 1.22) or `http2 on` in a server of it (1.25)."""
    return any(lst.http2 for srv in servers for lst in srv.listens if lst.key == key) \
        or any(srv.http2 for srv in servers)


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
            text = f"SSL_do_handshake() failed (SSL: {_reason(exc)})"
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


# ---------------------------------------------------------------- HTTP on a TLS socket

class HttpsConnection(HttpConnection):
    """HTTP over TLS. On a socket where some server verifies client certificates, each request
    passes nginx's checks first (ngx_http_set_virtual_server, ngx_http_process_request):
    421 when the Host names another server than SNI did and that server verifies; then, for
    the request's server, 495 ("400 The SSL certificate error") when the chain failed
    verification (`optional_no_ca` lets an unknown CA through) and 496 ("400 No required SSL
    certificate was sent") with `ssl_verify_client on` and no certificate."""
    __slots__ = ()
    handed_over = True      # accepted (and counted) by the TlsAcceptor

    def connection_made(self, transport) -> None:
        if self.listen.http2:
            tls = transport.get_extra_info("ssl_object")
            if tls is not None and tls.selected_alpn_protocol() == "h2":
                from ngate.http2.connection import Http2Connection
                return Http2Connection.take_over(self, transport, "h2")
        super().connection_made(transport)

    def start_request(self, ctx, req) -> None:
        if self.listen.ssl_context.verifies:
            server = _server_for(ctx, self.listen)
            refusal = client_refusal(self.tls, server, ctx.host, self.listen.ssl_context)
            if refusal is not None:
                return refuse(ctx, req, *refusal)
        phases.start_request(ctx, req)

    def connection_lost(self, exc) -> None:
        if self.tls is not None and self.listen.ssl_context.caches:
            openssl.keep_session(self.tls)
        super().connection_lost(exc)


def client_refusal(tls, server, host: str, listen) -> tuple | None:
    """(server, status, message) when nginx refuses the request for its TLS client, else None."""
    sni = getattr(tls, "ngate_host", None)
    if sni and sni != host and server.tls is not None and server.tls.verify_client != "off":
        return (listen.selector.select(sni), 421, "client attempted to request the server name "
                "different from the one that was negotiated")
    mode = server.tls.verify_client if server.tls is not None else "off"
    if mode == "off":
        return None
    code = openssl.verify_result(tls)
    if code and (mode != "optional_no_ca" or code not in openssl.OPTIONAL_NO_CA_ERRORS):
        return (server, 495,
                f"client SSL certificate verify error: ({code}:{openssl.verify_error(code)})")
    if mode == "on" and not tls.getpeercert(binary_form=True):
        return server, 496, "client sent no required SSL certificate"
    return None


class PlainHttpOnTls(HttpConnection):
    """A plain HTTP request on a TLS socket: nginx reads the head, then answers 497."""
    __slots__ = ()

    def __init__(self, runtime, listen) -> None:
        super().__init__(runtime, listen)
        self.scheme = "http"

    def start_request(self, ctx, req) -> None:
        refuse(ctx, req, _server_for(ctx, self.listen), 497,
               "client sent plain HTTP request to HTTPS port")


def _server_for(ctx, listen):
    raw = ctx.hdr.get(b"host")
    host = normalize_host(raw) if raw else None
    ctx.host = host or ""
    return listen.selector.select(host) if host else listen.default_server


def refuse(ctx, req, server, status: int, message: str) -> None:
    """nginx's checks while reading the head (ngx_http_process_request): logged at info, then
    the status (with the server's error_page for it, e.g. `error_page 497 https://$host...`)."""
    ctx.req = req
    ctx.server = server
    ctx.conf = server.conf
    ctx.host = ctx.host or server.names.first
    ctx.uri = ctx.request_uri.split("?", 1)[0] or "/"
    ctx.keep_alive = False
    error_log.info(message + " while reading client request headers"
                   + error_log.request_suffix(ctx), ctx.conn.number)
    phases.finalize(ctx, status)


# ---------------------------------------------------------------- variables

_DN_NAMES = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
             "countryName": "C", "stateOrProvinceName": "ST", "localityName": "L",
             "domainComponent": "DC", "emailAddress": "emailAddress", "streetAddress": "street",
             "serialNumber": "serialNumber", "userId": "UID"}


def client_s_dn(ssl_object) -> str | None:
    """$ssl_client_s_dn: the verified client certificate's subject, RFC 2253 (as nginx 1.11.6+)."""
    cert = ssl_object.getpeercert()
    if not cert:
        return None
    rdns = []
    for rdn in reversed(cert.get("subject", ())):
        rdns.append("+".join(f"{_DN_NAMES.get(k, k)}={_dn_escape(v)}" for k, v in rdn))
    return ",".join(rdns)


def _dn_escape(value: str) -> str:
    out = "".join("\\" + ch if ch in ',+"\\<>;' else ch for ch in value)
    if out[:1] in ("#", " "):
        out = "\\" + out
    if out.endswith(" "):
        out = out[:-1] + "\\ "
    return out
