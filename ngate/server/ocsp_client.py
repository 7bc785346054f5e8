"""`ssl_ocsp on | leaf`: client certificates checked with OCSP after the handshake, as nginx's
ngx_ssl_ocsp_validate does it.

When a handshake has verified a client certificate (SSL_get_verify_result is X509_V_OK) on a
server with ssl_ocsp, the connection waits (nothing is read; client_header_timeout still runs)
while each certificate of the verified chain but the root (`leaf`: the client's only) is checked
in turn: its status from the ssl_ocsp_cache zone while valid, else from `ssl_ocsp_responder` or
the certificate's AIA responder (ocsp_fetch.ask: GET, 60 s, resolver), verified fully against
the chain and the context's store (OCSP_basic_verify with no flags), then cached (until its
nextUpdate, or an hour). The first certificate not "good" ends the check. The outcome is kept on
the SSL object (`ngate_ocsp`): None when good (or not checked), else nginx's text ("certificate
revoked", "certificate status unknown", "certificate status request failed"), which each request
turns into 400 "The SSL certificate error" (server/https.py) and $ssl_client_verify into
"FAILED:<text>". A resumed session has no verified chain: it is rebuilt with X509_verify_cert
from the peer's chain (a failure closes the connection, as in nginx).
"""
from __future__ import annotations

import asyncio
import ctypes

from ngate.errors import ConfigError
from ngate.observability import error_log
from ngate.server import ocsp, ocsp_fetch, openssl
from ngate.server.openssl import _PTR

_STATUS_TEXT = {1: "certificate revoked"}       # V_OCSP_CERTSTATUS_REVOKED
_UNKNOWN = "certificate status unknown"
_FAILED = "certificate status request failed"


def _bind(lib):
    table = {
        "SSL_get0_verified_chain": (_PTR, [_PTR]),
        "X509_chain_up_ref": (_PTR, [_PTR]),
        "SSL_get1_peer_certificate": (_PTR, [_PTR]),
        "SSL_get_peer_cert_chain": (_PTR, [_PTR]),
        "SSL_get_SSL_CTX": (_PTR, [_PTR]),
        "SSL_CTX_get_cert_store": (_PTR, [_PTR]),
        "X509_STORE_CTX_new": (_PTR, []),
        "X509_STORE_CTX_free": (None, [_PTR]),
        "X509_STORE_CTX_init": (ctypes.c_int, [_PTR, _PTR, _PTR, _PTR]),
        "X509_verify_cert": (ctypes.c_int, [_PTR]),
        "X509_STORE_CTX_get1_chain": (_PTR, [_PTR]),
        "X509_free": (None, [_PTR]),
        "OPENSSL_sk_num": (ctypes.c_int, [_PTR]),
        "OPENSSL_sk_value": (_PTR, [_PTR, ctypes.c_int]),
        "OPENSSL_sk_pop_free": (None, [_PTR, _PTR]),
        "X509_get_subject_name": (_PTR, [_PTR]),
        "X509_NAME_digest": (ctypes.c_int, [_PTR, _PTR, ctypes.c_char_p, _PTR]),
        "X509_pubkey_digest": (ctypes.c_int, [_PTR, _PTR, ctypes.c_char_p, _PTR]),
        "EVP_sha1": (_PTR, []),
        "X509_get_serialNumber": (_PTR, [_PTR]),
        "ASN1_STRING_length": (ctypes.c_int, [_PTR]),
        "ASN1_STRING_get0_data": (_PTR, [_PTR]),
    }
    return openssl.bind_table(lib, table)


_c = openssl.own_handle(_bind) if openssl.AVAILABLE and ocsp.AVAILABLE else None
AVAILABLE = _c is not None
_FETCHES: set = set()


class OcspConf:
    """A server context's ssl_ocsp (ngx_ssl_ocsp_conf_t); `resolver` set per listen socket."""
    __slots__ = ("depth", "host", "port", "uri", "addrs", "cache", "resolver",
                 "resolver_timeout")

    def __init__(self, depth: int, target, cache) -> None:
        self.depth = depth
        self.host, self.port, self.uri, self.addrs = target or ("", 80, "/", ())
        self.cache = cache
        self.resolver, self.resolver_timeout = None, 30.0


