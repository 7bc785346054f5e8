"""HTTP on a TLS socket, once the accept path (server/tls.py) has handed the connection
over: HttpsConnection (HTTPS, or HTTP/2 when ALPN chose h2), VerifyingHttpsConnection with
nginx's client-certificate checks per request (421, 495, 496) on a socket where some server
verifies clients, and PlainHttpOnTls, the 497 answer to plain HTTP sent to an HTTPS port.
`https_connection(listen)` is the class for a socket, chosen at accept time.
"""
from __future__ import annotations

from ngate.http import phases
from ngate.observability import error_log
from ngate.routing.servers import normalize_host
from ngate.server import openssl
from ngate.server.connection import HttpConnection


class HttpsConnection(HttpConnection):
    """HTTP over TLS on a socket where no server verifies client certificates: a request goes
    to the HTTP core as on plain HTTP (HttpConnection.start_request, no frame between)."""
    __slots__ = ()
    handed_over = True      # accepted (and counted) by the TlsAcceptor

    def connection_made(self, transport) -> None:
        if self.listen.http2:
            tls = transport.get_extra_info("ssl_object")
            if tls is not None and tls.selected_alpn_protocol() == "h2":
                from ngate.http2.connection import Http2Connection
                return Http2Connection.take_over(self, transport, "h2")
        super().connection_made(transport)

    def connection_lost(self, exc) -> None:
        if self.tls is not None and self.listen.ssl_context.caches:
            openssl.keep_session(self.tls)
        super().connection_lost(exc)


class VerifyingHttpsConnection(HttpsConnection):
    """HTTP over TLS on a socket where some server verifies client certificates: each request
    passes nginx's checks first (ngx_http_set_virtual_server, ngx_http_process_request):
    421 when the Host names another server than SNI did and that server verifies; then, for
    the request's server, 495 ("400 The SSL certificate error") when the chain failed
    verification (`optional_no_ca` lets an unknown CA through) and 496 ("400 No required SSL
    certificate was sent") with `ssl_verify_client on` and no certificate. (HTTP/2 makes the
    same checks per stream: http2/connection.py calls client_refusal.)"""
    __slots__ = ()

    def start_request(self, ctx, req) -> None:
        server = server_for(ctx, self.listen)
        refusal = client_refusal(self.tls, server, ctx.host, self.listen.ssl_context)
        if refusal is not None:
            return refuse(ctx, req, *refusal)
        phases.start_request(ctx, req)


def https_connection(listen) -> type:
    """The connection class of a TLS socket (TlsListen): the per-request client-certificate
    checks only where some server of the socket verifies clients."""
    return VerifyingHttpsConnection if listen.ssl_context.verifies else HttpsConnection


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
    failed = getattr(tls, "ngate_ocsp", None)          # ssl_ocsp (ocsp_client.py)
    if failed:
        return server, 495, f"client SSL certificate verify error: {failed}"
    return None


class PlainHttpOnTls(HttpConnection):
    """A plain HTTP request on a TLS socket: nginx reads the head, then answers 497."""
    __slots__ = ()
    handed_over = True      # accepted (and counted) by the TlsAcceptor

    def __init__(self, runtime, listen) -> None:
        super().__init__(runtime, listen)
        self.scheme = "http"

    def start_request(self, ctx, req) -> None:
        refuse(ctx, req, server_for(ctx, self.listen), 497,
               "client sent plain HTTP request to HTTPS port")


def server_for(ctx, listen):
    raw = ctx.hdr.get(b"host")
    host = normalize_host(raw) if raw else None
    ctx.host = host or ""
    return listen.selector.select(host) if host else listen.default_server


def host_server(ctx, listen):
    """The server the Host (or :authority) selects, as the phases will; None for a Host they
    refuse (400 first, as nginx checks the Host before anything else)."""
    raw = ctx.hdr.get(b"host")
    if raw is None:
        return listen.selector.select(None)
    host = normalize_host(raw)
    return listen.selector.select(host) if host else None


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
