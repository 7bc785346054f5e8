"""The $ssl_* variables (nginx's ngx_http_ssl_module), read from the connection's SSL object
(server/tls.py) and, for what Python's ssl module cannot give, its SSL* (ssl_vars.py); not found
on plain connections.

Read by the variables registry (routing/variables.py) from the list in ngate/http/modules.py.
"""
from __future__ import annotations

from ngate.server import openssl, ssl_vars


def _ssl_protocol(ctx):
    tls = ctx.conn.tls
    return tls.version() if tls is not None else None


def _ssl_cipher(ctx):
    tls = ctx.conn.tls
    return tls.cipher()[0] if tls is not None else None


def _ssl_server_name(ctx):
    tls = ctx.conn.tls
    return getattr(tls, "ngate_name", None) if tls is not None else None


def _ssl_session_reused(ctx):
    tls = ctx.conn.tls
    return ("r" if tls.session_reused else ".") if tls is not None else None


def _ssl_client_verify(ctx):
    tls = ctx.conn.tls
    if tls is None:
        return None
    code = openssl.verify_result(tls)
    if code:
        return "FAILED:" + openssl.verify_error(code)
    if not tls.getpeercert(binary_form=True):
        return "NONE"
    failed = getattr(tls, "ngate_ocsp", None)          # ssl_ocsp (ocsp_client.py)
    return "FAILED:" + failed if failed else "SUCCESS"


def _ssl_client_s_dn(ctx):
    tls = ctx.conn.tls
    if tls is None:
        return None
    if ssl_vars.AVAILABLE:
        return ssl_vars.subject_dn(tls)
    from ngate.server.tls import client_s_dn     # the fallback without libssl's functions
    return client_s_dn(tls)


def _tls_var(getter_name: str):
    """A $ssl_* variable read by ngate/server/ssl_vars.py; not found on plain connections."""
    def get(ctx):
        tls = ctx.conn.tls
        if tls is None:
            return None
        return getattr(ssl_vars, getter_name)(tls)
    return get


VARIABLES = {
    "ssl_protocol": _ssl_protocol, "ssl_cipher": _ssl_cipher,
    "ssl_server_name": _ssl_server_name, "ssl_session_reused": _ssl_session_reused,
    "ssl_client_verify": _ssl_client_verify, "ssl_client_s_dn": _ssl_client_s_dn,
}
for _name, _getter in (
        ("ssl_ciphers", "ciphers"), ("ssl_curve", "curve"), ("ssl_curves", "curves"),
        ("ssl_session_id", "session_id"), ("ssl_early_data", "early_data"),
        ("ssl_alpn_protocol", "alpn_protocol"), ("ssl_client_raw_cert", "raw_cert"),
        ("ssl_client_cert", "cert_tabbed"), ("ssl_client_escaped_cert", "escaped_cert"),
        ("ssl_client_i_dn", "issuer_dn"), ("ssl_client_s_dn_legacy", "subject_dn_legacy"),
        ("ssl_client_i_dn_legacy", "issuer_dn_legacy"), ("ssl_client_serial", "serial"),
        ("ssl_client_fingerprint", "fingerprint"), ("ssl_client_v_start", "v_start"),
        ("ssl_client_v_end", "v_end"), ("ssl_client_v_remain", "v_remain")):
    VARIABLES[_name] = _tls_var(_getter)