def configure(context, conf) -> None:
    """ngx_ssl_ocsp at config time: ConfigError in nginx's words."""
    if conf.verify_client == "optional_no_ca":
        raise ConfigError('"ssl_ocsp" is incompatible with "ssl_verify_client optional_no_ca"')
    if not AVAILABLE:
        raise ConfigError('"ssl_ocsp" is not supported on this platform')
    target = None
    if conf.ocsp_responder:
        from ngate.server.ocsp_stapling import parse_responder
        url = conf.ocsp_responder
        if len(url) <= 7 or not url.lower().startswith("http://"):
            raise ConfigError(f'invalid URL prefix in OCSP responder "{url}" in '
                              '"ssl_ocsp_responder"')
        target = parse_responder(url[7:], resolve=True)
        if isinstance(target, str):
            raise ConfigError(f'{target} in OCSP responder "{url[7:]}" in "ssl_ocsp_responder"')
    cache = _zone(*conf.ocsp_cache) if conf.ocsp_cache else None
    context._ngate_ocsp = OcspConf(2 if conf.ocsp == "leaf" else 1, target, cache)


def set_resolver(context, resolver, timeout: float) -> None:
    """ngx_ssl_ocsp_resolver."""
    ocf = getattr(context, "_ngate_ocsp", None)
    if ocf is not None:
        ocf.resolver, ocf.resolver_timeout = resolver, timeout


def status(tls) -> str | None:
    """ngx_ssl_ocsp_get_status: None when good (or not checked), else why not."""
    return getattr(tls, "ngate_ocsp", None)


# ---------------------------------------------------------------- per connection

def validate(acceptor, sslobj):
    """ngx_ssl_ocsp_validate after a handshake: None (nothing to check), False (close the
    connection), or the task checking it (it calls acceptor.ocsp_done())."""
    ocf = getattr(sslobj.context, "_ngate_ocsp", None)
    if ocf is None:
        return None
    ssl_ptr = openssl._ssl_of(sslobj)
    if openssl.verify_result(sslobj) != 0:
        return None
    cert = _c.SSL_get1_peer_certificate(ssl_ptr)
    if not cert:
        return None
    try:
        chain = _verified_chain(ssl_ptr, cert, acceptor)
    finally:
        _c.X509_free(cert)
    if chain is None:
        return False
    store = _c.SSL_CTX_get_cert_store(_c.SSL_get_SSL_CTX(ssl_ptr))
    task = asyncio.get_running_loop().create_task(
        _validate(acceptor, sslobj, ocf, chain, store, sslobj.context))
    _FETCHES.add(task)
    task.add_done_callback(_FETCHES.discard)
    return task


def _verified_chain(ssl_ptr, cert, acceptor):
    """The verified chain (a reference the caller frees), or None after nginx's error line."""
    chain = _c.SSL_get0_verified_chain(ssl_ptr)
    if chain:
        return _c.X509_chain_up_ref(chain)
    store = _c.SSL_CTX_get_cert_store(_c.SSL_get_SSL_CTX(ssl_ptr))
    sctx = _c.X509_STORE_CTX_new()
    try:
        peer_chain = _c.SSL_get_peer_cert_chain(ssl_ptr)
        if not _c.X509_STORE_CTX_init(sctx, store, cert, peer_chain):
            return _error(acceptor, "X509_STORE_CTX_init() failed")
        if _c.X509_verify_cert(sctx) <= 0:
            return _error(acceptor, "X509_verify_cert() failed")
        return _c.X509_STORE_CTX_get1_chain(sctx) or _error(
            acceptor, "X509_STORE_CTX_get1_chain() failed")
    finally:
        _c.X509_STORE_CTX_free(sctx)


def _error(acceptor, what: str) -> None:
    error_log.error(ocsp.ssl_errors(what) + acceptor.where(), acceptor.number())
    return None


class _Query:
    """One certificate's request (what ocsp_fetch.ask reads)."""
    __slots__ = ("cert", "issuer", "host", "port", "uri", "addrs", "resolver",
                 "resolver_timeout")


