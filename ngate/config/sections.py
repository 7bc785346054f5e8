"""LocConf's sections: each module other than the HTTP core owns one field of LocConf, as each
nginx module has its own loc conf (ngx_http_proxy_loc_conf_t, ...).

A directive's handler writes its value on the current Level under a key. Keys of the form
"section.field" fill a field of a section class (`proxy.read_timeout` -> LocConf.proxy, a
ProxyConf, field read_timeout); compile.py merges the keys level by level as nginx merges (a
scalar from the innermost level that set it, an array replaced wholesale by the innermost level
that has any item) and then builds each section from its keys. Other keys without a dot are
either a core field of LocConf itself (root, error_page, client_max_body_size ...) or an input
of a module's builder (`inputs` below: limit_req, gzip_*, proxy_ssl_* ...) that compiles the
module's field in one piece.

SECTIONS is the table the tests check: every directive fills keys of exactly one section (or
only core fields), every section belongs to one module, and LocConf's flat part is the core's.
"""
from __future__ import annotations

from dataclasses import dataclass

from ngate.config.model_fastcgi import FastCGIConf
from ngate.config.model_headers import HeadersConf
from ngate.config.model_logs import LogConf
from ngate.config.model_modules import MirrorConf, SecureLinkConf, WebSocketConf
from ngate.config.model_proxy import ProxyConf
from ngate.config.model_rewrite import RewriteConf
from ngate.config.model_static import StaticConf


@dataclass(frozen=True, slots=True)
class Section:
    name: str                  # the LocConf field (and the key prefix "name.")
    cls: type | None           # built from the "name.*" keys; None: a builder makes the value
    owner: str                 # the module that owns it (its handlers and its readers)
    inputs: tuple = ()         # Level keys (prefixes) its builder reads, that are not fields


SECTIONS: dict[str, Section] = {s.name: s for s in (
    Section("proxy", ProxyConf, "ngate.proxy", ("proxy_ssl_", "proxy_cache", "proxy_no_cache")),
    Section("fastcgi", FastCGIConf, "ngate.fastcgi", ("fastcgi_cache", "fastcgi_no_cache")),
    Section("headers", HeadersConf, "ngate.http.respond"),
    Section("static", StaticConf, "ngate.static", ("gzip_static",)),
    Section("log", LogConf, "ngate.observability.access_log"),
    Section("rewrite", RewriteConf, "ngate.http.rewrite"),
    Section("secure_link", SecureLinkConf, "ngate.routing.secure_link"),
    Section("mirror", MirrorConf, "ngate.proxy.mirror"),
    Section("websocket", WebSocketConf, "ngate.proxy.tunnel"),
    # built in one piece by the module from its directives' values
    Section("charset", None, "ngate.config.charset_map",
            ("charset", "source_charset", "override_charset", "charset_types", "charset_map")),
    Section("access", None, "ngate.access",
            ("allow", "deny", "access_rules", "auth_basic", "satisfy", "auth_delay",
             "auth_request")),
    Section("limits", None, "ngate.limits", ("limit_req", "limit_conn")),
    Section("filters", None, "ngate.filters",
            ("gzip", "gunzip", "sub_filter", "ssi", "add_before_body", "add_after_body",
             "addition_types", "add_trailer")),
    Section("realip", None, "ngate.realip", ("set_real_ip_from", "real_ip_")),
    Section("userid", None, "ngate.routing.userid", ("userid",)),
    Section("valid_referers", None, "ngate.routing.referer", ("valid_referers",)),
)}

# the sections whose class compile.py builds from their keys
PLAIN = tuple(s for s in SECTIONS.values() if s.cls is not None)


def core_fields(loc_fields) -> frozenset:
    """LocConf's flat part: its fields that are not sections."""
    return frozenset(loc_fields) - SECTIONS.keys()


def split(vals: dict, freeze: dict, core_fields: frozenset) -> tuple[dict, dict]:
    """A merged Level's values -> (core fields, {section: {field: value}}), arrays frozen."""
    fields: dict = {}
    parts: dict = {s.name: {} for s in PLAIN}
    for key, value in vals.items():
        section, dot, name = key.partition(".")
        if dot:
            parts[section][name] = freeze.get(key, _same)(value)
        elif key in core_fields:
            fields[key] = freeze.get(key, _same)(value)
    return fields, parts


def _same(value):
    return value
