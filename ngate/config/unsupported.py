"""The rows of directives.py's registry for what ngate does not do: directives accepted without
effect (class 2: silent where only performance differs, warned where a careful user would notice)
and directives refused with `[emerg] ... is not supported by ngate` (class 3), among them every
directive of the upstream modules ngate has no content handler for (uwsgi, scgi, grpc,
memcached). The classes are described in directives.py's docstring; a directive implemented
later moves its row from here to directives.py (or its module's register()).
"""
from __future__ import annotations


def register() -> None:
    """Add the class 2 and 3 rows, after every implemented row (a refused module's directive
    that is implemented, such as an ssl_* one, keeps its row)."""
    from ngate.config.directives import (EVENTS, HS, HSL, HSLI, HTTP, LIF, LOC, MAIN, NO_EFFECT,
                                         REGISTRY, SIF, SRV, directive, noop, refuse, warned)
    from ngate.config.slots import bufs, flag, msec, number, scalar, size

    # ============================================================= class 2: no effect, silent
    # Performance and resource tuning only: what a client may access and what it receives are
    # the same with any value. (The value is still checked as nginx checks it.)
    for name in ("worker_cpu_affinity", "worker_priority", "env", "pcre_jit", "lock_file",
                 "working_directory", "worker_rlimit_core", "thread_pool", "debug_points"):
        noop(name, {MAIN}, (1, None))
    noop("timer_resolution", {MAIN}, 1, msec)
    noop("multi_accept", {EVENTS}, 1, flag)
    noop("accept_mutex", {EVENTS}, 1, flag)
    noop("accept_mutex_delay", {EVENTS}, 1, msec)
    noop("use", {EVENTS}, 1)
    noop("worker_aio_requests", {EVENTS}, 1, number)
    noop("debug_connection", {EVENTS}, 1)
    # core
    for name in ("sendfile", "tcp_nopush", "tcp_nodelay", "aio_write", "reset_timedout_connection",
                 "open_file_cache_events"):
        noop(name, HSLI if name == "sendfile" else HSL, 1, flag)
    for name in ("sendfile_max_chunk", "directio_alignment", "read_ahead", "send_lowat",
                 "postpone_output"):
        noop(name, HSL, 1, size)
    for name in ("aio", "directio"):
        noop(name, HSL, (1, 2))
    noop("output_buffers", HSL, 2, bufs)
    noop("connection_pool_size", HS, 1, size)
    noop("request_pool_size", HS, 1, size)
    for name in ("variables_hash_max_size", "variables_hash_bucket_size",
                 "server_names_hash_max_size", "server_names_hash_bucket_size",
                 "map_hash_max_size", "map_hash_bucket_size"):
        noop(name, {HTTP}, 1, size)
    for name in ("types_hash_max_size", "types_hash_bucket_size",
                 "proxy_headers_hash_max_size", "proxy_headers_hash_bucket_size"):
        noop(name, HSL, 1, size)
    noop("open_log_file_cache", HSL, (1, 4))
    noop("uninitialized_variable_warn", {HTTP, SRV, SIF, LOC, LIF}, 1, flag)
    # proxy and fastcgi: buffering, temp files and sockets (ngate streams responses)
    for mod in ("proxy", "fastcgi"):
        for name in ("busy_buffers_size", "max_temp_file_size", "temp_file_write_size",
                     "send_lowat"):
            noop(f"{mod}_{name}", HSL, 1, size)
        noop(f"{mod}_buffers", HSL, 2, bufs)
        noop(f"{mod}_temp_path", HSL, (1, 4))
        noop(f"{mod}_socket_keepalive", HSL, 1, flag)
        noop(f"{mod}_store_access", HSL, (1, 3))
    directive("proxy_buffering", HSL, 1, scalar("proxy.buffering", flag), support=NO_EFFECT)
    directive("fastcgi_buffering", HSL, 1, scalar("fastcgi.buffering", flag),
              support=NO_EFFECT)
    # the harness of nginx's test suite writes these into every config; a temp dir alone does
    # nothing (uwsgi_pass and scgi_pass are refused)
    noop("uwsgi_temp_path", HSL, (1, 4))
    noop("scgi_temp_path", HSL, (1, 4))
    # gzip's undocumented tuning (gzip itself is implemented: filters/config.py), HTTP/2 tuning
    # (HTTP/2 itself warns)
    noop("gzip_no_buffer", HSL, 1, flag)
    for name in ("gzip_window", "gzip_hash", "postpone_gzipping"):
        noop(name, HSL, (1, None))
    for name in ("http2_recv_buffer_size", "http2_pool_size", "http2_max_concurrent_pushes",
                 "http2_max_requests", "http2_streams_index_size"):
        noop(name, HSL, 1)

    # ============================================================= class 2: no effect, warned
    # Visible to a careful user but harmless: the same content, only not compressed, cached,
    # stapled, multiplexed ...; nginx's default value stays quiet.
    warned("load_module", {MAIN}, 1)
    warned("ssl_engine", {MAIN}, 1)
    warned("http2_push", HSL, 1, default=("off",))
    warned("http2_push_preload", HSL, 1, flag, default=("off",))
    warned("proxy_ignore_client_abort", HSL, 1, flag, default=("off",))
    warned("fastcgi_ignore_client_abort", HSL, 1, flag, default=("off",))

    # ============================================================= class 3: refused
    # One row per directive; `default=` is nginx's default value, accepted because ngate does
    # just that. Being implemented by other branches (they move their rows to class 1):
    # core and proxy/fastcgi directives that change what a client may access or receive
    refuse("post_action", HSL, 1)
    refuse("proxy_store", HSL, 1, default=("off",))
    refuse("fastcgi_store", HSL, 1, default=("off",))
    refuse("autoindex_exact_size", HSL, 1, default=("on",))
    refuse("autoindex_localtime", HSL, 1, default=("off",))
    # modules ngate does not have, whose absence would change responses or access
    for name in ("create_full_put_path", "min_delete_depth", "dav_access"):
        refuse(name)
    refuse("dav_methods", HSL, (1, None), default=("off",))
    for mod, names in OTHER_UPSTREAM_MODULES.items():
        for name in names.split():
            if f"{mod}_{name}" not in REGISTRY:
                refuse(f"{mod}_{name}")


