"""OCSP stapling at config time, through server/openssl.py's ctypes handle on libssl.

nginx's ngx_event_openssl_stapling.c: each certificate's issuer is looked for among its chain
certificates, then in the context's store (ssl_trusted_certificate, ssl_client_certificate);
the responder URL comes from the certificate's Authority Information Access (or
ssl_stapling_responder). With ssl_stapling_file the DER response is loaded once and stapled to
every handshake that asks. Without it each certificate of the context gets a `Staple`
(ngx_ssl_stapling_t): the status callback finds it by the certificate the handshake uses (an RSA
and an ECDSA certificate each have their own), staples its response while it is valid, and
starts a fetch on the worker's event loop when the refresh time has come (ocsp_fetch.py): the
first handshakes, before a response is fetched, get none, as in nginx.
`STAPLING` is False where the library cannot be bound (ssl_stapling is then ignored with a warning).
"""
from __future__ import annotations

import asyncio
import ctypes
import itertools
import socket
import ssl
import time
import weakref
from urllib.parse import urlsplit

from ngate.server import ocsp, ocsp_fetch
from ngate.server.openssl import _PTR, _ctx_of, _lib, bind_table


_STATUS_CB = ctypes.CFUNCTYPE(ctypes.c_int, _PTR, _PTR)
_CTRL_SET_TLSEXT_STATUS_REQ_CB = 63
_CTRL_SET_TLSEXT_STATUS_REQ_CB_ARG = 64
_CTRL_SET_TLSEXT_STATUS_REQ_OCSP_RESP = 71
_CTRL_GET_EXTRA_CHAIN_CERTS = 82
_CTRL_SELECT_CURRENT_CERT = 116
_TLSEXT_ERR_OK = 0
_TLSEXT_ERR_NOACK = 3


class _Staple(ctypes.Structure):
    _fields_ = [("data", _PTR), ("len", ctypes.c_long)]


def _bind_stapling(lib):
    table = {
        "BIO_new_file": (_PTR, [ctypes.c_char_p, ctypes.c_char_p]),
        "BIO_free": (ctypes.c_int, [_PTR]),
        "PEM_read_bio_X509": (_PTR, [_PTR, _PTR, _PTR, _PTR]),
        "X509_free": (None, [_PTR]),
        "X509_check_issued": (ctypes.c_int, [_PTR, _PTR]),
        "X509_up_ref": (ctypes.c_int, [_PTR]),
        "BIO_new_mem_buf": (_PTR, [ctypes.c_char_p, ctypes.c_int]),
        "SSL_CTX_get0_certificate": (_PTR, [_PTR]),
        "SSL_get_certificate": (_PTR, [_PTR]),
        "X509_get1_ocsp": (_PTR, [_PTR]),
        "X509_email_free": (None, [_PTR]),
        "OPENSSL_sk_num": (ctypes.c_int, [_PTR]),
        "OPENSSL_sk_value": (ctypes.c_char_p, [_PTR, ctypes.c_int]),
        "SSL_CTX_get_cert_store": (_PTR, [_PTR]),
        "X509_STORE_CTX_new": (_PTR, []),
        "X509_STORE_CTX_free": (None, [_PTR]),
        "X509_STORE_CTX_init": (ctypes.c_int, [_PTR, _PTR, _PTR, _PTR]),
        "X509_STORE_CTX_get1_issuer": (ctypes.c_int, [ctypes.POINTER(_PTR), _PTR, _PTR]),
        "d2i_OCSP_RESPONSE": (_PTR, [_PTR, ctypes.POINTER(ctypes.c_char_p), ctypes.c_long]),
        "OCSP_RESPONSE_free": (None, [_PTR]),
        "CRYPTO_malloc": (_PTR, [ctypes.c_size_t, ctypes.c_char_p, ctypes.c_int]),
        "SSL_CTX_callback_ctrl": (ctypes.c_long, [_PTR, ctypes.c_int, _STATUS_CB]),
        "SSL_ctrl": (ctypes.c_long, [_PTR, ctypes.c_int, ctypes.c_long, _PTR]),
        "ERR_clear_error": (None, []),
    }
    return bind_table(lib, table)


