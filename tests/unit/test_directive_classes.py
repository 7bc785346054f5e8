"""Fail closed: every registered directive is in exactly one class (config/directives.py), no
security- or content-relevant directive is a silent or warned no-op, and the class-3 and warned
class-2 messages carry file:line, at `ngate -t` as at load."""
from __future__ import annotations

import fnmatch
import os
import subprocess
import sys

import pytest

from ngate.config import directives as d
from tests.unit._config_helpers import ngate_error, write_conf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# never class 2: what they do changes who may access what, or what a client receives
NEVER_NO_EFFECT = (
    "auth_*", "satisfy", "allow", "deny", "limit_except", "internal", "limit_req*",
    "limit_conn*", "set_real_ip_from", "real_ip_*", "uwsgi_*", "scgi_*", "grpc_*", "memcached_*",
    "ssi*", "sub_filter*", "add_after_body", "add_before_body", "addition_types", "stub_status",
    "*limit_rate*", "proxy_cookie_*", "absolute_redirect", "port_in_redirect",
    "server_name_in_redirect", "max_ranges", "disable_symlinks", "proxy_store", "fastcgi_store",
    "source_charset", "override_charset", "charset_map", "proxy_bind", "fastcgi_bind",
    "*_force_ranges", "chunked_transfer_encoding", "ssl_ocsp*", "*ssl_crl", "*ssl_conf_command",
    "ssl_verify_client", "ssl_client_certificate", "secure_link*", "valid_referers", "mirror*",
    "userid*", "empty_gif", "dav_*", "geo", "split_clients", "add_header", "add_trailer",
    "return", "rewrite", "error_page", "recursive_error_pages", "post_action",
    "*_next_upstream_timeout", "fastcgi_catch_stderr", "msie_*", "autoindex*", "user",
    "subrequest_output_buffer_size",
    "*_pass", "*_intercept_errors", "*_hide_header", "*_pass_header", "gunzip",
)
# a temp directory does nothing by itself (uwsgi_pass and scgi_pass are refused); the harness of
# nginx's test suite writes these into every config
TEMP_PATHS = ("uwsgi_temp_path", "scgi_temp_path")


def rows():
    return [row for name_rows in d.REGISTRY.values() for row in name_rows]


def test_every_directive_has_one_class():
    for row in rows():
        assert row.support in d.CLASS, row
    for name, name_rows in d.REGISTRY.items():
        # a name's rows (one per context, e.g. `server`) share one class
        assert len({r.support for r in name_rows}) == 1, name


def test_security_relevant_directives_are_never_no_ops():
    for row in rows():
        if d.CLASS[row.support] != 2 or row.name in TEMP_PATHS:
            continue
        bad = [p for p in NEVER_NO_EFFECT if fnmatch.fnmatchcase(row.name, p)]
        assert not bad, f"{row.name} is class 2 but matches {bad}"


def test_the_lists_the_issue_names_are_refused_or_implemented():
    for name in ("uwsgi_pass", "scgi_pass", "proxy_store", "grpc_pass"):
        assert d.REGISTRY[name][0].support == d.REFUSED, name
    for name in ("absolute_redirect", "port_in_redirect", "server_name_in_redirect", "user",
                 "fastcgi_catch_stderr", "proxy_next_upstream_timeout", "max_ranges", "charset",
                 "source_charset", "override_charset", "charset_map",
                 "chunked_transfer_encoding", "proxy_cookie_domain", "proxy_cookie_flags",
                 "stub_status", "auth_basic", "limit_req", "set_real_ip_from", "disable_symlinks",
                 "secure_link", "empty_gif", "valid_referers", "autoindex_format", "random_index",
                 "gzip", "gzip_static", "gunzip", "sub_filter",
                 "limit_rate", "limit_rate_after", "proxy_limit_rate", "keepalive_time", "zone",
                 "proxy_ignore_headers", "fastcgi_ignore_headers", "keepalive_disable",
                 "ssi", "ssi_types", "ssi_silent_errors", "ssi_value_length", "ssi_last_modified",
                 "ssi_min_file_chunk", "add_before_body", "add_after_body", "addition_types",
                 "userid", "userid_mark", "userid_flags", "mirror", "mirror_request_body",
                 "fastcgi_cache", "fastcgi_cache_path", "fastcgi_cache_key", "fastcgi_cache_valid",
                 "fastcgi_cache_bypass", "fastcgi_no_cache", "fastcgi_cache_methods",
                 "fastcgi_cache_min_uses", "fastcgi_cache_use_stale", "fastcgi_cache_lock",
                 "fastcgi_cache_lock_timeout", "fastcgi_cache_lock_age",
                 "fastcgi_cache_revalidate", "fastcgi_cache_background_update",
                 "fastcgi_cache_max_range_offset", "add_trailer", "proxy_bind", "fastcgi_bind",
                 "msie_padding", "msie_refresh", "subrequest_output_buffer_size"):
        assert d.REGISTRY[name][0].support == d.IMPLEMENTED, name


