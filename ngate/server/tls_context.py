"""Server SSLContexts at config time: `server_context(TlsServerConf)` builds one server's
context with nginx's -t errors (certificates and keys from files or `data:`, password files,
protocols, ciphers, curves, dhparam, client verification, OCSP stapling, the session id
context); upstream/tls.py builds its client contexts with the same loaders.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import ssl

from ngate.errors import ConfigError
from ngate.observability import error_log
from ngate.server import ocsp_stapling, openssl


VERSIONS = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
            "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


_NO_SUCH_FILE = ("BIO_new_file() failed (SSL: error:80000002:system library::No such file or "
                 "directory:calling fopen({path}, r) error:10000080:BIO routines::no such file)")


def server_context(conf, quiet: bool = False, pairs=None) -> ssl.SSLContext:
    """An SSLContext for one server's TlsServerConf; ConfigError as nginx words it. `quiet`: a
    second context for the same server (a listening socket's), whose warnings were given.
    `pairs`: the (certificate, key) values of one handshake, for a server whose certificates
    have variables (tls_certs.py); such a server's own context has no certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    set_protocols(ctx, conf.protocols)
    if conf.ciphers is not None:
        set_ciphers(ctx, conf.ciphers)
    if conf.prefer_server_ciphers:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    if not conf.session_tickets:
        ctx.options |= ssl.OP_NO_TICKET
    # a client closing without close_notify is an end, not a fatal error that drops its session
    # from the cache (nginx sets it too; OpenSSL reads the socket itself: tls_transport.py)
    ctx.options |= getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    if pairs is None:
        passwords = read_passwords(conf.password_file)
        pairs = () if conf.dynamic else conf.certificates
    else:
        passwords = conf.passwords
    for cert, key in pairs:
        load_pair(ctx, cert, key, passwords)
    if conf.dhparam:
        _load(ctx.load_dh_params, conf.dhparam)
    if conf.ecdh_curve != "auto":
        set_curves(ctx, conf.ecdh_curve)
    if conf.verify_client != "off":
        if not conf.client_certificate and conf.verify_client != "optional_no_ca":
            raise ConfigError("no ssl_client_certificate for ssl_verify_client")
        ctx.verify_mode = ssl.CERT_OPTIONAL      # "on" without a certificate: 496 per request
        openssl.verify_per_request(ctx, conf.verify_depth)
    if conf.client_certificate:
        load_verify(ctx, conf.client_certificate)
        openssl.set_client_ca_list(ctx, conf.client_certificate)
    if conf.trusted_certificate:
        load_verify(ctx, conf.trusted_certificate)
    if conf.crl:
        load_verify(ctx, conf.crl)
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN
    if conf.ocsp != "off":
        from ngate.server import ocsp_client
        ocsp_client.configure(ctx, conf)
    openssl.set_session_cache(ctx, conf.session_cache, conf.session_timeout)
    openssl.set_session_id_context(ctx, session_id_context(conf))
    openssl.set_alpn(ctx, h2=False)
    if conf.stapling:
        set_stapling(ctx, conf, quiet)
    return ctx


def set_stapling(ctx: ssl.SSLContext, conf, quiet: bool = False) -> None:
    """ssl_stapling as ngx_ssl_stapling sets it up, certificate by certificate: with
    ssl_stapling_file the response is checked and stapled; without it each certificate's
    response is fetched from its OCSP responder (ocsp_stapling.py), the certificates nginx
    would ignore get nginx's warning. Certificates with variables get no stapling (nginx's
    ngx_ssl_stapling finds none in the context either)."""
    if not ocsp_stapling.STAPLING:
        if not quiet:
            error_log.warn('"ssl_stapling" ignored, not supported')
        return
    if conf.stapling_file:
        return ocsp_stapling.staple_file(ctx, read_ocsp_response(conf.stapling_file))
    if conf.dynamic:
        return
    certs = [cert for cert, _key in conf.certificates]
    for cert, problem in ocsp_stapling.staple_fetched(ctx, certs, conf.stapling_responder,
                                                      conf.stapling_verify):
        if not quiet:
            error_log.warn(f'"ssl_stapling" ignored, {problem} "{cert}"')


def read_ocsp_response(path: str) -> bytes:
    """ssl_stapling_file: a DER OCSP response; ConfigError in nginx's words when unreadable."""
    try:
        with open(path, "rb") as f:
            der = f.read()
    except OSError:
        raise ConfigError(_NO_SUCH_FILE.format(path=path).replace(
            "BIO_new_file()", f'BIO_new_file("{path}")').replace(", r)", ", rb)")) from None
    error = ocsp_stapling.ocsp_response_error(der)
    if error is not None:
        raise ConfigError(f'd2i_OCSP_RESPONSE_bio("{path}") failed (SSL: {error})')
    return der


def set_curves(ctx: ssl.SSLContext, curves: str) -> None:
    """ssl_ecdh_curve: one curve or a list ("X25519:prime256v1")."""
    if openssl.AVAILABLE:
        ok = openssl.set_groups(ctx, curves)
    else:
        try:
            ctx.set_ecdh_curve(curves)
            ok = True
        except ValueError:
            ok = False
    if not ok:
        bad = next((c for c in curves.split(":") if not openssl.set_groups(ctx, c)), curves)
        raise ConfigError(f'SSL_CTX_set1_curves_list("{curves}") failed (SSL: error:0A080106:'
                          f"SSL routines::passed invalid argument:group '{bad}' cannot be set)")


def session_id_context(conf) -> bytes:
    """What a resumed session must have been made for (nginx hashes the same things): the
    certificates and the client CA settings of the server."""
    digest = hashlib.sha256()
    for path in (*(p for pair in conf.certificates for p in pair), conf.client_certificate,
                 conf.trusted_certificate):
        if not path:
            continue
        if not isinstance(path, str):       # a Template: loaded per handshake
            digest.update(path.text.encode())
        elif path.startswith("data:"):
            digest.update(path.encode())
        else:
            with open(path, "rb") as f:
                digest.update(f.read())
    digest.update(conf.verify_client.encode())
    return digest.digest()


def set_protocols(ctx: ssl.SSLContext, protocols) -> None:
    """ssl_protocols: the lowest and highest version named (SSLv2/SSLv3 cannot be enabled)."""
    versions = sorted(VERSIONS[p] for p in protocols if p in VERSIONS)
    if versions:
        ctx.minimum_version, ctx.maximum_version = versions[0], versions[-1]


def set_ciphers(ctx: ssl.SSLContext, ciphers: str) -> None:
    try:
        ctx.set_ciphers(ciphers)
    except ssl.SSLError:
        raise ConfigError(f'SSL_CTX_set_cipher_list("{ciphers}") failed (SSL: '
                          "error:0A0000B9:SSL routines::no cipher match)") from None


def read_passwords(path: str | None) -> list:
    """ssl_password_file: one password a line, tried in turn."""
    if not path:
        return [None]
    try:
        with open(path, "rb") as f:
            return [line.rstrip(b"\r\n") for line in f if line.strip()] or [b""]
    except OSError as err:
        raise ConfigError(f'open() "{path}" failed ({err.errno}: {err.strerror})') from None


def load_pair(ctx: ssl.SSLContext, cert: str, key: str, passwords, prefix: str = "") -> None:
    """One certificate and its key (PEM files, or "data:" values). Several pairs of different
    key types may be loaded."""
    cert_pem = _check_pem(cert, b"CERTIFICATE", f'cannot load {prefix}certificate "{cert}": ',
                          "PEM_read_bio_X509_AUX() failed (SSL: error:0480006C:PEM routines::"
                          "no start line:Expecting: TRUSTED CERTIFICATE)")
    key_pem = _check_pem(key, b"PRIVATE KEY", f'cannot load {prefix}certificate key "{key}": ',
                         "PEM_read_bio_PrivateKey() failed (SSL: error:1E08010C:DECODER "
                         "routines::unsupported:No supported data to decode. Input type: PEM)")
    error = None
    with _pem_path(cert, cert_pem) as cert_path, _pem_path(key, key_pem) as key_path:
        for password in passwords:
            try:
                ctx.load_cert_chain(cert_path, key_path,
                                    password=password if password is not None else _none)
                return
            except (ssl.SSLError, ValueError, TypeError) as exc:
                error = exc
    raise ConfigError(f'cannot load {prefix}certificate key "{key}": '
                      f"PEM_read_bio_PrivateKey() failed (SSL: {ssl_reason(error)})")


def _bio_new_file_failed(path: str, err: OSError) -> str:
    """OpenSSL's words for a file fopen() could not open (ENOENT, EACCES ...)."""
    if err.errno == errno.ENOENT or not err.errno:
        return _NO_SUCH_FILE.format(path=path)
    return (f"BIO_new_file() failed (SSL: error:{0x80000000 | err.errno:08X}:system library::"
            f"{err.strerror}:calling fopen({path}, r) error:10080002:BIO routines::system lib)")


@contextlib.contextmanager
def _pem_path(value: str, pem: bytes):
    """A path OpenSSL can read `value` from: the file itself, or for a "data:" value an
    anonymous memory file holding it (Python's ssl loads certificates from paths only)."""
    if not value.startswith("data:"):
        yield value
        return
    fd = os.memfd_create("ngate-pem", os.MFD_CLOEXEC)
    try:
        os.write(fd, pem)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def _none() -> bytes:
    """The password callback when no ssl_password_file is given: never prompt on a tty."""
    return b""


def _check_pem(path: str, label: bytes, head: str, bad: str) -> bytes:
    if path.startswith("data:"):
        data = path[5:].encode("utf-8", "surrogateescape")
    else:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as err:
            raise ConfigError(head + _bio_new_file_failed(path, err)) from None
    if b"-----BEGIN " not in data or label not in data:
        raise ConfigError(head + bad)
    return data


def load_verify(ctx: ssl.SSLContext, path: str) -> None:
    if not os.path.exists(path):
        raise ConfigError(f'SSL_CTX_load_verify_locations("{path}") failed (SSL: error:80000002:'
                          f"system library::No such file or directory:calling fopen({path}, r) "
                          "error:10000080:BIO routines::no such file error:05880002:x509 "
                          "certificate routines::system lib)")
    try:
        ctx.load_verify_locations(path)
    except ssl.SSLError as exc:
        raise ConfigError(f'SSL_CTX_load_verify_locations("{path}") failed (SSL: {ssl_reason(exc)})'
                          ) from None


def _load(method, path: str) -> None:
    if not os.path.exists(path):
        raise ConfigError(f'BIO_new_file("{path}") failed (SSL: error:80000002:system library::'
                          f"No such file or directory:calling fopen({path}, r) "
                          "error:10000080:BIO routines::no such file)")
    try:
        method(path)
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(f'PEM_read_bio_DHparams("{path}") failed (SSL: {ssl_reason(exc)})') from None


def ssl_reason(exc) -> str:
    return getattr(exc, "reason", None) or str(exc)
