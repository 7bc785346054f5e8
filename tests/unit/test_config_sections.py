"""LocConf's sections (config/sections.py): every directive fills exactly one section, owned by
one module, or only fields of the HTTP core; LocConf's flat part holds only the core's fields."""
from __future__ import annotations

import dataclasses
import importlib

import pytest

from ngate.config import compile as compile_mod
from ngate.config import directives, sections
from ngate.config.model import LocConf, Main, Server, Upstream
from tests.unit._config_helpers import load_http

SERVER_FIELDS = frozenset(f.name for f in dataclasses.fields(Server))
MAIN_FIELDS = frozenset(f.name for f in dataclasses.fields(Main))
UPSTREAM_FIELDS = frozenset(f.name for f in dataclasses.fields(Upstream)) | {"zone"}
BLOCK_CONTEXTS = {directives.MAIN, directives.EVENTS, directives.UPS}
# the server's TLS (config/tls.py server_tls): a Server field, built from these keys
SERVER_INPUTS = ("ssl_",)

# ngx_http_core_module's directives (nginx 1.22 src/http/ngx_http_core_module.c) that LocConf
# keeps flat, and what the core derives from them or chose at compile time
CORE_DIRECTIVES = frozenset({
    "error_page", "client_max_body_size", "client_body_timeout", "client_body_buffer_size",
    "client_body_temp_path", "client_body_in_file_only", "client_body_in_single_buffer",
    "send_timeout", "keepalive_timeout", "keepalive_requests", "limit_rate", "limit_rate_after",
    "keepalive_time", "keepalive_disable", "lingering_close", "lingering_time",
    "lingering_timeout", "default_type", "types", "server_tokens", "absolute_redirect",
    "port_in_redirect", "server_name_in_redirect", "root", "alias", "error_log",
    "log_not_found", "log_subrequest", "resolver", "resolver_timeout", "internal",
    "limit_except", "try_files", "etag", "if_modified_since", "disable_symlinks", "max_ranges",
    "chunked_transfer_encoding", "recursive_error_pages", "msie_padding", "msie_refresh",
    "subrequest_output_buffer_size"})
CORE_DERIVED = frozenset({
    "alias_len", "keepalive_line",                 # from alias, keepalive_timeout's 2nd argument
    "stub_status", "metrics", "empty_gif", "no_upstream",  # the content handler (clcf->handler)
    "content", "access_steps", "precontent_steps", "upstream_plan", "uncached_plan",
    "plain_head", "mime", "ka_full",               # http/modules.py bind; http/respond.py
    # ngx_http_v2_module's chunk size, read together with the Server's (http2/output.py)
    "http2_chunk_size"})


def owner(key: str) -> str:
    """The section a Level key fills: a section name, "core", "server", "main" or "upstream"."""
    name, dot, field = key.partition(".")
    if dot:
        section = sections.SECTIONS[name]
        assert section.cls is not None, key
        assert field in {f.name for f in dataclasses.fields(section.cls)}, key
        return name
    if key in compile_mod.LOC_FIELDS:
        return "core"
    inputs = [(len(prefix), s.name) for s in sections.SECTIONS.values() for prefix in s.inputs
              if key.startswith(prefix)]
    if inputs:
        return max(inputs)[1]                     # the longest prefix: gzip_static, not gzip
    if key in SERVER_FIELDS or key.startswith(SERVER_INPUTS):
        return "server"
    if key in MAIN_FIELDS or key == "user_ignored":
        return "main"
    raise AssertionError(f"Level key {key!r} belongs to no section")


def test_directives_with_declared_keys_fill_one_section():
    checked = 0
    for name, rows in directives.REGISTRY.items():
        for row in rows:
            keys = getattr(row.handler, "fills", None)
            if row.support != directives.IMPLEMENTED or keys is None:
                continue
            if row.contexts <= BLOCK_CONTEXTS:
                assert all(k in MAIN_FIELDS | UPSTREAM_FIELDS for k in keys), (name, keys)
                continue
            owners = {owner(k) for k in keys}
            assert len(owners) == 1, (name, owners)
            checked += 1
    assert checked > 100