def test_refused_directive_fails_with_file_and_line(tmp_path):
    conf = write_conf(tmp_path, "server { listen 8080;\n location / { uwsgi_pass 127.0.0.1:9; } }")
    assert ngate_error(conf, str(tmp_path)) == \
        f'"uwsgi_pass" directive is not supported by ngate in {conf}:4'


@pytest.mark.parametrize("stmt,ok", [
    ("dav_methods off;", True), ("dav_methods OFF;", True), ("dav_methods PUT;", False),
    ("proxy_store off;", True), ("proxy_store on;", False),
    ("autoindex_localtime off;", True), ("autoindex_localtime on;", False),
    ("post_action off;", False),               # a URI for nginx, not a switch
])
def test_refused_directive_accepts_nginx_default_only(tmp_path, stmt, ok):
    conf = write_conf(tmp_path, f"server {{ listen 8080; location / {{ {stmt} }} }}")
    name = stmt.split()[0]
    want = "OK" if ok else f'"{name}" directive is not supported by ngate in {conf}:3'
    assert ngate_error(conf, str(tmp_path)) == want


def test_refused_default_value_is_still_checked(tmp_path):
    conf = write_conf(tmp_path, "server { listen 8080; dav_methods off; location / { } } "
                      "dav_methods off; upstream u { server 127.0.0.1; dav_methods off; }")
    assert ngate_error(conf, str(tmp_path)) == \
        f'"dav_methods" directive is not allowed here in {conf}:3'


def test_set_limit_rate_is_accepted(tmp_path):
    conf = write_conf(tmp_path, "server { listen 8080; location / { set $limit_rate 1k; } }")
    assert ngate_error(conf, str(tmp_path)) == "OK"


def _ngate_t(tmp_path, http: str) -> subprocess.CompletedProcess:
    conf = write_conf(tmp_path, http)
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "ngate", "-t", "-p", str(tmp_path), "-c", conf],
                          capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)


def test_ngate_t_refuses(tmp_path):
    r = _ngate_t(tmp_path, "server { listen 8080;\n location / { dav_methods PUT; } }")
    conf = tmp_path / "nginx.conf"
    assert r.returncode == 1
    assert f'ngate: [emerg] "dav_methods" directive is not supported by ngate in {conf}:4' \
        in r.stderr
    assert "test failed" in r.stderr


def test_ngate_t_warns_once_per_occurrence(tmp_path):
    r = _ngate_t(tmp_path, "gzip on; gzip_types text/css; sendfile on;\n"
                 "server { listen 8080; location / { gzip off; http2_push off; }\n"
                 " location /c { http2_push /c.css; } }")
    conf = tmp_path / "nginx.conf"
    assert r.returncode == 0, r.stderr
    warns = [line for line in r.stderr.splitlines() if "[warn]" in line]
    # gzip is implemented (filters/): no warning for it
    assert warns == [f'ngate: [warn] "http2_push" has no effect in ngate in {conf}:5']
    assert "test is successful" in r.stderr


def test_readme_lists_classes_2_and_3():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    section = readme[readme.index("### Directive classes"):]
    section = section[:section.index("\n## ")] if "\n## " in section else section
    mentioned = {w.strip("`,.;:()") for w in section.split()}
    stars = [m for m in mentioned if "*" in m]
    for row in rows():
        if row.support == d.IMPLEMENTED:
            continue
        assert row.name in mentioned or any(fnmatch.fnmatchcase(row.name, s) for s in stars), \
            f"README does not list {row.name} ({row.support})"


def test_user_without_root_is_ignored_with_nginx_warning(tmp_path, monkeypatch, capfd):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    conf = write_conf(tmp_path, "", main="user www-data;\nevents {}\n")
    from ngate.config.loader import load_config
    main = load_config(conf, str(tmp_path)).main
    assert (main.user, main.uid) == (None, None)
    assert ('ngate: [warn] the "user" directive makes sense only if the master process runs with '
            f'super-user privileges, ignored in {conf}:1') in capfd.readouterr().err


def test_partly_supported_directives_warn(tmp_path):
    r = _ngate_t(tmp_path, "server { listen 8080; error_log logs/s.log;\n"
                 " access_log logs/a.log combined gzip; listen 8081 http2; }")
    conf = tmp_path / "nginx.conf"
    assert r.returncode == 0, r.stderr
    assert [line for line in r.stderr.splitlines() if "[warn]" in line] == [
        f'ngate: [warn] "gzip" parameter of "access_log" has no effect in ngate in {conf}:4']
