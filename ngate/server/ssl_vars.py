"""The $ssl_* variables Python's ssl module cannot give, read from the connection's SSL* as nginx's
ngx_event_openssl.c does (ngx_ssl_get_ciphers, _curve, _curves, _session_id, _raw_certificate,
_issuer_dn, _subject_dn_legacy, _serial_number, _fingerprint, _client_v_start/_end/_remain), and
$ssl_client_s_dn in RFC 2253 from the certificate Python's ssl module parses (client_s_dn).

Calls go through server/openssl.py's ctypes handle on the libssl/libcrypto that CPython's _ssl
module uses; without it (another Python build) each getter returns None (the variable is empty,
as on a plain connection). Nothing here runs unless a config uses one of these variables.
"""
from __future__ import annotations

import calendar
import ctypes
import hashlib
import time
from urllib.parse import quote

from ngate.server import openssl

_PTR = ctypes.c_void_p
_CTRL_GET_RAW_CIPHERLIST = 110
_CTRL_GET_GROUPS = 90
_CTRL_GET_NEGOTIATED_GROUP = 134
_BIO_CTRL_PENDING = 10
_NID_UNKNOWN = 0x1000000                # TLSEXT_nid_unknown
_XN_FLAG_RFC2253 = 0x1110317


def _bind():
    lib = openssl._lib
    if lib is None:
        return None
    table = {
        "SSL_ctrl": (ctypes.c_long, [_PTR, ctypes.c_int, ctypes.c_long, _PTR]),
        "SSL_CIPHER_find": (_PTR, [_PTR, ctypes.c_char_p]),
        "SSL_CIPHER_get_name": (ctypes.c_char_p, [_PTR]),
        "OBJ_nid2sn": (ctypes.c_char_p, [ctypes.c_int]),
        "SSL_get_session": (_PTR, [_PTR]),
        "SSL_SESSION_get_id": (_PTR, [_PTR, ctypes.POINTER(ctypes.c_uint)]),
        "X509_free": (None, [_PTR]),
        "BIO_s_mem": (_PTR, []),
        "BIO_new": (_PTR, [_PTR]),
        "BIO_free": (ctypes.c_int, [_PTR]),
        "BIO_ctrl": (ctypes.c_long, [_PTR, ctypes.c_int, ctypes.c_long, _PTR]),
        "BIO_read": (ctypes.c_int, [_PTR, ctypes.c_char_p, ctypes.c_int]),
        "PEM_write_bio_X509": (ctypes.c_int, [_PTR, _PTR]),
        "X509_get_issuer_name": (_PTR, [_PTR]),
        "X509_get_subject_name": (_PTR, [_PTR]),
        "X509_NAME_print_ex": (ctypes.c_int, [_PTR, _PTR, ctypes.c_int, ctypes.c_ulong]),
        "X509_NAME_oneline": (_PTR, [_PTR, _PTR, ctypes.c_int]),
        "CRYPTO_free": (None, [_PTR, ctypes.c_char_p, ctypes.c_int]),
        "X509_get_serialNumber": (_PTR, [_PTR]),
        "i2a_ASN1_INTEGER": (ctypes.c_int, [_PTR, _PTR]),
        "ASN1_TIME_print": (ctypes.c_int, [_PTR, _PTR]),
        "X509_get0_notBefore": (_PTR, [_PTR]),
        "X509_get0_notAfter": (_PTR, [_PTR]),
        "X509_digest": (ctypes.c_int, [_PTR, _PTR, ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint)]),
        "EVP_sha1": (_PTR, []),
    }
    try:
        openssl.bind_table(lib, table)
        peer = getattr(lib, "SSL_get1_peer_certificate", None) or lib.SSL_get_peer_certificate
        peer.restype, peer.argtypes = _PTR, [_PTR]
        lib.ngate_peer_cert = peer
    except AttributeError:
        return None
    return lib


_lib = _bind()
AVAILABLE = _lib is not None


def _ssl(tls) -> int:
    return openssl._ssl_of(tls)


# ---------------------------------------------------------------- handshake facts

def ciphers(tls) -> str | None:
    """$ssl_ciphers: the client's cipher list, names or 0xXXXX for unknown ones."""
    if _lib is None:
        return None
    s = _ssl(tls)
    size = _lib.SSL_ctrl(s, _CTRL_GET_RAW_CIPHERLIST, 0, None)
    raw = ctypes.c_void_p()
    n = _lib.SSL_ctrl(s, _CTRL_GET_RAW_CIPHERLIST, 0, ctypes.byref(raw))
    if n <= 0 or size <= 0:
        return ""
    data = ctypes.string_at(raw.value, n)
    out = []
    for i in range(0, n - n % size, size):
        cipher = _lib.SSL_CIPHER_find(s, data[i:i + size])
        out.append(_lib.SSL_CIPHER_get_name(cipher).decode() if cipher
                   else "0x" + data[i:i + size].hex())
    return ":".join(out)


def _group_name(nid: int) -> str:
    if nid & _NID_UNKNOWN:
        return "0x%04x" % (nid & 0xFFFF)
    name = _lib.OBJ_nid2sn(nid)
    return name.decode() if name else "0x%04x" % (nid & 0xFFFF)


def curve(tls) -> str | None:
    """$ssl_curve: the negotiated group (X25519, prime256v1, ...)."""
    if _lib is None:
        return None
    nid = _lib.SSL_ctrl(_ssl(tls), _CTRL_GET_NEGOTIATED_GROUP, 0, None)
    return _group_name(nid) if nid else ""


