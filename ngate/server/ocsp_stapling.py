"""OCSP stapling at config time, through server/openssl.py's ctypes handle on libssl.

nginx's ngx_event_openssl_stapling.c: each certificate's issuer is looked for among its chain
certificates, then in the context's store (ssl_trusted_certificate, ssl_client_certificate);
the responder URL comes from the certificate's Authority Information Access. With
ssl_stapling_file the DER response is loaded once and stapled to every handshake that asks.
`STAPLING` is False where the library cannot be bound (ssl_stapling is then ignored with a warning).
"""
from __future__ import annotations

import ctypes
import ssl

from ngate.server.openssl import _PTR, _ctx_of, _lib


_STATUS_CB = ctypes.CFUNCTYPE(ctypes.c_int, _PTR, _PTR)
_CTRL_SET_TLSEXT_STATUS_REQ_CB = 63
_CTRL_SET_TLSEXT_STATUS_REQ_CB_ARG = 64
_CTRL_SET_TLSEXT_STATUS_REQ_OCSP_RESP = 71
_TLSEXT_ERR_OK = 0
_TLSEXT_ERR_NOACK = 3
_ERR_TXT_STRING = 0x02


class _Staple(ctypes.Structure):
    _fields_ = [("data", _PTR), ("len", ctypes.c_long)]


def _bind_stapling(lib):
    table = {
        "BIO_new_file": (_PTR, [ctypes.c_char_p, ctypes.c_char_p]),
        "BIO_free": (ctypes.c_int, [_PTR]),
        "PEM_read_bio_X509": (_PTR, [_PTR, _PTR, _PTR, _PTR]),
        "X509_free": (None, [_PTR]),
        "X509_check_issued": (ctypes.c_int, [_PTR, _PTR]),
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
        "ERR_get_error_all": (ctypes.c_ulong, [_PTR, _PTR, _PTR, ctypes.POINTER(ctypes.c_char_p),
                                               ctypes.POINTER(ctypes.c_int)]),
        "ERR_error_string_n": (None, [ctypes.c_ulong, ctypes.c_char_p, ctypes.c_size_t]),
    }
    for name, (restype, argtypes) in table.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


def _load_stapling():
    if _lib is None:
        return None
    try:
        return _bind_stapling(_lib)
    except AttributeError:
        return None


_st = _load_stapling()
STAPLING = _st is not None


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
    return _error_queue() or "error"


def _error_queue() -> str:
    """Drain OpenSSL's error queue: "error:...:reason[:data]" joined by spaces."""
    out = []
    text = ctypes.create_string_buffer(256)
    data, flags = ctypes.c_char_p(), ctypes.c_int()
    while True:
        code = _st.ERR_get_error_all(None, None, None, ctypes.byref(data), ctypes.byref(flags))
        if not code:
            return " ".join(out)
        _st.ERR_error_string_n(code, text, len(text))
        item = text.value.decode("latin-1")
        if data.value and flags.value & _ERR_TXT_STRING:
            item += ":" + data.value.decode("latin-1")
        out.append(item)


def staple_file(context: ssl.SSLContext, der: bytes) -> None:
    """Staple `der` (a checked OCSP response) to every handshake of this context that asks."""
    buf = ctypes.create_string_buffer(der, len(der))
    staple = _Staple(ctypes.cast(buf, _PTR), len(der))
    context._ngate_staple = (buf, staple)        # lives as long as the SSL_CTX it serves
    ptr = _ctx_of(context)
    _st.SSL_CTX_callback_ctrl(ptr, _CTRL_SET_TLSEXT_STATUS_REQ_CB, _status_callback)
    _st.SSL_CTX_ctrl(ptr, _CTRL_SET_TLSEXT_STATUS_REQ_CB_ARG, 0, ctypes.addressof(staple))


def stapling_problem(context: ssl.SSLContext, cert_path: str, responder: str | None) -> str:
    """Why nginx would ignore ssl_stapling for this certificate file (its warning's wording,
    without the name), or "" when it would fetch OCSP responses for it (from `responder`, else
    the certificate's Authority Information Access URL)."""
    certs = _read_certs(cert_path)
    if not certs:
        return ""
    try:
        cert, chain = certs[0], certs[1:]
        if not any(_st.X509_check_issued(c, cert) == 0 for c in chain) \
                and not _in_store(context, cert):
            return "issuer certificate not found for certificate"
        url = responder.encode("latin-1") if responder else _ocsp_url(cert)
        if not url:
            return "no OCSP responder URL in the certificate"
        if not url.lower().startswith(b"http://"):
            return (f'invalid URL prefix in OCSP responder "{url.decode("latin-1")}" in the '
                    "certificate")
        return ""
    finally:
        for c in certs:
            _st.X509_free(c)


def _ocsp_url(cert) -> bytes | None:
    urls = _st.X509_get1_ocsp(cert)
    if not urls:
        return None
    try:
        return _st.OPENSSL_sk_value(urls, 0) if _st.OPENSSL_sk_num(urls) > 0 else None
    finally:
        _st.X509_email_free(urls)


def _read_certs(path: str) -> list:
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


def _in_store(context: ssl.SSLContext, cert) -> bool:
    store = _st.SSL_CTX_get_cert_store(_ctx_of(context))
    sctx = _st.X509_STORE_CTX_new()
    if not store or not sctx:
        return False
    try:
        if not _st.X509_STORE_CTX_init(sctx, store, None, None):
            return False
        issuer = _PTR()
        found = _st.X509_STORE_CTX_get1_issuer(ctypes.byref(issuer), sctx, cert) == 1
        if found and issuer.value:
            _st.X509_free(issuer.value)
        return found
    finally:
        _st.X509_STORE_CTX_free(sctx)