def _load_stapling():
    if _lib is None:
        return None
    try:
        return _bind_stapling(_lib)
    except AttributeError:
        return None


_st = _load_stapling()
STAPLING = _st is not None and ocsp.AVAILABLE


@_STATUS_CB
def _status_callback(ssl_ptr, arg):
    """ngx_ssl_certificate_status_callback for a response from ssl_stapling_file: a copy in
    OpenSSL's memory (the SSL frees it), or no status for a client that did not ask."""
    staple = _Staple.from_address(arg)
    copy = _st.CRYPTO_malloc(staple.len, b"ngate", 0)
    if not copy:
        return _TLSEXT_ERR_NOACK
    ctypes.memmove(copy, staple.data, staple.len)
    if _st.SSL_ctrl(ssl_ptr, _CTRL_SET_TLSEXT_STATUS_REQ_OCSP_RESP, staple.len, copy) != 1:
        return _TLSEXT_ERR_NOACK
    return _TLSEXT_ERR_OK


def ocsp_response_error(der: bytes) -> str | None:
    """None when d2i_OCSP_RESPONSE accepts the bytes (ngx_ssl_stapling_file's check), else
    OpenSSL's errors as nginx's ngx_ssl_error writes them."""
    buf = ctypes.c_char_p(der)
    resp = _st.d2i_OCSP_RESPONSE(None, ctypes.byref(buf), len(der))
    if resp:
        _st.OCSP_RESPONSE_free(resp)
        return None
    return ocsp.error_queue() or "error"


def staple_file(context: ssl.SSLContext, der: bytes) -> None:
    """Staple `der` (a checked OCSP response) to every handshake of this context that asks."""
    buf = ctypes.create_string_buffer(der, len(der))
    staple = _Staple(ctypes.cast(buf, _PTR), len(der))
    context._ngate_staple = (buf, staple)        # lives as long as the SSL_CTX it serves
    ptr = _ctx_of(context)
    _st.SSL_CTX_callback_ctrl(ptr, _CTRL_SET_TLSEXT_STATUS_REQ_CB, _status_callback)
    _st.SSL_CTX_ctrl(ptr, _CTRL_SET_TLSEXT_STATUS_REQ_CB_ARG, 0, ctypes.addressof(staple))


class Staple:
    """One certificate's fetched response (ngx_ssl_stapling_t): what to ask, where, and what is
    stapled until when. `refresh` 0: fetch at the first handshake that asks."""
    __slots__ = ("cert", "issuer", "chain", "store", "flags", "name", "host", "port", "uri",
                 "addrs", "resolver", "resolver_timeout", "der", "valid", "refresh", "loading")

    def __init__(self, cert, issuer, chain, store, verify: bool, name: str, url) -> None:
        self.cert, self.issuer, self.chain, self.store = cert, issuer, chain, store
        self.flags = ocsp.TRUSTOTHER if verify else ocsp.NOVERIFY
        self.name = name
        self.host, self.port, self.uri, self.addrs = url
        self.resolver, self.resolver_timeout = None, 30.0
        self.der, self.valid, self.refresh, self.loading = b"", 0.0, 0, False


class _Staples:
    """The staples of one SSLContext, by the address of its certificates' X509."""
    __slots__ = ("by_cert", "context")

    def __init__(self, context: ssl.SSLContext) -> None:
        self.by_cert: dict[int, Staple] = {}
        self.context = weakref.ref(context)


_CONTEXTS: dict[int, _Staples] = {}
_KEYS = itertools.count(1)
_FETCHES: set = set()           # running fetches (the event loop keeps only weak references)


