"""The few OpenSSL calls Python's ssl module does not expose, made on its own SSL_CTX and SSL.

nginx verifies a client certificate with a callback that never fails the handshake and checks
SSL_get_verify_result per request (400 "The SSL certificate error", or a pass for
`optional_no_ca`); it sets a verify depth, session cache mode and timeout, a session id context
per server, and curve lists. Python's ssl has none of these, so this module calls libssl through
ctypes on the pointers CPython's _ssl objects hold: a PySSLContext starts with its SSL_CTX* right
after the object header, a PySSLSocket (SSLObject._sslobj) with a weakref then its SSL*.

Those offsets are checked once at import (an SSL made from a known SSL_CTX must point back to
it); if the check fails (another Python build), AVAILABLE is False and callers keep Python's
behaviour: a failed client certificate then ends the handshake, as documented in the README.
OCSP stapling, on the same handle, is in ocsp_stapling.py.
"""
from __future__ import annotations

import ctypes
import ssl
import sys

_PTR = ctypes.c_void_p
_HEAD = sys.getsizeof(object())          # PyObject_HEAD: refcount + type
SSL_VERIFY_PEER = 0x01
_SENT_SHUTDOWN = 1
_RECEIVED_SHUTDOWN = 2
_CTRL_SET_SESS_CACHE_SIZE = 42
_CTRL_SET_SESS_CACHE_MODE = 44
_CTRL_SET_GROUPS_LIST = 92
SESS_CACHE_OFF = 0x0
SESS_CACHE_SERVER = 0x2
SESS_CACHE_NO_AUTO_CLEAR = 0x80
SESS_CACHE_NO_INTERNAL_STORE = 0x200

# X509_V_ERR_* that `ssl_verify_client optional_no_ca` lets through (ngx_ssl_verify_error_optional)
OPTIONAL_NO_CA_ERRORS = frozenset({
    18,     # DEPTH_ZERO_SELF_SIGNED_CERT
    19,     # SELF_SIGNED_CERT_IN_CHAIN
    2,      # UNABLE_TO_GET_ISSUER_CERT
    20,     # UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    21,     # UNABLE_TO_VERIFY_LEAF_SIGNATURE
    27,     # CERT_UNTRUSTED
})

_VERIFY_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, _PTR)


@_VERIFY_CB
def _accept_chain(_preverify_ok, _store_ctx):
    """nginx's ngx_http_ssl_verify_callback: never fail the handshake; the result is kept in
    SSL_get_verify_result and judged per request."""
    return 1


# ALPN: nginx's ngx_http_ssl_alpn_select, the server's order (h2 first where the server chosen
# by SNI has `http2 on` or the socket `listen ... http2`: the SNI callback's `ngate_h2` on the
# SSLObject, else the context's), and a fatal no_application_protocol alert when the client
# offers none of them
_ALPN_CB = ctypes.CFUNCTYPE(ctypes.c_int, _PTR, _PTR, _PTR, _PTR, ctypes.c_uint, _PTR)
_ALPN_PROTOS = {1: b"\x08http/1.1\x08http/1.0\x08http/0.9",
                2: b"\x02h2\x08http/1.1\x08http/1.0\x08http/0.9"}
_ALPN_BUFFERS = {k: ctypes.create_string_buffer(v, len(v)) for k, v in _ALPN_PROTOS.items()}
_NPN_NEGOTIATED = 1
_TLSEXT_ERR_ALERT_FATAL = 2


_ALERT_NO_APPLICATION_PROTOCOL = 120
_NO_ALPN = ("SSL_do_handshake() failed (SSL: error:0A0000EB:SSL routines::no application "
            "protocol)")


@_ALPN_CB
def _alpn_select(ssl_ptr, out, outlen, client, client_len, arg):
    owner = _owner(ssl_ptr)
    h2 = getattr(owner, "ngate_h2", None)
    buf = _ALPN_BUFFERS[arg if h2 is None else 2 if h2 else 1]
    if _lib.SSL_select_next_proto(out, outlen, ctypes.addressof(buf), len(buf), client,
                                  client_len) == _NPN_NEGOTIATED:
        return 0
    # logged by the handshake's TlsAcceptor (tls.py); OpenSSL sends the alert
    acceptor = getattr(owner, "ngate_acceptor", None)
    if acceptor is not None:
        acceptor.refuse(_ALERT_NO_APPLICATION_PROTOCOL, _NO_ALPN)
    return _TLSEXT_ERR_ALERT_FATAL


