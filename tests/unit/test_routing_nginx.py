"""Cross-check of URI normalisation, location matching and server selection against nginx.

One Debian nginx runs: the location set of test_routing_locations (each location answers
"<name>|$1|$2|$3"); `return 200 $uri` with merge_slashes on and off; the server_name set of
test_routing_servers on one port (each server answers its name). Fails (does not skip) under
CI=true when nginx is missing.
"""
from __future__ import annotations

import pytest

from ngate.routing.locations import find_location, needs_slash_redirect, slash_redirect_target
from ngate.routing.uri import normalize_uri, split_request_uri
from tests.harness.client import build_request, exchange
from tests.harness.processes import ProxyProcess, free_port, fresh_prefix, require_kind
from ngate.routing.servers import normalize_host
from tests.unit.test_routing_locations import L, NAMES, SERVER
from tests.unit.test_routing_servers import BY_ID, SELECTOR, WRITTEN

URIS = [
    "/", "/index.html", "/wss", "/wssfoo", "/ws", "/WSS", "/xphp", "/a.php", "/a.PHP",
    "/static/a.php", "/static/a.css", "/docs/x", "/docs/a.pdf", "/docs/a.php", "/docs/api/x",
    "/docs/api/x.pdf", "/docs/api/x.php", "/IMG.jpg", "/a.PNG", "/user/42/profile",
    "/user/42/profile/x", "/user/x/profile", "/exact", "/exact/", "/exactly", "/app", "/app/x",
    "/only", "/only/", "/only/x", "/plain", "/fallback", "/g/abc", "/g/abc.txt", "/g/abc/12",
    "/docs/../static/x.css", "/%64ocs/a.pdf", "/a//b.php?x=1",
]

RAW_PATHS = [
    "/a/b", "/a/../b", "/a/%2e%2e/b", "/%2e%2e/", "/a%2fb", "/a%2F..%2Fb", "/a%25b",
    "/a%252e%252e", "/a%zz", "/a%0", "/a%", "/a%00", "/a/.%2e/x", "/a//./b/", "/a/b/..",
    "/a/b/.", "/a/./../b", "//a//b//", "/a/...", "/a/..b/", "/.a/./", "/%41%42", "/caf%C3%A9",
    "/a%3F", "/a%23b", "/a/..%2f..%2fetc", "/a//..", "/./", "/..", "/a/b/../../..",
    "/a/b/%2E./c", "/%2e", "/a%2", "/a#frag", "/a/..#x", "/a?x/../..", "//..",
]


HOSTS = [
    b"www.example.com", b"WWW.Example.COM.:8080", b"example.org", b"a.example.com",
    b"a.b.example.com", b"example.com", b"x.api.example.com", b"api.example.com",
    b"example.net", b"a.example.net", b"www.example.org", b"www.example.co.uk", b"www.example",
    b"bob.users.test", b"other.test", b"default.test", b"unknown.invalid", b"[::1]:80",
    b"a..b", b"a/b", b":80", b"x.com:8..0",
]


def _block(name: str, loc, names: dict) -> str:
    head = f"location {loc.modifier} {loc.pattern}" if loc.modifier not in ("", "@") \
        else f"location {loc.pattern}"
    inner = "".join(_block(names[id(n)], n, names) for n in loc.locations)
    proxy = "proxy_pass http://127.0.0.1:9; " if loc.conf.proxy.pass_ else ""
    return f'{head} {{ {proxy}return 200 "{name}|$1|$2|$3"; {inner}}}\n'


def _config() -> str:
    locations = "".join(_block(name, l, NAMES) for name, l in L.items())
    return (
        "http {\n"
        "  server { listen 127.0.0.1:{port};\n" + locations + "  }\n"
        '  server { listen 127.0.0.1:{port2}; location / { return 200 "$uri"; } }\n'
        '  server { listen 127.0.0.1:{port3}; merge_slashes off;'
        ' location / { return 200 "$uri"; } }\n'
        + "".join(_server_block(name, w) for name, w in WRITTEN.items()) +
        "}\n")


def _server_block(name: str, written: tuple) -> str:
    default = " default_server" if name == "default" else ""
    return (f"  server {{ listen 127.0.0.1:{{port4}}{default}; server_name {' '.join(written)};"
            f' location / {{ return 200 "{name}"; }} }}\n')


@pytest.fixture(scope="module")
def nginx(tmp_path_factory):
    require_kind("nginx")
    prefix = fresh_prefix(tmp_path_factory.mktemp("routing"), "nginx")
    proc = ProxyProcess("nginx", _config(), prefix,
                        port2=free_port(), port3=free_port(), port4=free_port())
    with proc:
        yield proc


def _get(port: int, target: str, host: bytes = b"h.test"):
    return exchange(port, build_request("GET", target, host=host))[0]


@pytest.mark.parametrize("target", URIS)
def test_location_matches_nginx(nginx, target):
    resp = _get(nginx.port, target)
    path, args = split_request_uri(target)
    uri = normalize_uri(path)
    found, caps = find_location(SERVER, uri)
    if needs_slash_redirect(found, uri):
        assert resp.status == 301
        assert resp.header("location").endswith(slash_redirect_target(found, args).encode())
        return
    caps = list(caps[1:4]) + [""] * (3 - len(caps[1:4]))
    assert resp.status == 200, resp.body
    assert resp.body.decode() == "|".join([NAMES[id(found)], *caps])


@pytest.mark.parametrize("merge", [True, False])
@pytest.mark.parametrize("target", RAW_PATHS)
def test_normalize_uri_matches_nginx(nginx, target, merge):
    resp = _get(nginx.params["port2" if merge else "port3"], target)
    try:
        uri = normalize_uri(split_request_uri(target)[0], merge_slashes=merge)
    except ValueError:
        assert resp.status == 400
        return
    assert resp.status == 200
    assert resp.body == uri.encode("latin-1")


@pytest.mark.parametrize("host", HOSTS)
def test_server_selection_matches_nginx(nginx, host):
    resp = _get(nginx.params["port4"], "/", host=host)
    name = normalize_host(host)
    if name is None:
        assert resp.status == 400
        return
    assert resp.status == 200
    assert resp.body.decode() == BY_ID[id(SELECTOR.select(name))]
