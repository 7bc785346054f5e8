"""TLS in the frozen model (model.py re-exports it): a server's ssl_* settings (TlsServerConf)
and a location's proxy_ssl_* settings (ProxyTls), as config/tls.py compiles them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ngate.config.model import Where


@dataclass(frozen=True, slots=True)
class TlsServerConf:
    """A server's ssl_* settings (http level inherited), compiled once.

    `context` is the ssl.SSLContext built from them at load time (server/tls.py), so a bad
    certificate is a config error; forked workers inherit it.
    """
    # (certificate, key): absolute paths, "data:" PEM values, or Templates (any variable makes
    # every pair dynamic: loaded per handshake, server/tls_certs.py)
    certificates: tuple[tuple[Any, Any], ...] = ()
    dynamic: bool = False
    passwords: tuple = (None,)                       # ssl_password_file's, for dynamic keys
    conf_dir: str = ""                               # where relative dynamic paths resolve
    protocols: frozenset[str] = frozenset({"TLSv1.2", "TLSv1.3"})
    ciphers: str | None = None                       # None: OpenSSL's/Python's modern default
    prefer_server_ciphers: bool = False
    session_cache: tuple[str, ...] = ("none",)
    session_timeout: float = 300.0
    session_tickets: bool = True
    password_file: str | None = None
    dhparam: str | None = None
    ecdh_curve: str = "auto"
    verify_client: str = "off"                       # off | on | optional | optional_no_ca
    client_certificate: str | None = None
    trusted_certificate: str | None = None
    verify_depth: int = 1
    crl: str | None = None
    reject_handshake: bool = False
    stapling: bool = False
    stapling_file: str | None = None                 # a DER OCSP response, stapled as it is
    stapling_responder: str | None = None
    stapling_verify: bool = False
    ocsp: str = "off"                                # off | on | leaf: client certificates
    ocsp_responder: str | None = None
    ocsp_cache: tuple | None = None                  # (zone name, size)
    where: Where | None = None                       # the first ssl_certificate
    context: Any = field(default=None, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class ProxyTls:
    """proxy_ssl_* of a location (used when proxy_pass is https://). Hashable: equal settings
    share one client SSLContext per worker (upstream/tls.py)."""
    server_name: bool = False
    name: Any = field(default=None, compare=False)   # Template; None: the proxy_pass host
    verify: bool = False
    trusted_certificate: str | None = None
    verify_depth: int = 1
    certificate: str | None = None
    certificate_key: str | None = None
    password_file: str | None = None
    protocols: frozenset[str] = frozenset({"TLSv1.2", "TLSv1.3"})
    ciphers: str | None = None
    session_reuse: bool = True