def staple_fetched(context: ssl.SSLContext, certificates, responder: str | None,
                   verify: bool) -> list[tuple[str, str]]:
    """ngx_ssl_stapling without a file: a Staple for each certificate nginx would fetch a
    response for, and the status callback; returns (certificate, why it is ignored) for the
    others (nginx's warning, without the name)."""
    staples = _Staples(context)
    ignored = []
    for path in certificates:
        staple = _prepare(context, path, responder, verify)
        if isinstance(staple, str):
            ignored.append((path, staple))
        else:
            staples.by_cert[staple.cert] = staple
    if not staples.by_cert:
        return ignored
    key = context._ngate_staples = next(_KEYS)
    _CONTEXTS[key] = staples
    weakref.finalize(context, _forget, key, [s.issuer for s in staples.by_cert.values()])
    ptr = _ctx_of(context)
    _st.SSL_CTX_callback_ctrl(ptr, _CTRL_SET_TLSEXT_STATUS_REQ_CB, _fetched_callback)
    _st.SSL_CTX_ctrl(ptr, _CTRL_SET_TLSEXT_STATUS_REQ_CB_ARG, 0, key)
    return ignored


def set_resolver(context: ssl.SSLContext, resolver, timeout: float) -> None:
    """ngx_ssl_stapling_resolver: the server's `resolver` (None: none) for its responders."""
    key = getattr(context, "_ngate_staples", None)
    for staples in (_CONTEXTS.get(key),) if key else ():
        for staple in staples.by_cert.values():
            staple.resolver, staple.resolver_timeout = resolver, timeout


def _forget(key: int, issuers: list) -> None:
    _CONTEXTS.pop(key, None)
    if _st is not None:
        for issuer in issuers:
            _st.X509_free(issuer)


@_STATUS_CB
def _fetched_callback(ssl_ptr, arg):
    """ngx_ssl_certificate_status_callback: the response of the certificate in use while it is
    valid; a fetch when its refresh time has come (ngx_ssl_stapling_update)."""
    try:
        staples = _CONTEXTS.get(arg)
        staple = staples.by_cert.get(_st.SSL_get_certificate(ssl_ptr)) if staples else None
        if staple is None:
            return _TLSEXT_ERR_NOACK
        now = time.time()
        rc = _TLSEXT_ERR_NOACK
        if staple.der and staple.valid >= int(now):
            rc = _set_response(ssl_ptr, staple.der)
        if not staple.loading and staple.refresh < int(now):
            _update(staples, staple)
        return rc
    except Exception:       # never an exception through OpenSSL's stack
        return _TLSEXT_ERR_NOACK


def _set_response(ssl_ptr, der: bytes) -> int:
    """A copy in OpenSSL's memory (the SSL frees it)."""
    copy = _st.CRYPTO_malloc(len(der), b"ngate", 0)
    if not copy:
        return _TLSEXT_ERR_NOACK
    ctypes.memmove(copy, der, len(der))
    if _st.SSL_ctrl(ssl_ptr, _CTRL_SET_TLSEXT_STATUS_REQ_OCSP_RESP, len(der), copy) != 1:
        return _TLSEXT_ERR_NOACK
    return _TLSEXT_ERR_OK


def _update(staples: _Staples, staple: Staple) -> None:
    context = staples.context()
    if context is None:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    staple.loading = True
    task = loop.create_task(ocsp_fetch.fetch(staple, context))
    _FETCHES.add(task)
    task.add_done_callback(_FETCHES.discard)


def _prepare(context: ssl.SSLContext, path: str, responder: str | None, verify: bool):
    """ngx_ssl_stapling_certificate: a Staple, or why nginx ignores this certificate."""
    certs = _read_certs(path)
    if not certs:
        return "ngate could not read the certificate"
    try:
        ptr = _ctx_of(context)
        if _st.SSL_CTX_ctrl(ptr, _CTRL_SELECT_CURRENT_CERT, 0, certs[0]) != 1:
            return "ngate could not find the certificate"
        cert = _st.SSL_CTX_get0_certificate(ptr)
        chain = _PTR()
        _st.SSL_CTX_ctrl(ptr, _CTRL_GET_EXTRA_CHAIN_CERTS, 0, ctypes.addressof(chain))
        issuer = _issuer(context, cert, chain.value)
        if not issuer:
            return "issuer certificate not found for certificate"
        url = responder.encode("latin-1") if responder else ocsp_url(cert)
        target = _responder(url)
        if isinstance(target, str):
            _st.X509_free(issuer)
            return target
        store = _st.SSL_CTX_get_cert_store(ptr)
        return Staple(cert, issuer, chain.value, store, verify, path, target)
    finally:
        for c in certs:
            _st.X509_free(c)