def curves(tls) -> str | None:
    """$ssl_curves: the groups the client offered."""
    if _lib is None:
        return None
    s = _ssl(tls)
    n = _lib.SSL_ctrl(s, _CTRL_GET_GROUPS, 0, None)
    if n <= 0:
        return ""
    arr = (ctypes.c_int * n)()
    n = _lib.SSL_ctrl(s, _CTRL_GET_GROUPS, 0, ctypes.cast(arr, _PTR))
    return ":".join(_group_name(arr[i]) for i in range(max(n, 0)))


def session_id(tls) -> str | None:
    """$ssl_session_id: hex of SSL_SESSION_get_id (empty for a TLS 1.3 session without one)."""
    if _lib is None:
        return None
    sess = _lib.SSL_get_session(_ssl(tls))
    if not sess:
        return ""
    length = ctypes.c_uint(0)
    ptr = _lib.SSL_SESSION_get_id(sess, ctypes.byref(length))
    return ctypes.string_at(ptr, length.value).hex() if ptr and length.value else ""


def early_data(tls) -> str:
    """$ssl_early_data: "1" while 0-RTT data is read before the handshake ends; ngate accepts no
    early data, so always ""."""
    return ""


def alpn_protocol(tls) -> str:
    return tls.selected_alpn_protocol() or ""


# ---------------------------------------------------------------- the client certificate

def _with_cert(tls, read):
    """read(cert, bio) on the peer's certificate with a memory BIO; the BIO's text, or ""."""
    if _lib is None:
        return None
    cert = _lib.ngate_peer_cert(_ssl(tls))
    if not cert:
        return ""
    bio = _lib.BIO_new(_lib.BIO_s_mem())
    try:
        read(cert, bio)
        pending = _lib.BIO_ctrl(bio, _BIO_CTRL_PENDING, 0, None)
        buf = ctypes.create_string_buffer(max(pending, 1))
        got = _lib.BIO_read(bio, buf, pending) if pending > 0 else 0
        return buf.raw[:max(got, 0)].decode("latin-1")
    finally:
        _lib.BIO_free(bio)
        _lib.X509_free(cert)


def raw_cert(tls) -> str | None:
    """$ssl_client_raw_cert: the PEM of the client's certificate."""
    return _with_cert(tls, lambda cert, bio: _lib.PEM_write_bio_X509(bio, cert))


def cert_tabbed(tls) -> str | None:
    """$ssl_client_cert: the PEM without its last newline, each further line after a tab."""
    pem = raw_cert(tls)
    return pem[:-1].replace("\n", "\n\t") if pem else pem


def escaped_cert(tls) -> str | None:
    """$ssl_client_escaped_cert: the PEM, URL-encoded (ngx_escape_uri, URI component)."""
    pem = raw_cert(tls)
    return quote(pem, safe="") if pem else pem     # all but alnum and -._~


def subject_dn(tls) -> str | None:
    return _with_cert(tls, lambda cert, bio: _lib.X509_NAME_print_ex(
        bio, _lib.X509_get_subject_name(cert), 0, _XN_FLAG_RFC2253))


def issuer_dn(tls) -> str | None:
    return _with_cert(tls, lambda cert, bio: _lib.X509_NAME_print_ex(
        bio, _lib.X509_get_issuer_name(cert), 0, _XN_FLAG_RFC2253))


def _oneline(tls, getter) -> str | None:
    if _lib is None:
        return None
    cert = _lib.ngate_peer_cert(_ssl(tls))
    if not cert:
        return ""
    try:
        p = _lib.X509_NAME_oneline(getter(cert), None, 0)
        if not p:
            return ""
        text = ctypes.string_at(p).decode("latin-1")
        _lib.CRYPTO_free(p, b"ngate", 0)
        return text
    finally:
        _lib.X509_free(cert)


def subject_dn_legacy(tls) -> str | None:
    return _oneline(tls, lambda cert: _lib.X509_get_subject_name(cert))


def issuer_dn_legacy(tls) -> str | None:
    return _oneline(tls, lambda cert: _lib.X509_get_issuer_name(cert))


def serial(tls) -> str | None:
    return _with_cert(tls, lambda cert, bio: _lib.i2a_ASN1_INTEGER(
        bio, _lib.X509_get_serialNumber(cert)))


def fingerprint(tls) -> str | None:
    """$ssl_client_fingerprint: SHA-1 of the certificate, hex."""
    der = tls.getpeercert(binary_form=True)
    if not der:
        return ""
    return hashlib.sha1(der).hexdigest()


def v_start(tls) -> str | None:
    return _with_cert(tls, lambda cert, bio: _lib.ASN1_TIME_print(
        bio, _lib.X509_get0_notBefore(cert)))


def v_end(tls) -> str | None:
    return _with_cert(tls, lambda cert, bio: _lib.ASN1_TIME_print(
        bio, _lib.X509_get0_notAfter(cert)))


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _asn1_time(text: str) -> int | None:
    """ASN1_TIME_print's "Feb  3 00:55:52 2015 GMT" as a Unix time (nginx's ngx_ssl_parse_time);
    parsed by hand: a worker may not import _strptime after start."""
    parts = text.split()
    try:
        month = _MONTHS.index(parts[0]) + 1
        hh, mm, ss = (int(x) for x in parts[2].split(":"))
        return calendar.timegm((int(parts[3]), month, int(parts[1]), hh, mm, ss, 0, 0, 0))
    except (ValueError, IndexError):
        return None


def v_remain(tls) -> str | None:
    """$ssl_client_v_remain: whole days left ("0" under one day)."""
    end = v_end(tls)
    if not end:
        return end
    end_ts = _asn1_time(end)
    if end_ts is None:
        return ""
    now = time.time()
    return "0" if end_ts < now + 86400 else str(int((end_ts - now) // 86400))


# ---------------------------------------------------------------- $ssl_client_s_dn (RFC 2253)

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
