"""client_body_temp_path, client_body_in_file_only, client_body_in_single_buffer, keepalive_time,
keepalive_disable and keepalive_timeout's header: the values compiled, and `nginx -t`'s errors."""
from __future__ import annotations

import pytest

from tests.unit._config_helpers import load_http, nginx_error, ngate_error, write_conf


def test_values_compile(tmp_path):
    cfg = load_http(tmp_path, """
        client_body_temp_path spool 1 2;
        keepalive_timeout 30 9;
        server { listen 127.0.0.1:8080;
            location /a { client_body_in_file_only clean; client_body_in_single_buffer on;
                          keepalive_time 1s; keepalive_disable msie6 safari; }
            location /b { keepalive_disable none; }
        }""")
    a, b = (loc.conf for loc in cfg.servers[0].locations)
    assert a.client_body_temp_path == (str(tmp_path / "spool"), (1, 2))
    assert a.client_body_in_file_only == "clean" and a.client_body_in_single_buffer
    assert a.keepalive_time == 1.0 and a.keepalive_disable == {"msie6", "safari"}
    assert a.keepalive_line == b"Connection: keep-alive\r\nKeep-Alive: timeout=9\r\n"
    assert b.keepalive_disable == frozenset() and b.client_body_in_file_only == "off"
    # the master creates every temp path, the default one too (nginx's ngx_create_paths)
    assert set(cfg.temp_paths) == {(str(tmp_path / "spool"), (1, 2)),
                                   (str(tmp_path / "client_body_temp"), ())}


@pytest.mark.parametrize("line", [
    "client_body_in_file_only maybe;",
    "client_body_temp_path x 0;",
    "client_body_temp_path x 3 4 4;",
    "keepalive_disable foo;",
    "keepalive_timeout 10 x;",
])
def test_errors_are_nginx_s(tmp_path, line):
    conf = write_conf(tmp_path, line)
    assert ngate_error(conf, str(tmp_path)) == nginx_error(conf, str(tmp_path))