# the content handlers ngate does not have: every directive of their modules (nginx 1.22)
OTHER_UPSTREAM_MODULES = {
    "uwsgi": """pass modifier1 modifier2 store store_access buffering request_buffering
        ignore_client_abort bind socket_keepalive connect_timeout send_timeout buffer_size
        pass_request_headers pass_request_body intercept_errors read_timeout buffers
        busy_buffers_size force_ranges limit_rate cache cache_key cache_path cache_bypass
        no_cache cache_valid cache_min_uses cache_max_range_offset cache_use_stale cache_methods
        cache_lock cache_lock_timeout cache_lock_age cache_revalidate cache_background_update
        max_temp_file_size temp_file_write_size next_upstream next_upstream_tries
        next_upstream_timeout param string pass_header hide_header ignore_headers
        ssl_session_reuse ssl_protocols ssl_ciphers ssl_name ssl_server_name ssl_verify
        ssl_verify_depth ssl_trusted_certificate ssl_crl ssl_certificate ssl_certificate_key
        ssl_password_file ssl_conf_command""",
    "scgi": """pass store store_access buffering request_buffering ignore_client_abort bind
        socket_keepalive connect_timeout send_timeout buffer_size pass_request_headers
        pass_request_body intercept_errors read_timeout buffers busy_buffers_size force_ranges
        limit_rate cache cache_key cache_path cache_bypass no_cache cache_valid cache_min_uses
        cache_max_range_offset cache_use_stale cache_methods cache_lock cache_lock_timeout
        cache_lock_age cache_revalidate cache_background_update max_temp_file_size
        temp_file_write_size next_upstream next_upstream_tries next_upstream_timeout param
        pass_header hide_header ignore_headers""",
    "grpc": """pass bind socket_keepalive connect_timeout send_timeout intercept_errors
        buffer_size read_timeout next_upstream next_upstream_tries next_upstream_timeout
        set_header pass_header hide_header ignore_headers ssl_session_reuse ssl_protocols
        ssl_ciphers ssl_name ssl_server_name ssl_verify ssl_verify_depth
        ssl_trusted_certificate ssl_crl ssl_certificate ssl_certificate_key ssl_password_file
        ssl_conf_command""",
    "memcached": """pass bind socket_keepalive connect_timeout send_timeout buffer_size
        read_timeout next_upstream next_upstream_tries next_upstream_timeout gzip_flag""",
}
