"""HTTP/2 pieces without sockets: the HTTP/1.1 head -> HEADERS translation, the config of
`http2`/`listen ... http2`/`http2_*`, and the registry classes that make -V list the module."""
from __future__ import annotations

import pytest

from ngate.config import directives
from ngate.http2.head import h1_to_h2
from tests.unit._config_helpers import load_http as load


def test_head_translation_drops_hop_by_hop_headers():
    status, headers, chunked = h1_to_h2(
        b"HTTP/1.1 404 Not Found\r\nServer: ngate\r\nConnection: keep-alive\r\n"
        b"Keep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nSet-Cookie: a\r\n"
        b"Set-Cookie: b")
    assert status == 404 and chunked
    assert headers == [(b":status", b"404"), (b"server", b"ngate"), (b"x-a", b"1"),
                       (b"set-cookie", b"a"), (b"set-cookie", b"b")]


def test_http2_directives_are_implemented():
    for name in ("http2", "http2_max_concurrent_streams", "http2_max_field_size",
                 "http2_max_header_size", "http2_idle_timeout", "http2_recv_timeout",
                 "http2_chunk_size", "http2_body_preread_size"):
        assert directives.REGISTRY[name][0].support == directives.IMPLEMENTED, name


def test_server_settings(tmp_path):
    cfg = load(tmp_path, "server { listen 8080 http2; http2_max_concurrent_streams 4;"
                         " http2_max_field_size 1k; http2_idle_timeout 5s; }"
                         " server { listen 8081; http2 on; }")
    a, b = cfg.servers
    assert a.listens[0].http2 and not a.http2
    assert (a.http2_max_concurrent_streams, a.http2_max_field_size, a.http2_idle_timeout) == \
        (4, 1024, 5.0)
    assert b.http2 and (b.http2_max_header_size, b.http2_body_preread_size) == (16384, 65536)


@pytest.mark.parametrize("body, message", [
    ("server { http2 maybe; }", 'it must be "on" or "off"'),
    ("server { http2_max_concurrent_streams x; }", "invalid number"),
    ("location / { http2 on; }", '"http2" directive is not allowed here'),
])
def test_bad_values(tmp_path, body, message):
    from ngate.errors import ConfigError
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, f"server {{ {body} }}" if body.startswith("location") else body)
