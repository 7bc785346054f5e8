"""ssl_* and proxy_ssl_* directives: handlers (values on the Level) and the compiled settings.

Handlers store values under the directive's name in `level.vals`; compile.py's merge carries them
down like any other setting. `server_tls` turns a server's merged values into a TlsServerConf
(with its SSLContext, so a bad certificate is a load-time error) and `proxy_tls` a location's into
a ProxyTls. `check_listens` applies nginx's "no ssl_certificate" rule per `listen ... ssl` socket.
"""
from __future__ import annotations

from ngate.config.handlers import flag, msec, number
from ngate.config.model import ProxyTls, TlsServerConf
from ngate.errors import ConfigError
from ngate.routing.variables import Template, has_variables

PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
VERIFY_CLIENT = ("on", "off", "optional", "optional_no_ca")

# directive -> (TlsServerConf field, parser); every one of them is a scalar but ssl_certificate*
SERVER_SCALARS = {
    "ssl_protocols": ("protocols", "protocols"),
    "ssl_ciphers": ("ciphers", "text"),
    "ssl_prefer_server_ciphers": ("prefer_server_ciphers", "flag"),
    "ssl_session_cache": ("session_cache", "session_cache"),
    "ssl_session_timeout": ("session_timeout", "msec"),
    "ssl_session_tickets": ("session_tickets", "flag"),
    "ssl_password_file": ("password_file", "password_file"),
    "ssl_dhparam": ("dhparam", "path"),
    "ssl_ecdh_curve": ("ecdh_curve", "text"),
    "ssl_verify_client": ("verify_client", "verify_client"),
    "ssl_client_certificate": ("client_certificate", "path"),
    "ssl_trusted_certificate": ("trusted_certificate", "path"),
    "ssl_verify_depth": ("verify_depth", "number"),
    "ssl_crl": ("crl", "path"),
    "ssl_reject_handshake": ("reject_handshake", "flag"),
    "ssl_stapling": ("stapling", "flag"),
    "ssl_stapling_file": ("stapling_file", "path"),
    "ssl_stapling_responder": ("stapling_responder", "text"),
    "ssl_stapling_verify": ("stapling_verify", "flag"),
    "ssl_ocsp": ("ocsp", "ocsp"),
    "ssl_ocsp_responder": ("ocsp_responder", "text"),
    "ssl_ocsp_cache": ("ocsp_cache", "ocsp_cache"),
}
PROXY_SCALARS = {
    "proxy_ssl_server_name": ("server_name", "flag"),
    "proxy_ssl_name": ("name", "template"),
    "proxy_ssl_verify": ("verify", "flag"),
    "proxy_ssl_trusted_certificate": ("trusted_certificate", "path"),
    "proxy_ssl_verify_depth": ("verify_depth", "number"),
    "proxy_ssl_password_file": ("password_file", "password_file"),
    "proxy_ssl_protocols": ("protocols", "protocols"),
    "proxy_ssl_ciphers": ("ciphers", "text"),
    "proxy_ssl_session_reuse": ("session_reuse", "flag"),
}
# class 2 (directives.py): no effect on what a client may access or receives
SERVER_NO_EFFECT = ("ssl_buffer_size", "ssl_session_ticket_key")
# class 3: OpenSSL settings ngate would not apply
SERVER_REFUSED = {"ssl_conf_command": None, "ssl": ("off",)}
PROXY_REFUSED = ("proxy_ssl_crl", "proxy_ssl_conf_command")


# ---------------------------------------------------------------- value parsers

def _protocols(c, st) -> frozenset:
    for arg in st.args:
        if arg not in PROTOCOLS:
            raise ConfigError(f'invalid value "{arg}"', st.where)
    return frozenset(st.args)


def _session_cache(c, st) -> tuple:
    for arg in st.args:
        ok = arg in ("off", "none", "builtin") or arg.startswith("builtin:") and \
            arg[8:].isdigit() or arg.startswith("shared:") and arg.count(":") == 2
        if not ok:
            raise ConfigError(f'invalid session cache "{arg}"', st.where)
    return tuple(st.args)


def _verify_client(c, st) -> str:
    if st.args[0] not in VERIFY_CLIENT:
        raise ConfigError(f'invalid value "{st.args[0]}"', st.where)
    return st.args[0]


def _ocsp(c, st) -> str:
    if st.args[0] not in ("off", "on", "leaf"):
        raise ConfigError(f'invalid value "{st.args[0]}"', st.where)
    return st.args[0]


def _ocsp_cache(c, st) -> tuple | None:
    """ssl_ocsp_cache off | shared:name:size (ngx_http_ssl_ocsp_cache): (name, size)."""
    from ngate.config.values import parse_size
    arg = st.args[0]
    if arg == "off":
        return None
    name, _, size = arg[7:].partition(":") if arg.startswith("shared:") else ("", "", "")
    try:
        n = parse_size(size) if name else -1
    except ValueError:
        n = -1
    if n < 0:
        raise ConfigError(f'invalid OCSP cache "{arg}"', st.where)
    if n < 8 * 4096:
        raise ConfigError(f'OCSP cache "{arg}" is too small', st.where)
    return (name, n)


def _password_file(c, st) -> str:
    """The file is read when the directive is, as nginx's ngx_ssl_read_password_file: an error
    names the directive's file:line."""
    from ngate.server.tls_context import read_passwords
    path = c.conf_path(st.args[0])
    try:
        read_passwords(path)
    except ConfigError as err:
        raise ConfigError(err.message, st.where) from None
    return path


PARSERS = {
    "password_file": _password_file,
    "protocols": _protocols, "session_cache": _session_cache, "verify_client": _verify_client,
    "ocsp": _ocsp, "ocsp_cache": _ocsp_cache,
    "flag": flag, "msec": msec, "number": number, "path": lambda c, st: c.conf_path(st.args[0]),
    "text": lambda c, st: st.args[0],
    "template": lambda c, st: c.template(st.args[0], st.where),
}


