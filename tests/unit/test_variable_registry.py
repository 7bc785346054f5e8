"""The variables registry: every module's table assembled from one list (ngate/http/modules.py),
nothing registered by being imported (issue 13)."""
import types

import pytest

from ngate.errors import ConfigError
from ngate.http import modules
from ngate.routing.variables import Registry, compile_template, lookup, registry

# every variable ngate knew before the split into modules' tables (nginx's names)
KNOWN = frozenset({
    "args", "binary_remote_addr", "body_bytes_sent", "bytes_sent", "connection",
    "connection_requests", "connection_time", "connections_active", "connections_reading",
    "connections_waiting", "connections_writing", "content_length", "content_type", "date_gmt",
    "date_local", "document_root", "document_uri", "fastcgi_path_info", "fastcgi_script_name",
    "gzip_ratio", "host", "hostname", "http2", "http_referer", "http_user_agent", "https",
    "invalid_referer", "is_args", "limit_conn_status", "limit_rate", "limit_req_status", "msec",
    "nginx_version", "pid", "pipe", "proxy_add_x_forwarded_for", "proxy_host", "proxy_port",
    "proxy_protocol_addr", "proxy_protocol_port", "proxy_protocol_server_addr",
    "proxy_protocol_server_port", "query_string", "realip_remote_addr", "realip_remote_port",
    "realpath_root", "remote_addr", "remote_port", "remote_user", "request", "request_body",
    "request_body_file", "request_filename", "request_id", "request_length", "request_method",
    "request_time", "request_uri", "scheme", "secure_link", "secure_link_expires", "server_addr",
    "server_name", "server_port", "server_protocol", "ssl_alpn_protocol", "ssl_cipher",
    "ssl_ciphers", "ssl_client_cert", "ssl_client_escaped_cert", "ssl_client_fingerprint",
    "ssl_client_i_dn", "ssl_client_i_dn_legacy", "ssl_client_raw_cert", "ssl_client_s_dn",
    "ssl_client_s_dn_legacy", "ssl_client_serial", "ssl_client_v_end", "ssl_client_v_remain",
    "ssl_client_v_start", "ssl_client_verify", "ssl_curve", "ssl_curves", "ssl_early_data",
    "ssl_protocol", "ssl_server_name", "ssl_session_id", "ssl_session_reused", "status",
    "time_iso8601", "time_local", "uid_got", "uid_reset", "uid_set", "upstream_addr",
    "upstream_bytes_received", "upstream_bytes_sent", "upstream_cache_etag",
    "upstream_cache_last_modified", "upstream_cache_status", "upstream_connect_time",
    "upstream_header_time", "upstream_response_length", "upstream_response_time",
    "upstream_status", "uri",
})
PREFIXES = ("http_", "arg_", "cookie_", "sent_http_", "sent_trailer_", "upstream_http_",
            "upstream_cookie_")


def test_every_variable_is_still_registered():
    assert KNOWN - set(registry().names) == set()
    assert set(PREFIXES) <= set(registry().prefixes)


def test_each_name_belongs_to_one_module_of_the_list():
    owners = {}
    for module in modules.VARIABLE_MODULES:
        for name in getattr(module, "VARIABLES", {}):
            owners.setdefault(name, []).append(module.__name__)
    assert {n: o for n, o in owners.items() if len(o) > 1} == {}
    assert set(owners) == set(registry().names)


def test_a_name_defined_twice_is_refused():
    a = types.SimpleNamespace(__name__="a", VARIABLES={"x": str})
    b = types.SimpleNamespace(__name__="b", VARIABLES={"x": repr})
    with pytest.raises(ValueError, match="'x' of b is already defined"):
        Registry([a, b])


def test_a_registry_of_a_few_modules_knows_only_theirs():
    a = types.SimpleNamespace(__name__="a", VARIABLES={"x": lambda ctx: "X"},
                              PREFIXES={"p_": lambda s: lambda ctx: s.upper()})
    reg = Registry([a])
    assert "x" in reg and "uri" not in reg
    assert reg.prefixed("p_abc")(None) == "ABC"
    assert reg.known("p_abc") and not reg.known("p_") and not reg.known("q_abc")


def test_templates_bind_the_modules_getters():
    from ngate.http import variables as core
    from ngate.upstream import variables as upstream
    assert compile_template("$uri").parts == (core.VARIABLES["uri"],)
    assert lookup("upstream_addr") is upstream.VARIABLES["upstream_addr"]


def test_unknown_variable_error_is_unchanged():
    with pytest.raises(ConfigError, match='unknown "nosuch" variable'):
        compile_template("a $nosuch b")