def _issuer(context: ssl.SSLContext, cert, chain) -> int | None:
    """ngx_ssl_stapling_issuer: among the chain certificates, else in the store (a reference
    the caller frees)."""
    for i in range(_st.OPENSSL_sk_num(chain) if chain else 0):
        c = ocsp.sk_value(chain, i)
        if _st.X509_check_issued(c, cert) == 0:
            _st.X509_up_ref(c)
            return c
    return _in_store(context, cert)


def _responder(url: bytes | None):
    """ngx_ssl_stapling_responder: (host, port, uri, config-time addresses), or nginx's
    warning."""
    if not url:
        return "no OCSP responder URL in the certificate"
    text = url.decode("latin-1")
    if len(text) <= 7 or not text.lower().startswith("http://"):
        return f'invalid URL prefix in OCSP responder "{text}" in the certificate'
    target = parse_responder(text[7:], resolve=True)
    if isinstance(target, str):
        return f'{target} in OCSP responder "{text[7:]}" in the certificate'
    return target


def parse_responder(rest: str, resolve: bool):
    """ngx_parse_url of a responder after its "http://": (host, port, uri, addresses), or
    ngx_parse_url's error ("invalid port", "host not found" when `resolve`d at config time)."""
    try:
        parts = urlsplit("http://" + rest)
        host, port = parts.hostname, parts.port or 80
    except ValueError:
        return "invalid port"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    shown = netloc.rsplit(":", 1)[0] if parts.port is not None else netloc
    uri = parts.path or "/"
    if parts.query:
        uri += "?" + parts.query
    if not host:
        return (shown, port, uri, ()) if not resolve else "no host"
    if not resolve:
        return (shown, port, uri, ())
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return "host not found"
    return (shown, port, uri, tuple(dict.fromkeys(info[4][0] for info in infos)))


def ocsp_url(cert) -> bytes | None:
    urls = _st.X509_get1_ocsp(cert)
    if not urls:
        return None
    try:
        return _st.OPENSSL_sk_value(urls, 0) if _st.OPENSSL_sk_num(urls) > 0 else None
    finally:
        _st.X509_email_free(urls)


def _read_certs(path: str) -> list:
    if path.startswith("data:"):
        data = path[5:].encode("utf-8", "surrogateescape")
        bio = _st.BIO_new_mem_buf(data, len(data))
    else:
        bio = _st.BIO_new_file(path.encode(), b"r")
    if not bio:
        return []
    certs = []
    try:
        while True:
            x = _st.PEM_read_bio_X509(bio, None, None, None)
            if not x:
                break
            certs.append(x)
    finally:
        _st.BIO_free(bio)
        _st.ERR_clear_error()       # PEM_read_bio_X509 ends with "no start line"
    return certs


def _in_store(context: ssl.SSLContext, cert):
    """X509_STORE_CTX_get1_issuer in the context's store: the issuer (a reference the caller
    frees) or None."""
    store = _st.SSL_CTX_get_cert_store(_ctx_of(context))
    sctx = _st.X509_STORE_CTX_new()
    if not store or not sctx:
        return None
    try:
        if not _st.X509_STORE_CTX_init(sctx, store, None, None):
            return None
        issuer = _PTR()
        found = _st.X509_STORE_CTX_get1_issuer(ctypes.byref(issuer), sctx, cert) == 1
        return issuer.value if found else None
    finally:
        _st.X509_STORE_CTX_free(sctx)