def _owner(ssl_ptr):
    """The ssl.SSLObject of an SSL*: CPython keeps its _SSLSocket as the SSL's app data."""
    sock = _lib.SSL_get_ex_data(ssl_ptr, 0)
    return ctypes.cast(sock, ctypes.py_object).value.owner if sock else None


def _bind(lib):
    table = {
        "SSL_get_SSL_CTX": (_PTR, [_PTR]),
        "SSL_CTX_get_verify_mode": (ctypes.c_int, [_PTR]),
        "SSL_CTX_set_verify": (None, [_PTR, ctypes.c_int, _VERIFY_CB]),
        "SSL_CTX_set_verify_depth": (None, [_PTR, ctypes.c_int]),
        "SSL_CTX_get_verify_depth": (ctypes.c_int, [_PTR]),
        "SSL_CTX_get_verify_callback": (_PTR, [_PTR]),
        "SSL_set_verify": (None, [_PTR, ctypes.c_int, _PTR]),
        "SSL_set_verify_depth": (None, [_PTR, ctypes.c_int]),
        "SSL_get_verify_result": (ctypes.c_long, [_PTR]),
        "SSL_set_shutdown": (None, [_PTR, ctypes.c_int]),
        "SSL_CTX_ctrl": (ctypes.c_long, [_PTR, ctypes.c_int, ctypes.c_long, _PTR]),
        "SSL_CTX_set_timeout": (ctypes.c_long, [_PTR, ctypes.c_long]),
        "SSL_CTX_set_session_id_context": (ctypes.c_int, [_PTR, ctypes.c_char_p, ctypes.c_uint]),
        "SSL_load_client_CA_file": (_PTR, [ctypes.c_char_p]),
        "SSL_CTX_set_client_CA_list": (None, [_PTR, _PTR]),
        "X509_verify_cert_error_string": (ctypes.c_char_p, [ctypes.c_long]),
        "SSL_CTX_set_alpn_select_cb": (None, [_PTR, _ALPN_CB, _PTR]),
        "SSL_get_ex_data": (_PTR, [_PTR, ctypes.c_int]),
        "SSL_select_next_proto": (ctypes.c_int, [_PTR, _PTR, _PTR, ctypes.c_uint, _PTR,
                                                 ctypes.c_uint]),
    }
    return bind_table(lib, table)


def bind_table(lib, table: dict):
    """Set each function's (restype, argtypes) of `table` on the handle `lib`; returns it."""
    for name, (restype, argtypes) in table.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


def own_handle(bind):
    """`bind(lib)` on a handle of its own to the libssl/libcrypto _ssl links (argtypes set on it
    do not change this module's), or None where the library or a function is missing."""
    try:
        import _ssl
        return bind(ctypes.CDLL(_ssl.__file__))
    except (ImportError, AttributeError, OSError):
        return None


def _load():
    """libssl as CPython's _ssl module linked it (the very library its objects live in)."""
    try:
        import _ssl
        lib = _bind(ctypes.CDLL(_ssl.__file__))
        probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        obj = probe.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_side=True)
        if lib.SSL_get_SSL_CTX(_ssl_of(obj)) != _ctx_of(probe):
            return None
        return lib
    except (ImportError, AttributeError, OSError, ValueError):
        return None


def _ctx_of(context: ssl.SSLContext) -> int:
    return _PTR.from_address(id(context) + _HEAD).value


def _ssl_of(ssl_object) -> int:
    return _PTR.from_address(id(ssl_object._sslobj) + _HEAD + ctypes.sizeof(_PTR)).value


_lib = _load()
AVAILABLE = _lib is not None


# ---------------------------------------------------------------- contexts (config time)

def verify_per_request(context: ssl.SSLContext, depth: int) -> None:
    """Client certificates as nginx checks them: SSL_VERIFY_PEER with a callback that accepts
    every chain (the verdict is read per request), and the verify depth."""
    if _lib is None:
        return
    ptr = _ctx_of(context)
    _lib.SSL_CTX_set_verify(ptr, _lib.SSL_CTX_get_verify_mode(ptr), _accept_chain)
    _lib.SSL_CTX_set_verify_depth(ptr, depth)


def set_client_ca_list(context: ssl.SSLContext, path: str) -> None:
    """The CA names a server sends in its CertificateRequest (browsers pick a certificate by
    them), read from ssl_client_certificate as nginx does."""
    if _lib is None:
        return
    names = _lib.SSL_load_client_CA_file(path.encode())
    if names:
        _lib.SSL_CTX_set_client_CA_list(_ctx_of(context), names)


