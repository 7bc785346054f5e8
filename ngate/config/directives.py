"""The directive registry: one row per directive (contexts, arity, block or not, handler).

`check(stmt, ctx)` finds the row and applies nginx's ngx_conf_handler checks in nginx's order:
unknown directive, context, `{`/`;`, argument count. The handlers (handlers.py, blocks.py) turn
the statement into values on the current Level; compile.py merges levels into the model.

Contexts: main, events, http, server, location, sif (if in server), lif (if in location),
upstream, limit_except. (`map` and `types` blocks hold key/value pairs, not directives.)

Every row records its class (`support`), so that nothing a config asks for is silently ignored:
  1 IMPLEMENTED  with nginx's semantics;
  2 NO_EFFECT    accepted and checked, no effect, only where that cannot change what a client
                 may access or receives beyond performance (sendfile, buffer and hash sizes ...);
    WARN         the same, where the absence is visible but harmless (gzip, proxy_cache): one
                 `[warn] "gzip" has no effect in ngate in file:line` per occurrence at -t, start
                 and reload (not for `default`, nginx's default value, which ngate does);
  3 REFUSED      `[emerg] "uwsgi_pass" directive is not supported by ngate in file:line`, the
                 config fails closed as nginx without the module would. A row's `default` (nginx's
                 default value, e.g. `ssi off`) is accepted: that is what ngate does.
Directives of nginx modules ngate has nothing of stay `unknown directive`, as nginx built without
them says; the ones a user is likely to move over (uwsgi, ssi, addition ...) are REFUSED rows.
The class 1 rows are here (or in their module's register()); classes 2 and 3 in unsupported.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ngate.errors import ConfigError

HTTP, SRV, LOC = "http", "server", "location"
SIF, LIF, UPS, LMT = "sif", "lif", "upstream", "limit_except"
MAIN, EVENTS = "main", "events"
HSL = frozenset({HTTP, SRV, LOC})
HS = frozenset({HTTP, SRV})
HSLI = frozenset({HTTP, SRV, LOC, LIF})
REWRITE = frozenset({SRV, SIF, LOC, LIF})
ANY = None


IMPLEMENTED, NO_EFFECT, WARN, REFUSED = "implemented", "no effect", "warn", "refused"
CLASS = {IMPLEMENTED: 1, NO_EFFECT: 2, WARN: 2, REFUSED: 3}


@dataclass(frozen=True, slots=True)
class Directive:
    name: str
    contexts: frozenset
    nargs: tuple           # (min, max); max None: unbounded
    handler: Callable      # handler(compiler, level, stmt)
    block: bool = False
    support: str = IMPLEMENTED     # the class: IMPLEMENTED, NO_EFFECT, WARN or REFUSED
    default: tuple | None = None   # nginx's default arguments (lower case), see the docstring


REGISTRY: dict[str, list[Directive]] = {}


def directive(name: str, contexts, nargs, handler, block: bool = False,
              support: str = IMPLEMENTED, default: tuple | None = None) -> None:
    if isinstance(nargs, int):
        nargs = (nargs, nargs)
    REGISTRY.setdefault(name, []).append(
        Directive(name, frozenset(contexts), nargs, handler, block, support, default))


def noop(name: str, contexts, nargs, parse=None, default: tuple | None = None) -> None:
    """Class 2, silent: checked by `parse` (a value parser of handlers.py), then dropped."""
    from ngate.config.handlers import no_effect
    directive(name, contexts, nargs, no_effect(parse), support=NO_EFFECT, default=default)


def warned(name: str, contexts, nargs, parse=None, default: tuple | None = None) -> None:
    """Class 2 with the `has no effect in ngate` warning (not for nginx's default value)."""
    from ngate.config.handlers import no_effect
    directive(name, contexts, nargs, no_effect(parse, True, default), support=WARN,
              default=default)


def refuse(name: str, contexts=None, nargs=(1, None), default: tuple | None = None,
           block: bool = False) -> None:
    """Class 3. Only `default` (nginx's default value) gets past check(), so contexts and nargs
    matter for it alone; without a default they may stay the loosest."""
    from ngate.config.handlers import refused
    directive(name, contexts or ALL_CONTEXTS, nargs, refused, block=block, support=REFUSED,
              default=default)


ALL_CONTEXTS = frozenset({MAIN, EVENTS, HTTP, SRV, LOC, SIF, LIF, UPS, LMT})


def check(stmt, ctx: str) -> Directive:
    """The row for stmt in ctx, or the ConfigError nginx gives."""
    name = stmt.directive
    rows = REGISTRY.get(name)
    if not rows:
        raise ConfigError(f'unknown directive "{name}"', stmt.where)
    if rows[0].support == REFUSED:
        from ngate.config.handlers import is_default
        if not is_default(stmt.args, rows[0].default):
            raise ConfigError(f'"{name}" directive is not supported by ngate', stmt.where)
    row = next((r for r in rows if ctx in r.contexts), None)
    if row is None:
        raise ConfigError(f'"{name}" directive is not allowed here', stmt.where)
    if row.block and stmt.block is None:
        raise ConfigError(f'directive "{name}" has no opening "{{"', stmt.where)
    if not row.block and stmt.block is not None:
        raise ConfigError(f'directive "{name}" is not terminated by ";"', stmt.where)
    low, high = row.nargs
    n = len(stmt.args)
    if n < low or (high is not None and n > high):
        raise ConfigError(f'invalid number of arguments in "{name}" directive', stmt.where)
    return row


def _register() -> None:
    from ngate.config import blocks as b
    from ngate.config import charset_map
    from ngate.config import handlers as h
    from ngate.proxy import bind as proxy_bind
    from ngate.resolver.config import parse_resolver
    from ngate.routing import referer, secure_link

    # ============================================================= class 1: implemented
    # ------------------------------------------------------------- main and events
    directive("daemon", {MAIN}, 1, h.scalar("daemon", h.flag))
    directive("master_process", {MAIN}, 1, h.scalar("master_process", h.flag))
    directive("pid", {MAIN}, 1, h.scalar("pid", h.path_arg))
    directive("worker_processes", {MAIN}, 1, h.scalar("worker_processes", h.worker_processes))
    directive("worker_shutdown_timeout", {MAIN}, 1, h.scalar("worker_shutdown_timeout", h.msec))
    directive("worker_rlimit_nofile", {MAIN}, 1, h.scalar("worker_rlimit_nofile", h.number))
    directive("user", {MAIN}, (1, 2), h.user)
    directive("error_log", {MAIN, HTTP, SRV, LOC}, (1, 2), h.error_log)
    directive("events", {MAIN}, 0, b.events, block=True)
    directive("worker_connections", {EVENTS}, 1, h.scalar("worker_connections", h.count))

    # ------------------------------------------------------------- http structure
    directive("http", {MAIN}, 0, b.http, block=True)
    directive("server", {HTTP}, 0, b.server, block=True)
    directive("listen", {SRV}, (1, None), b.listen)
    directive("server_name", {SRV}, (1, None), b.server_name)
    directive("location", {SRV, LOC}, (1, 2), b.location, block=True)
    directive("limit_except", {LOC}, (1, None), b.limit_except, block=True)
    directive("upstream", {HTTP}, 1, b.upstream, block=True)
    directive("server", {UPS}, (1, None), b.upstream_server)
    directive("keepalive", {UPS}, 1, h.scalar("keepalive", h.count))
    directive("keepalive_timeout", {UPS}, 1, h.scalar("keepalive_timeout", h.msec))
    directive("keepalive_requests", {UPS}, 1, h.scalar("keepalive_requests", h.count))
    directive("keepalive_time", {UPS}, 1, h.scalar("keepalive_time", h.msec))
    directive("least_conn", {UPS}, 0, b.balancer)
    directive("ip_hash", {UPS}, 0, b.balancer)
    directive("hash", {UPS}, (1, 2), b.balancer)
    directive("random", {UPS}, (0, 2), b.balancer)
    directive("zone", {UPS}, (1, 2), h.scalar("zone", h.upstream_zone))
    directive("map", {HTTP}, 2, b.map_block, block=True)
    directive("types", HSL, 0, b.types, block=True)
    directive("log_format", {HTTP}, (2, None), h.log_format)

    # ------------------------------------------------------------- rewrite module
    directive("set", REWRITE, 2, h.set_var)
    directive("return", REWRITE, (1, 2), h.return_)
    directive("rewrite", REWRITE, (2, 3), h.rewrite)
    directive("break", REWRITE, 0, h.break_)
    directive("if", {SRV, LOC}, (1, None), b.if_block, block=True)   # never inside an if

    # ------------------------------------------------------------- proxy module
    directive("proxy_pass", {LOC, LIF, LMT}, 1, h.proxy_pass)
    directive("proxy_http_version", HSL, 1, h.scalar("proxy.http_version", h.http_version))
    directive("proxy_set_header", HSL, 2, h.proxy_set_header)
    directive("proxy_hide_header", HSL, 1, h.array("proxy.hide_header", h.lower_bytes))
    directive("proxy_pass_header", HSL, 1, h.array("proxy.pass_header", h.lower_bytes))
    directive("proxy_redirect", HSL, (1, 2), h.proxy_redirect)
    directive("proxy_cookie_domain", HSL, (1, 2), h.proxy_cookie)
    directive("proxy_cookie_path", HSL, (1, 2), h.proxy_cookie)
    directive("proxy_cookie_flags", HSL, (1, 4), h.proxy_cookie_flags)
    directive("proxy_next_upstream", HSL, (1, None),
              h.scalar("proxy.next_upstream", h.next_upstream))
    directive("proxy_next_upstream_tries", HSL, 1,
              h.scalar("proxy.next_upstream_tries", h.number))
    directive("proxy_method", HSL, 1, h.scalar("proxy.method", h.template))
    directive("proxy_set_body", HSL, 1, h.scalar("proxy.set_body", h.template))
    for name in ("proxy_pass_request_headers", "proxy_pass_request_body",
                 "proxy_request_buffering", "proxy_intercept_errors", "proxy_force_ranges"):
        directive(name, HSL, 1, h.scalar(h.section_key(name), h.flag))
    for name in ("proxy_connect_timeout", "proxy_read_timeout", "proxy_send_timeout",
                 "proxy_next_upstream_timeout"):
        directive(name, HSL, 1, h.scalar(h.section_key(name), h.msec))
    directive("proxy_buffer_size", HSL, 1, h.scalar("proxy.buffer_size", h.size))
    directive("proxy_limit_rate", HSL, 1, h.scalar("proxy.limit_rate", h.size))
    directive("proxy_bind", HSL, (1, 2), h.scalar("proxy.bind", proxy_bind.parse))
    directive("proxy_ignore_headers", HSL, (1, None),
              h.bitmask("proxy.ignore_headers", h.ignore_headers))

    # ------------------------------------------------------------- fastcgi module
    directive("fastcgi_pass", {LOC, LIF}, 1, h.fastcgi_pass)
    directive("fastcgi_bind", HSL, (1, 2), h.scalar("fastcgi.bind", proxy_bind.parse))
    directive("fastcgi_param", HSL, (2, 3), h.fastcgi_param)
    directive("fastcgi_index", HSL, 1, h.scalar("fastcgi.index", h.first_arg))
    directive("fastcgi_split_path_info", HSL, 1, h.split_path_info)
    directive("fastcgi_hide_header", HSL, 1, h.array("fastcgi.hide_header", h.lower_bytes))
    directive("fastcgi_pass_header", HSL, 1, h.array("fastcgi.pass_header", h.lower_bytes))
    directive("fastcgi_next_upstream", HSL, (1, None),
              h.scalar("fastcgi.next_upstream", h.next_upstream))
    directive("fastcgi_next_upstream_tries", HSL, 1,
              h.scalar("fastcgi.next_upstream_tries", h.number))
    directive("fastcgi_buffer_size", HSL, 1, h.scalar("fastcgi.buffer_size", h.size))
    directive("fastcgi_catch_stderr", HSL, 1,
              h.array("fastcgi.catch_stderr", lambda c, st: st.args[0].encode("utf-8")))
    directive("fastcgi_limit_rate", HSL, 1, h.scalar("fastcgi.limit_rate", h.size))
    directive("fastcgi_ignore_headers", HSL, (1, None),
              h.bitmask("fastcgi.ignore_headers", h.ignore_headers))
    for name in ("fastcgi_keep_conn", "fastcgi_intercept_errors", "fastcgi_pass_request_headers",
                 "fastcgi_pass_request_body", "fastcgi_request_buffering", "fastcgi_force_ranges"):
        directive(name, HSL, 1, h.scalar(h.section_key(name), h.flag))
    for name in ("fastcgi_connect_timeout", "fastcgi_read_timeout", "fastcgi_send_timeout",
                 "fastcgi_next_upstream_timeout"):
        directive(name, HSL, 1, h.scalar(h.section_key(name), h.msec))

    # ------------------------------------------------------------- ngate: WebSocket, metrics
    directive("websocket_ping", HSL, 1, h.scalar("websocket.ping", h.msec_or_off))
    directive("websocket_pong_timeout", HSL, 1, h.scalar("websocket.pong_timeout", h.msec_or_off))
    directive("metrics", {LOC}, 0, h.scalar("metrics", lambda c, st: True))
    directive("cors", {SRV, LOC}, (1, None), h.cors)

    # ------------------------------------------------------------- core and headers
    directive("add_header", HSLI, (2, 3), h.add_header)
    directive("add_trailer", HSLI, (2, 3), h.add_header)     # filters/trailers.py
    directive("error_page", HSLI, (2, None), h.error_page)
    directive("access_log", HSLI | {LMT}, (1, None), h.access_log)
    directive("root", HSLI, 1, h.root)
    directive("alias", {LOC}, 1, h.alias)
    directive("index", HSL, (1, None), h.array("static.index", h.index_args, extend=True))
    directive("resolver", HSL, (1, None), h.scalar("resolver", parse_resolver))
    directive("resolver_timeout", HSL, 1, h.scalar("resolver_timeout", h.msec))
    directive("default_type", HSL, 1, h.scalar("default_type", h.first_arg))
    directive("client_max_body_size", HSL, 1, h.scalar("client_max_body_size", h.size))
    directive("client_body_timeout", HSL, 1, h.scalar("client_body_timeout", h.msec))
    directive("client_body_buffer_size", HSL, 1, h.scalar("client_body_buffer_size", h.size))
    directive("client_body_temp_path", HSL, (1, 4), h.scalar("client_body_temp_path", h.temp_path))
    directive("client_body_in_file_only", HSL, 1, h.scalar("client_body_in_file_only", h.in_file_only))
    directive("client_body_in_single_buffer", HSL, 1,
              h.scalar("client_body_in_single_buffer", h.flag))
    directive("send_timeout", HSL, 1, h.scalar("send_timeout", h.msec))
    directive("keepalive_timeout", HSL, (1, 2), h.keepalive_timeout)
    directive("keepalive_requests", HSL, 1, h.scalar("keepalive_requests", h.number))
    directive("keepalive_time", HSL, 1, h.scalar("keepalive_time", h.msec))
    directive("limit_rate", HSLI, 1, h.scalar("limit_rate", h.rate_size))
    directive("limit_rate_after", HSLI, 1, h.scalar("limit_rate_after", h.rate_size))
    directive("keepalive_disable", HSL, (1, 2), h.scalar("keepalive_disable", h.keepalive_disable))
    directive("server_tokens", HSL, 1, h.scalar("server_tokens", h.server_tokens))
    directive("valid_referers", {SRV, LOC}, (1, None), referer.valid_referers)
    noop("referer_hash_max_size", {SRV, LOC}, 1, h.number)        # sizes of nginx's hash
    noop("referer_hash_bucket_size", {SRV, LOC}, 1, h.number)
    directive("log_not_found", HSL, 1, h.scalar("log_not_found", h.flag))
    directive("expires", HSLI, (1, 2), h.scalar("headers.expires", h.expires))
    for name in ("absolute_redirect", "port_in_redirect", "server_name_in_redirect",
                 "msie_padding", "msie_refresh"):
        directive(name, HSL, 1, h.scalar(name, h.flag))
    directive("subrequest_output_buffer_size", HSL, 1,
              h.scalar("subrequest_output_buffer_size", h.size))
    # static files and the rewrite log (ngate/static, http/rewrite.py)
    directive("try_files", {SRV, LOC}, (2, None), h.try_files)
    directive("autoindex", HSL, 1, h.scalar("static.autoindex", h.flag))
    directive("autoindex_format", HSL, 1, h.scalar("static.autoindex_format", h.autoindex_format))
    directive("empty_gif", {LOC}, 0, h.empty_gif)
    directive("random_index", {LOC}, 1, h.scalar("static.random_index", h.flag))
    directive("secure_link", HSL, 1, secure_link.secure_link)
    directive("secure_link_md5", HSL, 1, secure_link.secure_link_md5)
    directive("secure_link_secret", {LOC}, 1, secure_link.secure_link_secret)
    directive("etag", HSL, 1, h.scalar("etag", h.flag))
    directive("open_file_cache", HSL, (1, 2), h.scalar("static.open_file_cache",
                                                       h.open_file_cache))
    directive("open_file_cache_valid", HSL, 1, h.scalar("static.open_file_cache_valid", h.sec))
    directive("open_file_cache_min_uses", HSL, 1,
              h.scalar("static.open_file_cache_min_uses", h.number))
    directive("open_file_cache_errors", HSL, 1, h.scalar("static.open_file_cache_errors", h.flag))
    directive("disable_symlinks", HSL, (1, 2), h.disable_symlinks)
    directive("max_ranges", HSL, 1, h.scalar("max_ranges", h.number))
    directive("chunked_transfer_encoding", HSL, 1,
              h.scalar("chunked_transfer_encoding", h.flag))
    directive("recursive_error_pages", HSL, 1, h.scalar("recursive_error_pages", h.flag))
    directive("charset", HSLI, 1, h.scalar("charset", charset_map.charset_name))
    directive("source_charset", HSLI, 1, h.scalar("source_charset", charset_map.charset_name))
    directive("override_charset", HSLI, 1, h.scalar("override_charset", h.flag))
    directive("charset_map", {HTTP}, 2, charset_map.charset_map, block=True)
    directive("charset_types", HSL, (1, None), h.charset_types)
    directive("if_modified_since", HSL, 1, h.scalar("if_modified_since", h.if_modified_since))
    directive("lingering_close", HSL, 1, h.scalar("lingering_close", h.lingering_close))
    directive("lingering_time", HSL, 1, h.scalar("lingering_time", h.msec))
    directive("lingering_timeout", HSL, 1, h.scalar("lingering_timeout", h.msec))
    directive("rewrite_log", {HTTP, SRV, SIF, LOC, LIF}, 1, h.scalar("rewrite.log", h.flag))
    directive("client_header_timeout", HS, 1, h.scalar("client_header_timeout", h.msec))
    directive("client_header_buffer_size", HS, 1, h.scalar("client_header_buffer_size", h.size))
    directive("large_client_header_buffers", HS, 2,
              h.scalar("large_client_header_buffers", h.bufs))
    for name in ("underscores_in_headers", "ignore_invalid_headers", "merge_slashes"):
        directive(name, HS, 1, h.scalar(name, h.flag))
    directive("internal", {LOC}, 0, h.scalar("internal", lambda c, st: True))
    directive("allow", HSL | {LMT}, 1, h.array("access_rules", h.access_rule))
    directive("deny", HSL | {LMT}, 1, h.array("access_rules", h.access_rule))
    directive("satisfy", HSL, 1, h.scalar("satisfy", h.satisfy))
    directive("auth_delay", HSL, 1, h.scalar("auth_delay", h.msec))
    directive("auth_request", HSL, 1, h.scalar("auth_request", h.first_arg))
    directive("auth_request_set", HSL, 2, h.array("auth_request_set", h.auth_request_set))
    directive("auth_basic", HSL | {LMT}, 1, h.scalar("auth_basic", h.template))
    directive("auth_basic_user_file", HSL | {LMT}, 1,
              h.scalar("auth_basic_user_file", h.auth_basic_user_file))
    # realip, geo, split_clients, stub_status (ngate/realip, routing/geo.py, routing/split_clients.py,
    # observability/stub_status.py)
    from ngate import realip
    directive("set_real_ip_from", HSL, 1, h.array("set_real_ip_from", realip.parse_from, extend=True))
    directive("real_ip_header", HSL, 1, h.scalar("real_ip_header", realip.parse_header))
    directive("real_ip_recursive", HSL, 1, h.scalar("real_ip_recursive", h.flag))
    directive("geo", {HTTP}, (1, 2), b.geo_block, block=True)
    directive("split_clients", {HTTP}, 2, b.split_clients_block, block=True)
    from ngate.observability import stub_status
    directive("stub_status", {SRV, LOC}, (0, 1), stub_status.directive)
    from ngate.routing import userid
    userid.register(directive, HSL)
    from ngate.proxy import mirror
    directive("mirror", HSL, 1, mirror.mirror)
    directive("mirror_request_body", HSL, 1, h.scalar("mirror.request_body", h.flag))
    directive("log_subrequest", HSL, 1, h.scalar("log_subrequest", h.flag))

    # ------------------------------------------------------------- proxy_cache (ngate/cache)
    from ngate.cache import config as cache
    cache.register(directive, HSL, h.scalar, h.flag, h.number, h.msec, h.size)

    # ------------------------------------------------------------- limit_req, limit_conn
    from ngate.limits import config as limits
    limits.register(directive, HSL, h.scalar, h.flag)

    # ------------------------------------------------------------- response filters (filters/)
    from ngate.filters import config as filters
    filters.register(directive, HSL, HSLI, h.scalar, h.size, h.bufs)

    # ------------------------------------------------------------- ssl_*, proxy_ssl_* (all classes)
    from ngate.config import tls
    tls.register(directive, noop, warned, refuse, HS, HSL)

    # ------------------------------------------------------------- HTTP/2 (ngate/http2/)
    # the server's settings; buffer and pool sizes have no counterpart (unsupported.py)
    directive("http2", HS, 1, h.scalar("http2", h.flag))
    directive("http2_max_concurrent_streams", HS, 1, h.scalar("http2_max_concurrent_streams",
                                                              h.number))
    for name in ("http2_max_field_size", "http2_max_header_size", "http2_body_preread_size"):
        directive(name, HS, 1, h.scalar(name, h.size))
    directive("http2_chunk_size", HSL, 1, h.scalar("http2_chunk_size", h.size))
    # ngate's extension: WebSocket over HTTP/2 (RFC 8441, ngate/http2/websocket.py)
    directive("http2_websocket", HS, 1, h.scalar("http2_websocket", h.flag))
    for name in ("http2_idle_timeout", "http2_recv_timeout"):
        directive(name, HS, 1, h.scalar(name, h.msec))

    # ============================================================= classes 2 and 3
    from ngate.config import unsupported
    unsupported.register()


_register()
