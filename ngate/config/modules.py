"""Which nginx modules ngate implements, for `ngate -V`'s "configure arguments".

Tools (nginx's own test harness among them) read `nginx -V` to learn what a build has: a module
nginx builds by default is missing when `--without-<module>` is listed, an optional one is
present when `--with-<module>` is. ngate derives that list from one table: a module counts as
implemented when every directive that stands for it is in the directive registry with a real
handler, not one that only accepts it: no handler marked `not_implemented = True`, no row whose
`support` class says otherwise. When a directive gains a real handler, -V follows by itself.
"""
from __future__ import annotations

import ssl

from ngate.config import directives

# (configure name, built by nginx by default, directives that must be implemented)
MODULES: tuple[tuple[str, bool, tuple[str, ...]], ...] = (
    # nginx builds these unless --without-...
    ("http_charset_module", True, ("charset", "source_charset")),
    ("http_gzip_module", True, ("gzip",)),
    ("http_ssi_module", True, ("ssi",)),
    ("http_userid_module", True, ("userid",)),
    ("http_access_module", True, ("allow", "deny")),
    ("http_auth_basic_module", True, ("auth_basic", "auth_basic_user_file")),
    ("http_mirror_module", True, ("mirror",)),
    ("http_autoindex_module", True, ("autoindex",)),
    ("http_geo_module", True, ("geo",)),
    ("http_map_module", True, ("map",)),
    ("http_split_clients_module", True, ("split_clients",)),
    ("http_referer_module", True, ("valid_referers",)),
    ("http_rewrite_module", True, ("rewrite", "return", "set", "if", "break")),
    ("http_proxy_module", True, ("proxy_pass",)),
    ("http_fastcgi_module", True, ("fastcgi_pass",)),
    ("http_uwsgi_module", True, ("uwsgi_pass",)),
    ("http_scgi_module", True, ("scgi_pass",)),
    ("http_grpc_module", True, ("grpc_pass",)),
    ("http_memcached_module", True, ("memcached_pass",)),
    ("http_limit_conn_module", True, ("limit_conn", "limit_conn_zone")),
    ("http_limit_req_module", True, ("limit_req", "limit_req_zone")),
    ("http_empty_gif_module", True, ("empty_gif",)),
    ("http_browser_module", True, ("modern_browser", "ancient_browser")),
    ("http_upstream_hash_module", True, ("hash",)),
    ("http_upstream_ip_hash_module", True, ("ip_hash",)),
    ("http_upstream_least_conn_module", True, ("least_conn",)),
    ("http_upstream_random_module", True, ("random",)),
    ("http_upstream_keepalive_module", True, ("keepalive",)),
    ("http_upstream_zone_module", True, ("zone",)),
    ("http-cache", True, ("proxy_cache", "proxy_cache_path")),
    # ... and these only with --with-...
    ("http_ssl_module", False, ("ssl_certificate", "ssl_certificate_key")),
    ("http_v2_module", False, ("http2_max_concurrent_streams",)),
    ("http_realip_module", False, ("set_real_ip_from", "real_ip_header")),
    ("http_auth_request_module", False, ("auth_request",)),
    ("http_sub_module", False, ("sub_filter",)),
    ("http_addition_module", False, ("add_before_body", "add_after_body")),
    ("http_gunzip_module", False, ("gunzip",)),
    ("http_gzip_static_module", False, ("gzip_static",)),
    ("http_dav_module", False, ("dav_methods",)),
    ("http_flv_module", False, ("flv",)),
    ("http_mp4_module", False, ("mp4",)),
    ("http_slice_module", False, ("slice",)),
    ("http_secure_link_module", False, ("secure_link",)),
    ("http_stub_status_module", False, ("stub_status",)),
    ("http_random_index_module", False, ("random_index",)),
    ("http_degradation_module", False, ("degradation",)),
    ("http_perl_module", False, ("perl",)),
    ("http_xslt_module", False, ("xslt_stylesheet",)),
    ("http_image_filter_module", False, ("image_filter",)),
    ("http_geoip_module", False, ("geoip_country",)),
    ("stream", False, ("stream",)),
    ("mail", False, ("mail",)),
)

DIRECTIVES = {module: names for module, _default, names in MODULES}

def implemented(name: str, registry: dict | None = None) -> bool:
    """Is directive `name` registered with a handler that does more than accept it (and, where
    the row records its class of support, classed as implemented)?"""
    rows = (directives.REGISTRY if registry is None else registry).get(name, ())
    return any(getattr(row, "support", "implemented") == "implemented"
               and not getattr(row.handler, "not_implemented", False) for row in rows)


def module_implemented(names: tuple[str, ...], registry: dict | None = None) -> bool:
    return all(implemented(name, registry) for name in names)


def configure_arguments(registry: dict | None = None) -> list[str]:
    """nginx-style arguments: --with-X for optional modules ngate has, --without-X for default
    modules it lacks."""
    args = []
    for module, default, names in MODULES:
        has = module_implemented(names, registry)
        if default and not has:
            args.append(f"--without-{module}")
        elif not default and has:
            args.append(f"--with-{module}")
    return args


def build_lines(registry: dict | None = None) -> list[str]:
    """`-V`'s lines after the version: TLS library, SNI, configure arguments."""
    lines = []
    if module_implemented(DIRECTIVES["http_ssl_module"], registry):
        lines.append(f"built with {ssl.OPENSSL_VERSION}")
        if ssl.HAS_SNI:
            lines.append("TLS SNI support enabled")
    lines.append("configure arguments: " + " ".join(configure_arguments(registry)))
    return lines
