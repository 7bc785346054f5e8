"""OCSP requests and responses with libcrypto, on server/openssl.py's ctypes handle.

nginx's ngx_ssl_ocsp_create_request (a DER request for one certificate id, sent base64 in a GET
URI) and ngx_ssl_ocsp_verify (parse, status, OCSP_basic_verify against the certificate's chain
and the context's store, the certificate's status and validity with 300 s of leeway).
`Verdict` is the outcome: the status and when the response stops being valid, or the error line
nginx logs. Pointers (X509*, STACK_OF(X509)*, X509_STORE*) are owned by the caller.
"""
from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass

from ngate.server.openssl import _PTR, _lib, bind_table, own_handle

NOVERIFY = 0x10             # OCSP_NOVERIFY
TRUSTOTHER = 0x200          # OCSP_TRUSTOTHER
GOOD = 0                    # V_OCSP_CERTSTATUS_GOOD
_RESPONSE_SUCCESSFUL = 0
_ERR_TXT_STRING = 0x02
_MAX_TIME = 2 ** 62


def _bind(lib):
    table = {
        "OCSP_REQUEST_new": (_PTR, []),
        "OCSP_REQUEST_free": (None, [_PTR]),
        "OCSP_cert_to_id": (_PTR, [_PTR, _PTR, _PTR]),
        "OCSP_CERTID_free": (None, [_PTR]),
        "OCSP_request_add0_id": (_PTR, [_PTR, _PTR]),
        "i2d_OCSP_REQUEST": (ctypes.c_int, [_PTR, ctypes.POINTER(ctypes.c_void_p)]),
        "d2i_OCSP_RESPONSE": (_PTR, [_PTR, ctypes.POINTER(ctypes.c_char_p), ctypes.c_long]),
        "OCSP_RESPONSE_free": (None, [_PTR]),
        "OCSP_response_status": (ctypes.c_int, [_PTR]),
        "OCSP_response_status_str": (ctypes.c_char_p, [ctypes.c_long]),
        "OCSP_response_get1_basic": (_PTR, [_PTR]),
        "OCSP_BASICRESP_free": (None, [_PTR]),
        "OCSP_basic_verify": (ctypes.c_int, [_PTR, _PTR, _PTR, ctypes.c_ulong]),
        "OCSP_resp_find_status": (ctypes.c_int, [_PTR, _PTR, ctypes.POINTER(ctypes.c_int),
                                                 ctypes.POINTER(ctypes.c_int),
                                                 ctypes.POINTER(_PTR), ctypes.POINTER(_PTR),
                                                 ctypes.POINTER(_PTR)]),
        "OCSP_check_validity": (ctypes.c_int, [_PTR, _PTR, ctypes.c_long, ctypes.c_long]),
        "OCSP_cert_status_str": (ctypes.c_char_p, [ctypes.c_long]),
        "ASN1_TIME_diff": (ctypes.c_int, [ctypes.POINTER(ctypes.c_int),
                                          ctypes.POINTER(ctypes.c_int), _PTR, _PTR]),
        "OPENSSL_sk_value": (_PTR, [_PTR, ctypes.c_int]),
        "CRYPTO_free": (None, [_PTR, ctypes.c_char_p, ctypes.c_int]),
        "ERR_clear_error": (None, []),
        "ERR_get_error_all": (ctypes.c_ulong, [_PTR, _PTR, _PTR, ctypes.POINTER(ctypes.c_char_p),
                                               ctypes.POINTER(ctypes.c_int)]),
        "ERR_error_string_n": (None, [ctypes.c_ulong, ctypes.c_char_p, ctypes.c_size_t]),
    }
    return bind_table(lib, table)


_c = own_handle(_bind) if _lib is not None else None
AVAILABLE = _c is not None


def ssl_errors(what: str) -> str:
    """nginx's ngx_ssl_error line: `what` and OpenSSL's error queue, drained."""
    queue = error_queue()
    return f"{what} (SSL: {queue})" if queue else what


