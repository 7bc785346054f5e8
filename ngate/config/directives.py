"""The directive registry: one row per directive (contexts, arity, block or not, handler).

`check(stmt, ctx)` finds the row and applies nginx's ngx_conf_handler checks in nginx's order:
unknown directive, context, `{`/`;`, argument count. The handlers (handlers.py, blocks.py) turn
the statement into values on the current Level; compile.py merges levels into the model.

Contexts: main, events, http, server, location, sif (if in server), lif (if in location),
upstream, limit_except. (`map` and `types` blocks hold key/value pairs, not directives.)
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


@dataclass(frozen=True, slots=True)
class Directive:
    name: str
    contexts: frozenset
    nargs: tuple           # (min, max); max None: unbounded
    handler: Callable      # handler(compiler, level, stmt)
    block: bool = False


REGISTRY: dict[str, list[Directive]] = {}


def directive(name: str, contexts, nargs, handler, block: bool = False) -> None:
    if isinstance(nargs, int):
        nargs = (nargs, nargs)
    REGISTRY.setdefault(name, []).append(
        Directive(name, frozenset(contexts), nargs, handler, block))


def check(stmt, ctx: str) -> Directive:
    """The row for stmt in ctx, or the ConfigError nginx gives."""
    name = stmt.directive
    rows = REGISTRY.get(name)
    if not rows:
        raise ConfigError(f'unknown directive "{name}"', stmt.where)
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
    from ngate.config import handlers as h

    # ------------------------------------------------------------- main and events
    directive("daemon", {MAIN}, 1, h.scalar("daemon", h.flag))
    directive("master_process", {MAIN}, 1, h.scalar("master_process", h.flag))
    directive("pid", {MAIN}, 1, h.scalar("pid", h.path_arg))
    directive("worker_processes", {MAIN}, 1, h.scalar("worker_processes", h.worker_processes))
    directive("worker_shutdown_timeout", {MAIN}, 1, h.scalar("worker_shutdown_timeout", h.msec))
    directive("worker_rlimit_nofile", {MAIN}, 1, h.scalar("worker_rlimit_nofile", h.number))
    directive("user", {MAIN}, (1, 2), h.scalar("user", h.first_arg))
    for name in ("worker_cpu_affinity", "worker_priority", "env", "load_module", "pcre_jit",
                 "timer_resolution", "lock_file", "working_directory", "worker_rlimit_core",
                 "thread_pool", "ssl_engine"):
        directive(name, {MAIN}, (1, None), h.extra)
    directive("error_log", {MAIN, HTTP, SRV, LOC}, (1, 2), h.error_log)
    directive("events", {MAIN}, 0, b.events, block=True)
    directive("worker_connections", {EVENTS}, 1, h.scalar("worker_connections", h.count))
    for name in ("multi_accept", "accept_mutex"):
        directive(name, {EVENTS}, 1, h.extra_flag)
    directive("use", {EVENTS}, 1, h.extra)
    directive("accept_mutex_delay", {EVENTS}, 1, h.extra)
    directive("worker_aio_requests", {EVENTS}, 1, h.extra)

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
    directive("least_conn", {UPS}, 0, b.balancer)
    directive("ip_hash", {UPS}, 0, b.balancer)
    directive("hash", {UPS}, (1, 2), b.balancer)
    directive("random", {UPS}, (0, 2), b.balancer)
    directive("map", {HTTP}, 2, b.map_block, block=True)
    directive("types", HSL, 0, b.types, block=True)
    directive("log_format", {HTTP}, (2, None), h.log_format)

    # ------------------------------------------------------------- rewrite module
    directive("set", REWRITE, 2, h.set_var)
    directive("return", REWRITE, (1, 2), h.return_)
    directive("rewrite", REWRITE, (2, 3), h.rewrite)
    directive("break", REWRITE, 0, h.break_)
    directive("if", REWRITE, (1, None), b.if_block, block=True)

    # ------------------------------------------------------------- proxy module
    directive("proxy_pass", {LOC, LIF, LMT}, 1, h.proxy_pass)
    directive("proxy_http_version", HSL, 1, h.scalar("proxy_http_version", h.http_version))
    directive("proxy_set_header", HSL, 2, h.proxy_set_header)
    directive("proxy_hide_header", HSL, 1, h.array("proxy_hide_header", h.lower_bytes))
    directive("proxy_pass_header", HSL, 1, h.array("proxy_pass_header", h.lower_bytes))
    directive("proxy_redirect", HSL, (1, 2), h.proxy_redirect)
    directive("proxy_next_upstream", HSL, (1, None),
              h.scalar("proxy_next_upstream", h.next_upstream))
    directive("proxy_next_upstream_tries", HSL, 1,
              h.scalar("proxy_next_upstream_tries", h.number))
    directive("proxy_method", HSL, 1, h.scalar("proxy_method", h.template))
    directive("proxy_set_body", HSL, 1, h.scalar("proxy_set_body", h.template))
    for name in ("proxy_pass_request_headers", "proxy_pass_request_body", "proxy_buffering",
                 "proxy_request_buffering", "proxy_intercept_errors"):
        directive(name, HSL, 1, h.scalar(name, h.flag))
    for name in ("proxy_connect_timeout", "proxy_read_timeout", "proxy_send_timeout"):
        directive(name, HSL, 1, h.scalar(name, h.msec))
    directive("proxy_buffer_size", HSL, 1, h.scalar("proxy_buffer_size", h.size))
    for name in ("proxy_busy_buffers_size", "proxy_max_temp_file_size",
                 "proxy_temp_file_write_size"):
        directive(name, HSL, 1, h.extra_size)
    directive("proxy_buffers", HSL, 2, h.extra_bufs)

    # ------------------------------------------------------------- fastcgi module
    directive("fastcgi_pass", {LOC, LIF}, 1, h.fastcgi_pass)
    directive("fastcgi_param", HSL, (2, 3), h.fastcgi_param)
    directive("fastcgi_index", HSL, 1, h.scalar("fastcgi_index", h.first_arg))
    directive("fastcgi_split_path_info", HSL, 1, h.split_path_info)
    directive("fastcgi_hide_header", HSL, 1, h.array("fastcgi_hide_header", h.lower_bytes))
    directive("fastcgi_pass_header", HSL, 1, h.array("fastcgi_pass_header", h.lower_bytes))
    directive("fastcgi_next_upstream", HSL, (1, None),
              h.scalar("fastcgi_next_upstream", h.next_upstream))
    directive("fastcgi_next_upstream_tries", HSL, 1,
              h.scalar("fastcgi_next_upstream_tries", h.number))
    directive("fastcgi_buffer_size", HSL, 1, h.scalar("fastcgi_buffer_size", h.size))
    for name in ("fastcgi_keep_conn", "fastcgi_intercept_errors", "fastcgi_pass_request_headers",
                 "fastcgi_pass_request_body", "fastcgi_buffering", "fastcgi_request_buffering"):
        directive(name, HSL, 1, h.scalar(name, h.flag))
    for name in ("fastcgi_connect_timeout", "fastcgi_read_timeout", "fastcgi_send_timeout"):
        directive(name, HSL, 1, h.scalar(name, h.msec))

    # ------------------------------------------------------------- ngate: WebSocket, metrics
    directive("websocket_ping", HSL, 1, h.scalar("websocket_ping", h.msec_or_off))
    directive("websocket_pong_timeout", HSL, 1, h.scalar("websocket_pong_timeout", h.msec_or_off))
    directive("metrics", {LOC}, 0, h.scalar("metrics", lambda c, st: True))

    # ------------------------------------------------------------- core and headers
    directive("add_header", HSLI, (2, 3), h.add_header)
    directive("error_page", HSLI, (2, None), h.error_page)
    directive("access_log", HSLI | {LMT}, (1, None), h.access_log)
    directive("root", HSLI, 1, h.root)
    directive("alias", {LOC}, 1, h.alias)
    directive("index", HSL, (1, None), h.array("index", h.index_args, extend=True))
    directive("resolver", HSL, (1, None), h.array("resolver", h.each_arg, extend=True))
    directive("resolver_timeout", HSL, 1, h.extra_time)
    directive("default_type", HSL, 1, h.scalar("default_type", h.first_arg))
    directive("client_max_body_size", HSL, 1, h.scalar("client_max_body_size", h.size))
    directive("client_body_timeout", HSL, 1, h.scalar("client_body_timeout", h.msec))
    directive("client_body_buffer_size", HSL, 1, h.scalar("client_body_buffer_size", h.size))
    directive("send_timeout", HSL, 1, h.scalar("send_timeout", h.msec))
    directive("keepalive_timeout", HSL, (1, 2), h.scalar("keepalive_timeout", h.msec))
    directive("keepalive_requests", HSL, 1, h.scalar("keepalive_requests", h.number))
    directive("server_tokens", HSL, 1, h.scalar("server_tokens", h.server_tokens))
    directive("log_not_found", HSL, 1, h.scalar("log_not_found", h.flag))
    directive("expires", HSLI, (1, 2), h.scalar("expires", h.expires))
    # static files and the rewrite log (ngate/static, proxy/rewrite.py)
    directive("try_files", {SRV, LOC}, (2, None), h.try_files)
    directive("autoindex", HSL, 1, h.scalar("autoindex", h.flag))
    directive("etag", HSL, 1, h.scalar("etag", h.flag))
    directive("disable_symlinks", HSL, (1, 2), h.disable_symlinks)
    directive("if_modified_since", HSL, 1, h.scalar("if_modified_since", h.if_modified_since))
    directive("lingering_close", HSL, 1, h.scalar("lingering_close", h.lingering_close))
    directive("lingering_time", HSL, 1, h.scalar("lingering_time", h.msec))
    directive("lingering_timeout", HSL, 1, h.scalar("lingering_timeout", h.msec))
    directive("rewrite_log", {HTTP, SRV, SIF, LOC, LIF}, 1, h.scalar("rewrite_log", h.flag))
    directive("uninitialized_variable_warn", {HTTP, SRV, SIF, LOC, LIF}, 1, h.extra_flag)
    directive("cors", {SRV, LOC}, (1, None), h.cors)
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

    # ------------------------------------------------------------- limit_req, limit_conn
    from ngate.limits import config as limits
    limits.register(directive, HSL, h.scalar, h.flag)

    # ------------------------------------------------------------- ssl_*, proxy_ssl_*
    from ngate.config import tls
    tls.register(directive, HS, HSL, h.extra)

    # ------------------------------------------------------------- accepted, kept in extra
    for name in ("sendfile", "tcp_nopush", "tcp_nodelay", "gzip", "gzip_vary", "gzip_static",
                 "absolute_redirect", "port_in_redirect", "server_name_in_redirect",
                 "chunked_transfer_encoding", "reset_timedout_connection",
                 "log_subrequest", "recursive_error_pages", "msie_padding",
                 "proxy_ignore_client_abort", "proxy_socket_keepalive",
                 "http2", "open_file_cache_errors"):
        directive(name, HSLI, 1, h.extra_flag)
    for name in ("gzip_comp_level", "gzip_min_length", "gzip_buffers", "gzip_http_version",
                 "gzip_types", "gzip_proxied", "gzip_disable", "charset", "source_charset",
                 "charset_types", "override_charset", "server_names_hash_bucket_size",
                 "server_names_hash_max_size", "types_hash_max_size", "types_hash_bucket_size",
                 "variables_hash_max_size", "variables_hash_bucket_size",
                 "map_hash_max_size", "map_hash_bucket_size", "proxy_headers_hash_max_size",
                 "proxy_headers_hash_bucket_size", "sendfile_max_chunk", "aio", "directio",
                 "output_buffers", "postpone_output", "keepalive_disable",
                 "client_body_temp_path", "client_body_in_file_only", "proxy_temp_path",
                 "proxy_cache", "proxy_cache_path", "proxy_cache_valid", "proxy_cache_key",
                 "proxy_cache_bypass", "proxy_no_cache", "proxy_cache_methods",
                 "proxy_cache_use_stale", "proxy_cache_lock", "proxy_ignore_headers",
                 "proxy_cookie_domain", "proxy_cookie_path", "proxy_bind", "proxy_store",
                 "fastcgi_buffers", "fastcgi_busy_buffers_size", "fastcgi_ignore_headers",
                 "fastcgi_temp_path",
                 "fastcgi_cache", "fastcgi_cache_path", "fastcgi_cache_key", "fastcgi_cache_valid",
                 "fastcgi_max_temp_file_size", "open_file_cache",
                 "open_file_cache_valid", "open_file_cache_min_uses", "limit_rate",
                 "limit_rate_after", "max_ranges", "uwsgi_param", "uwsgi_pass",
                 "scgi_param", "scgi_pass", "http2_max_concurrent_streams",
                 "http2_max_field_size", "http2_max_header_size", "http2_body_preread_size",
                 "http2_idle_timeout", "http2_recv_timeout", "subrequest_output_buffer_size",
                 "read_ahead", "ssi",
                 "sub_filter", "sub_filter_once", "sub_filter_types", "add_trailer"):
        directive(name, HSLI, (0, None), h.extra)


_register()