# ---------------------------------------------------------------- handlers

def scalar(c, lv, st) -> None:
    name = st.directive
    if name in lv.vals:
        raise ConfigError(f'"{name}" directive is duplicate', st.where)
    kind = (SERVER_SCALARS.get(name) or PROXY_SCALARS[name])[1]
    lv.vals[name] = PARSERS[kind](c, st)


def certificate(c, lv, st) -> None:
    """ssl_certificate / ssl_certificate_key: several allowed (RSA + ECDSA), paired in order.
    A server's value may be a "data:" PEM (kept as it is) or have variables (a Template, loaded
    per handshake as nginx's ngx_http_ssl_certificate does)."""
    arg = st.args[0]
    if st.directive.startswith("proxy_"):
        value = c.conf_path(arg)
    elif has_variables(arg):
        value = c.template(arg, st.where)
    elif arg.startswith("data:"):
        value = arg
    else:
        value = c.conf_path(arg)
    lv.vals.setdefault(st.directive, []).append((value, arg, st.where))


def register(directive, noop, warned, refuse, contexts_hs, contexts_hsl) -> None:
    """Registry rows, with their classes (called from directives._register)."""
    for name in ("ssl_certificate", "ssl_certificate_key"):
        directive(name, contexts_hs, 1, certificate)
    for name in ("proxy_ssl_certificate", "proxy_ssl_certificate_key"):
        directive(name, contexts_hsl, 1, certificate)
    for name in SERVER_SCALARS:
        nargs = (1, None) if name in ("ssl_protocols", "ssl_session_cache") else 1
        directive(name, contexts_hs, nargs, scalar)
    for name in SERVER_NO_EFFECT:
        noop(name, contexts_hs, 1)
    warned("ssl_early_data", contexts_hs, 1, flag, default=("off",))
    for name, default in SERVER_REFUSED.items():
        refuse(name, contexts_hs, (1, None), default=default)
    for name in PROXY_SCALARS:
        nargs = (1, None) if name == "proxy_ssl_protocols" else 1
        directive(name, contexts_hsl, nargs, scalar)
    for name in PROXY_REFUSED:
        refuse(name, contexts_hsl)


# ---------------------------------------------------------------- compiled settings

def _pairs(vals: dict, prefix: str) -> tuple:
    certs = vals.get(prefix + "certificate", [])
    keys = vals.get(prefix + "certificate_key", [])
    pairs = []
    for i, (path, arg, _where) in enumerate(certs):
        if i >= len(keys):
            raise ConfigError(f'no "{prefix}certificate_key" is defined for certificate "{arg}"')
        pairs.append((path, keys[i][0]))
    return tuple(pairs)


def _fields(vals: dict, table: dict) -> dict:
    return {field: vals[name] for name, (field, _kind) in table.items() if name in vals}


def server_tls(vals: dict, where, conf_dir: str = "") -> TlsServerConf:
    """A server's TlsServerConf with its SSLContext (server/tls.py builds it). With a variable
    in any ssl_certificate(_key), every pair is loaded per handshake (nginx's rule)."""
    from ngate.server.tls import read_passwords, server_context
    fields = _fields(vals, SERVER_SCALARS)
    certs = vals.get("ssl_certificate", [])
    pairs = _pairs(vals, "ssl_")
    dynamic = any(isinstance(v, Template) for pair in pairs for v in pair)
    conf = TlsServerConf(certificates=pairs, where=certs[0][2] if certs else where,
                         dynamic=dynamic, conf_dir=conf_dir, **fields)
    if dynamic:     # nginx keeps the passwords for the handshakes (ngx_ssl_preserve_passwords)
        conf = TlsServerConf(**{**_asdict(conf),
                                "passwords": tuple(read_passwords(conf.password_file))})
    return TlsServerConf(**{**_asdict(conf), "context": server_context(conf)})


def _asdict(conf) -> dict:
    return {name: getattr(conf, name) for name in conf.__dataclass_fields__}


def proxy_tls(vals: dict) -> ProxyTls:
    """A location's ProxyTls; its client SSLContext is built (and cached) now when proxy_pass is
    https, so a bad file is a load-time error."""
    fields = _fields(vals, PROXY_SCALARS)
    pairs = _pairs(vals, "proxy_ssl_")
    if pairs:
        fields["certificate"], fields["certificate_key"] = pairs[-1]
    conf = ProxyTls(**fields)
    pp = vals.get("proxy.pass_")
    if pp is not None and pp.scheme == "https":
        from ngate.upstream.tls import client_context
        client_context(conf)
    return conf


def check_listens(servers) -> None:
    """nginx's rule: the default server of a `listen ... ssl` socket needs a certificate unless
    it rejects handshakes; then every other server of that socket needs one (or rejects too)."""
    from ngate.config.compile import by_listen
    for key, (default, group) in by_listen(servers).items():
        if default.tls is None:
            continue
        if default.tls.certificates:
            continue
        if not default.tls.reject_handshake:
            raise _no_certificate(default)
        for srv in group:
            if not srv.tls.certificates and not srv.tls.reject_handshake:
                raise _no_certificate(srv)


def _no_certificate(srv) -> ConfigError:
    return ConfigError('no "ssl_certificate" is defined for the "listen ... ssl" directive',
                       srv.where)


def build_listens(listens: dict) -> dict:
    from ngate.server.tls import build_listens as build
    return build(listens)


def new_generation() -> None:
    """A (re)load reads certificate files afresh: forget the client contexts built before."""
    from ngate.upstream.tls import clear_cache
    clear_cache()