def error_queue() -> str:
    """Drain OpenSSL's (per-thread) error queue: "error:...:reason[:data]" joined by spaces."""
    out = []
    if _c is None:
        return ""
    text = ctypes.create_string_buffer(256)
    data, flags = ctypes.c_char_p(), ctypes.c_int()
    while True:
        code = _c.ERR_get_error_all(None, None, None, ctypes.byref(data), ctypes.byref(flags))
        if not code:
            return " ".join(out)
        _c.ERR_error_string_n(code, text, len(text))
        item = text.value.decode("latin-1")
        if data.value and flags.value & _ERR_TXT_STRING:
            item += ":" + data.value.decode("latin-1")
        out.append(item)


def sk_value(stack: int, i: int) -> int:
    """The i-th pointer of a STACK_OF(...)."""
    return _c.OPENSSL_sk_value(stack, i)


def request_der(cert: int, issuer: int) -> bytes | None:
    """The DER OCSP request for `cert` (issued by `issuer`), or None (OpenSSL's errors are
    left in its queue)."""
    req = _c.OCSP_REQUEST_new()
    if not req:
        return None
    try:
        cid = _c.OCSP_cert_to_id(None, cert, issuer)
        if not cid:
            return None
        if not _c.OCSP_request_add0_id(req, cid):
            _c.OCSP_CERTID_free(cid)
            return None
        out = ctypes.c_void_p()
        n = _c.i2d_OCSP_REQUEST(req, ctypes.byref(out))
        if n <= 0 or not out.value:
            return None
        try:
            return ctypes.string_at(out.value, n)
        finally:
            _c.CRYPTO_free(out.value, b"ngate", 0)
    finally:
        _c.OCSP_REQUEST_free(req)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A checked response: `status` (V_OCSP_CERTSTATUS_*) and `valid` (time() its nextUpdate
    passes, or far away), or `error` (the line to log) and `level`."""
    status: int = -1
    valid: float = 0.0
    error: str = ""
    level: str = "error"

    def status_str(self) -> str:
        return _c.OCSP_cert_status_str(self.status).decode()


def verify(der: bytes, cert: int, issuer: int, chain: int | None, store: int,
           flags: int) -> Verdict:
    """ngx_ssl_ocsp_verify for one certificate's response."""
    _c.ERR_clear_error()
    buf = ctypes.c_char_p(der)
    resp = _c.d2i_OCSP_RESPONSE(None, ctypes.byref(buf), len(der))
    if not resp:
        return Verdict(error=ssl_errors("d2i_OCSP_RESPONSE() failed"))
    basic = cid = None
    try:
        n = _c.OCSP_response_status(resp)
        if n != _RESPONSE_SUCCESSFUL:
            return Verdict(error=f"OCSP response not successful "
                                 f"({n}: {_c.OCSP_response_status_str(n).decode()})")
        basic = _c.OCSP_response_get1_basic(resp)
        if not basic:
            return Verdict(error=ssl_errors("OCSP_response_get1_basic() failed"))
        if _c.OCSP_basic_verify(basic, chain, store, flags) != 1:
            return Verdict(error=ssl_errors("OCSP_basic_verify() failed"))
        cid = _c.OCSP_cert_to_id(None, cert, issuer)
        if not cid:
            return Verdict(error=ssl_errors("OCSP_cert_to_id() failed"), level="crit")
        status, this, nxt = ctypes.c_int(), _PTR(), _PTR()
        if _c.OCSP_resp_find_status(basic, cid, ctypes.byref(status), None, None,
                                    ctypes.byref(this), ctypes.byref(nxt)) != 1:
            return Verdict(error="certificate status not found in the OCSP response")
        if _c.OCSP_check_validity(this, nxt, 300, -1) != 1:
            return Verdict(error=ssl_errors("OCSP_check_validity() failed"))
        valid = _until(nxt.value)
        if valid is None:
            return Verdict(error="invalid nextUpdate time in certificate status")
        return Verdict(status=status.value, valid=valid)
    finally:
        if cid:
            _c.OCSP_CERTID_free(cid)
        if basic:
            _c.OCSP_BASICRESP_free(basic)
        _c.OCSP_RESPONSE_free(resp)


def _until(next_update) -> float | None:
    """The time() nextUpdate is reached (no nextUpdate: never; None: unreadable)."""
    if not next_update:
        return _MAX_TIME
    day, sec = ctypes.c_int(), ctypes.c_int()
    if not _c.ASN1_TIME_diff(ctypes.byref(day), ctypes.byref(sec), None, next_update):
        return None
    return int(time.time()) + day.value * 86400 + sec.value