async def _validate(acceptor, sslobj, ocf: OcspConf, chain, store, context) -> None:
    """ngx_ssl_ocsp_validate_next / ngx_ssl_ocsp_handler over the chain (`context` keeps the
    store alive)."""
    result = None
    try:
        n = _c.OPENSSL_sk_num(chain)
        ncert = 0
        while not (ncert == n - 1 or (ocf.depth == 2 and ncert == 1)):
            cert = _c.OPENSSL_sk_value(chain, ncert)
            issuer = _c.OPENSSL_sk_value(chain, ncert + 1)
            query = _query(ocf, cert, issuer, acceptor)
            if query is None:
                result = _FAILED
                break
            ncert += 1
            key = _cache_key(cert, issuer) if ocf.cache is not None else None
            cert_status = ocf.cache.lookup(key) if key is not None else None
            if cert_status is None:
                cert_status, valid = await _ask(query, chain, store, acceptor)
                if cert_status is None:
                    result = _FAILED
                    break
                if key is not None:
                    ocf.cache.store(key, cert_status, valid)
            if cert_status != ocsp.GOOD:
                result = _STATUS_TEXT.get(cert_status, _UNKNOWN)
                break
    except Exception as exc:            # a defect: the check failed, the worker goes on
        error_log.alert(f"OCSP check failed ({exc!r})" + acceptor.where(), acceptor.number())
        result = _FAILED
    finally:
        _c.OPENSSL_sk_pop_free(chain, ctypes.cast(_c.X509_free, _PTR))
    sslobj.ngate_ocsp = result
    acceptor.ocsp_done()


async def _ask(query, chain, store, acceptor) -> tuple:
    """(status, valid until) from the responder, or (None, 0) after the logged error."""
    log = ocsp_fetch.Log(query.host, None, acceptor.number())
    try:
        der = await ocsp_fetch.ask(query, log)
    except ocsp_fetch.Failed:
        return None, 0
    if der is None:
        return None, 0
    verdict = ocsp.verify(der, query.cert, query.issuer, chain, store, 0)
    if verdict.error:
        log(verdict.level, verdict.error)
        return None, 0
    return verdict.status, verdict.valid


def _query(ocf: OcspConf, cert, issuer, acceptor):
    """ngx_ssl_ocsp_responder: the configured responder, else the certificate's AIA URL
    (not resolved now); None after nginx's error line."""
    q = _Query()
    q.cert, q.issuer = cert, issuer
    q.resolver, q.resolver_timeout = ocf.resolver, ocf.resolver_timeout
    if ocf.host:
        q.host, q.port, q.uri, q.addrs = ocf.host, ocf.port, ocf.uri, ocf.addrs
        return q
    from ngate.server.ocsp_stapling import ocsp_url, parse_responder
    url = ocsp_url(cert)
    if not url:
        return _log_none(acceptor, "no OCSP responder URL in certificate")
    text = url.decode("latin-1")
    if len(text) <= 7 or not text.lower().startswith("http://"):
        return _log_none(acceptor, f'invalid URL prefix in OCSP responder "{text}" in '
                                   "certificate")
    target = parse_responder(text[7:], resolve=False)
    if isinstance(target, str):
        return _log_none(acceptor, f'{target} in OCSP responder "{text[7:]}" in certificate')
    if not target[0]:
        return _log_none(acceptor, "empty host in OCSP responder in certificate")
    q.host, q.port, q.uri, q.addrs = target
    return q


def _log_none(acceptor, message: str) -> None:
    error_log.error(message + acceptor.where(), acceptor.number())
    return None


def _cache_key(cert, issuer) -> bytes | None:
    """ngx_ssl_ocsp_create_key: SHA-1 of the issuer's name and key, the serial (60 bytes)."""
    name = ctypes.create_string_buffer(20)
    key = ctypes.create_string_buffer(20)
    sha1 = _c.EVP_sha1()
    if not _c.X509_NAME_digest(_c.X509_get_subject_name(issuer), sha1, name, None) \
            or not _c.X509_pubkey_digest(issuer, sha1, key, None):
        return None
    serial = _c.X509_get_serialNumber(cert)
    n = _c.ASN1_STRING_length(serial)
    if n > 20:
        return None
    return name.raw + key.raw + ctypes.string_at(_c.ASN1_STRING_get0_data(serial), n).ljust(
        20, b"\0")


# ---------------------------------------------------------------- ssl_ocsp_cache

_ZONES: dict[str, object] = {}


def _zone(name: str, size: int):
    """The shared zone `name` (one per name and size, made before the workers fork; kept
    across reloads as nginx keeps a zone of the same name and size)."""
    zone = _ZONES.get(name)
    if zone is None or zone.size != size:
        from ngate.server.ocsp_cache import OcspCache
        zone = _ZONES[name] = OcspCache(name, size)
    return zone

