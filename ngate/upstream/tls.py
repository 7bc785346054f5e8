"""TLS to upstreams (`proxy_pass https://...`): client SSLContexts and the name to verify/send.

One client context per distinct ProxyTls (equal settings share it), built at load time so that a
bad file is a config error, and inherited by the workers. `upstream_tls(ctx, conf)` gives an
exchange what `loop.create_connection` needs: (SSLContext, server_hostname), or None for plain
HTTP. The pair is also the TLS identity of a pooled keepalive connection.
"""
from __future__ import annotations

import re
import ssl

from ngate.errors import ConfigError
from ngate.server.tls import load_pair, load_verify, read_passwords, set_ciphers, set_protocols

_CONTEXTS: dict = {}
_HOSTNAME_MISMATCH = 62     # X509_V_ERR_HOSTNAME_MISMATCH
_MISMATCH = re.compile(r"not valid for '(.*)'")


def clear_cache() -> None:
    _CONTEXTS.clear()


def client_context(conf) -> ssl.SSLContext:
    """The client SSLContext for a ProxyTls (cached)."""
    ctx = _CONTEXTS.get(conf)
    if ctx is None:
        ctx = _CONTEXTS[conf] = _build(conf)
    return ctx


def _build(conf) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    set_protocols(ctx, conf.protocols)
    if conf.ciphers is not None:
        set_ciphers(ctx, conf.ciphers)
    if conf.verify:
        if not conf.trusted_certificate:
            raise ConfigError("no proxy_ssl_trusted_certificate for proxy_ssl_verify")
        load_verify(ctx, conf.trusted_certificate)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.check_hostname = True
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if conf.certificate:
        load_pair(ctx, conf.certificate, conf.certificate_key,
                  read_passwords(conf.password_file), prefix="")
    return ctx


def ssl_name(ctx, conf, host_header: str) -> str:
    """proxy_ssl_name (default $proxy_host), without a port, as nginx cuts it."""
    name = conf.name.render(ctx) if conf.name is not None else host_header
    if name.startswith("["):
        return name[1:name.find("]")] if "]" in name else name
    return name.rsplit(":", 1)[0] if name.count(":") == 1 else name


def upstream_tls(ctx, conf, scheme: str, host_header: str):
    """(SSLContext, server_hostname) for an https upstream, else None.

    server_hostname is the name sent as SNI (proxy_ssl_server_name on) and verified
    (proxy_ssl_verify on); with both off it is None: no SNI, nothing checked."""
    if scheme != "https":
        return None
    pt = conf.proxy_ssl
    name = None
    if pt.server_name or pt.verify:
        name = ssl_name(ctx, pt, host_header) or None
    return client_context(pt), name


def handshake_error(exc: ssl.SSLError) -> str:
    """nginx's error log text for a failed handshake to an upstream."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        name = _MISMATCH.search(exc.verify_message or "")
        if exc.verify_code == _HOSTNAME_MISMATCH and name:
            return (f'upstream SSL certificate does not match "{name.group(1)}" '
                    "while SSL handshaking to upstream")
        return (f"upstream SSL certificate verify error: ({exc.verify_code}:"
                f"{exc.verify_message}) while SSL handshaking to upstream")
    reason = getattr(exc, "reason", None) or str(exc)
    return f"SSL_do_handshake() failed (SSL: {reason}) while SSL handshaking to upstream"