# the directives whose handlers write Level keys themselves (no `fills`), in one config
CUSTOM = """
    log_format f '$uri';
    limit_req_zone $binary_remote_addr zone=r:1m rate=1r/s;
    limit_conn_zone $binary_remote_addr zone=c:1m;
    proxy_cache_path cache keys_zone=z:1m; fastcgi_cache_path fcache keys_zone=fz:1m;
    server {
        listen 8080;
        add_header X 1; add_trailer T 1; access_log logs/a.log f; error_page 404 /404.html;
        charset_types text/x; keepalive_timeout 10 5; valid_referers none server_names;
        cors https://a.test;
        location /p {
            proxy_pass http://127.0.0.1:9/x/; proxy_set_header A b; proxy_redirect default;
            proxy_cookie_domain a b; proxy_cookie_path /a /b; proxy_cookie_flags c secure;
            proxy_cache z; proxy_cache_key $uri; proxy_cache_valid 200 1m;
            proxy_cache_methods GET; proxy_cache_bypass $arg_x; proxy_no_cache $arg_y;
            proxy_cache_use_stale error; proxy_ssl_name a; proxy_ssl_verify off;
            root /srv; try_files $uri =404; disable_symlinks on; mirror /m;
            secure_link $arg_h,$arg_e; secure_link_md5 "$uri x";
            allow 127.0.0.1; deny all; satisfy any; auth_basic x; auth_basic_user_file pw;
            auth_request /auth; auth_request_set $v $upstream_status;
            limit_except GET { deny all; }
            sub_filter a b; sub_filter_types text/x; gzip_types text/x; gzip_proxied any;
            gzip_disable msie6; addition_types text/x; ssi_types text/x;
            userid on; userid_name u; userid_domain a.test; userid_path /; userid_expires 1d;
            userid_p3p none; userid_mark x; userid_service 1; userid_flags httponly;
        }
        location /f {
            fastcgi_pass 127.0.0.1:9000; fastcgi_param A b; fastcgi_split_path_info ^(.+)(/.*)$;
            fastcgi_cache fz; fastcgi_cache_key $uri; fastcgi_cache_valid 1m;
            fastcgi_cache_methods GET; fastcgi_cache_bypass $arg_x; fastcgi_no_cache $arg_y;
            fastcgi_cache_use_stale error; alias /srv/;
        }
        location /s { secure_link_secret s; stub_status; }
        location /e { empty_gif; error_log logs/e.log; limit_req zone=r; limit_conn c 1; }
    }
"""


def test_every_directive_fills_one_section(tmp_path, monkeypatch):
    """Handlers that write their keys themselves, recorded while a config compiles."""
    filled: dict = {}

    def walk(self, stmts, lv):
        for st in stmts:
            row = directives.check(st, lv.ctx)
            before = dict(lv.vals)
            row.handler(self, lv, st)
            if lv.ctx not in BLOCK_CONTEXTS and not row.block:
                changed = {k for k, v in lv.vals.items() if k not in before or before[k] is not v}
                filled.setdefault(st.directive, set()).update(changed)
    monkeypatch.setattr(compile_mod.Compiler, "walk", walk)
    (tmp_path / "pw").write_text("u:x\n")
    load_http(tmp_path, CUSTOM)
    custom = {name for name, rows in directives.REGISTRY.items()
              if any(r.support == directives.IMPLEMENTED and not hasattr(r.handler, "fills")
                     and not r.block and not r.contexts <= BLOCK_CONTEXTS for r in rows)}
    missing = {n for n in custom - filled.keys()
               if not n.startswith(("ssl_", "proxy_ssl_certificate", "proxy_ssl_"))}
    missing -= {"set", "return", "rewrite", "break", "listen", "server_name", "log_format",
                "proxy_cache_path", "fastcgi_cache_path", "limit_req_zone", "limit_conn_zone"}
    assert not missing, f"not in the recorded config: {sorted(missing)}"
    for name, keys in filled.items():
        owners = {owner(k) for k in keys}
        assert len(owners) <= 1, (name, owners)


def test_flat_part_is_the_core():
    flat = {f.name for f in dataclasses.fields(LocConf)} - sections.SECTIONS.keys()
    assert flat <= CORE_DIRECTIVES | CORE_DERIVED, flat - CORE_DIRECTIVES - CORE_DERIVED
    assert not {n for n in flat if n.startswith(("proxy_", "fastcgi_", "auth_", "add_"))}


@pytest.mark.parametrize("name", sorted(sections.SECTIONS))
def test_each_section_is_one_module(name):
    section = sections.SECTIONS[name]
    field = LocConf.__dataclass_fields__[name]             # a field of LocConf ...
    assert importlib.import_module(section.owner)         # ... owned by a module that exists
    if section.cls is not None:                           # ... frozen, a default instance
        assert dataclasses.is_dataclass(section.cls) and section.cls.__dataclass_params__.frozen
        assert type(field.default) is section.cls
    owners = [s.name for s in sections.SECTIONS.values()
              if s.cls is not None and s.cls is section.cls]
    assert owners in ([], [name])


def test_proxy_and_fastcgi_share_the_upstream_section():
    from ngate.config.model import FastCGIConf, ProxyConf, UpstreamSection
    common = {f.name for f in dataclasses.fields(UpstreamSection)}
    assert issubclass(ProxyConf, UpstreamSection) and issubclass(FastCGIConf, UpstreamSection)
    assert {"read_timeout", "next_upstream", "intercept_errors", "hide_header", "limit_rate",
            "bind", "buffer_size", "pass_request_body", "force_ranges", "cache"} <= common


def test_sections_merge_per_field(tmp_path):
    """Inheritance stays per field: a location setting one proxy_* keeps the others' values
    from outer levels; an array is replaced wholesale by the innermost level."""
    config = load_http(tmp_path, """proxy_read_timeout 7s; proxy_hide_header A;
        server { listen 8080; proxy_send_timeout 8s;
            location /a { proxy_connect_timeout 9s; proxy_hide_header B; }
            location /b { } }""")
    srv = config.servers[0]
    a, b = (loc.conf for loc in srv.locations)
    assert (a.proxy.read_timeout, a.proxy.send_timeout, a.proxy.connect_timeout) == (7, 8, 9)
    assert (b.proxy.read_timeout, b.proxy.send_timeout, b.proxy.connect_timeout) == (7, 8, 60)
    assert a.proxy.hide_header == {b"b"} and b.proxy.hide_header == {b"a"}