def set_alpn(context: ssl.SSLContext, h2: bool) -> None:
    """The protocols a server context selects by ALPN (h2 only on a socket that speaks it);
    a client offering none of them is refused as nginx refuses it."""
    if _lib is None:
        context.set_alpn_protocols(["h2", "http/1.1"] if h2 else ["http/1.1"])
        return
    _lib.SSL_CTX_set_alpn_select_cb(_ctx_of(context), _alpn_select, 2 if h2 else 1)


def set_verify_depth(context: ssl.SSLContext, depth: int) -> None:
    if _lib is not None:
        _lib.SSL_CTX_set_verify_depth(_ctx_of(context), depth)


def set_session_cache(context: ssl.SSLContext, cache: tuple, timeout: float) -> None:
    """ssl_session_cache and ssl_session_timeout, as ngx_ssl_session_cache sets them. A
    `shared:` zone is this worker's built-in cache (session tickets, whose keys all workers
    share, resume across workers)."""
    if _lib is None:
        return
    ptr = _ctx_of(context)
    if "off" in cache:
        _lib.SSL_CTX_ctrl(ptr, _CTRL_SET_SESS_CACHE_MODE, SESS_CACHE_OFF, None)
        return
    if "none" in cache:
        mode = SESS_CACHE_SERVER | SESS_CACHE_NO_AUTO_CLEAR | SESS_CACHE_NO_INTERNAL_STORE
        _lib.SSL_CTX_ctrl(ptr, _CTRL_SET_SESS_CACHE_MODE, mode, None)
        _lib.SSL_CTX_ctrl(ptr, _CTRL_SET_SESS_CACHE_SIZE, 1, None)
    else:
        _lib.SSL_CTX_ctrl(ptr, _CTRL_SET_SESS_CACHE_MODE, SESS_CACHE_SERVER, None)
        for item in cache:
            if item.startswith("builtin:"):
                _lib.SSL_CTX_ctrl(ptr, _CTRL_SET_SESS_CACHE_SIZE, int(item[8:]), None)
    _lib.SSL_CTX_set_timeout(ptr, max(int(timeout), 1))


def set_session_id_context(context: ssl.SSLContext, sid_ctx: bytes) -> None:
    """A session resumes only on a server with the same certificates and client CA settings
    (nginx's ngx_ssl_session_id_context); at most 32 bytes."""
    if _lib is not None:
        _lib.SSL_CTX_set_session_id_context(_ctx_of(context), sid_ctx[:32], len(sid_ctx[:32]))


def set_groups(context: ssl.SSLContext, groups: str) -> bool:
    """ssl_ecdh_curve with a list ("X25519:prime256v1"); False if OpenSSL refuses it."""
    if _lib is None:
        return False
    return _lib.SSL_CTX_ctrl(_ctx_of(context), _CTRL_SET_GROUPS_LIST, 0,
                             ctypes.c_char_p(groups.encode())) == 1


# ---------------------------------------------------------------- connections (per handshake)

def adopt_verify(ssl_object, context: ssl.SSLContext) -> None:
    """After SNI switched the connection to another server's context: that server's verify mode,
    callback and depth (OpenSSL keeps the ones the handshake started with; nginx copies them)."""
    if _lib is None:
        return
    ctx = _ctx_of(context)
    ptr = _ssl_of(ssl_object)
    _lib.SSL_set_verify(ptr, _lib.SSL_CTX_get_verify_mode(ctx), _lib.SSL_CTX_get_verify_callback(ctx))
    _lib.SSL_set_verify_depth(ptr, _lib.SSL_CTX_get_verify_depth(ctx))


def verify_result(ssl_object) -> int:
    """X509_V_OK (0) or the X509_V_ERR_* of the peer's chain (0 when there was no certificate)."""
    if _lib is None:
        return 0
    return _lib.SSL_get_verify_result(_ssl_of(ssl_object))


def verify_error(code: int) -> str:
    """OpenSSL's text for an X509_V_ERR_* code ("unable to get local issuer certificate")."""
    if _lib is None:
        return f"error {code}"
    return _lib.X509_verify_cert_error_string(code).decode()


def keep_session(ssl_object) -> None:
    """Before a connection the peer closed without close_notify is freed: mark it shut down, or
    OpenSSL drops its session from the cache (nginx does the same in ngx_ssl_shutdown)."""
    if _lib is not None:
        _lib.SSL_set_shutdown(_ssl_of(ssl_object), _SENT_SHUTDOWN | _RECEIVED_SHUTDOWN)
