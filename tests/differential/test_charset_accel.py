"""X-Accel-Charset on cached responses, nginx against ngate: the upstream's header names the
charset to send (nginx's override_charset) whatever the location's `charset` says; the source is
the response's own charset (else source_charset, else announce only), recoded through a
charset_map, with ranges of the recoded entry (range_charset.t); an unknown name is an [error]
and changes nothing; proxy_ignore_headers X-Accel-Charset switches it off."""
import pytest

from tests.harness.backend import Reply
from tests.harness.client import build_request, exchange
from tests.harness.differential import Differential
from tests.harness.paths import readable_tmpdir

CONF = """
http {
    charset_map B A { 58 59; }
    include /etc/nginx/koi-utf;
    proxy_cache_path {prefix}/cache keys_zone=acc:1m use_temp_path=off;
    server {
        listen 127.0.0.1:{port};
        location / {
            proxy_pass http://127.0.0.1:{backend_port}/;
            proxy_cache acc;
            proxy_cache_valid 200 1m;
        }
        location /ignored/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_cache acc;
            proxy_cache_valid 200 1m;
            proxy_ignore_headers X-Accel-Charset;
        }
        location /src/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_cache acc;
            proxy_cache_valid 200 1m;
            source_charset B;
        }
    }
}
"""

BODY = b"".join(b"X%03dXXXXXX" % i for i in range(100))
KOI = "\u043f\u0440\u0438\u0432\u0435\u0442 X".encode("utf-8") * 50


def _reply(ctype: bytes, accel: bytes, body: bytes = BODY) -> Reply:
    return Reply(headers=[(b"Content-Type", ctype), (b"X-Accel-Charset", accel)], body=body)


ROUTES = {
    "/own": _reply(b"text/html; charset=B", b"A"),
    "/same": _reply(b"text/html; charset=A", b"a"),
    "/bare": _reply(b"text/html", b"A"),
    "/unknown": _reply(b"text/html; charset=B", b"nonesuch"),
    "/nomap": _reply(b"text/html; charset=koi8-r", b"A"),
    "/utf": _reply(b"text/plain; charset=utf-8", b"koi8-r", KOI),
}
ROUTES["/ignored/own"] = ROUTES["/own"]     # own upstream URIs: nginx keys its cache by them
ROUTES["/src/bare"] = ROUTES["/bare"]


@pytest.fixture(scope="module")
def diff():
    with readable_tmpdir("ngate-accel-charset-") as base:
        d = Differential(CONF, base).start()
        try:
            for path, reply in ROUTES.items():
                d.backend.route(path, reply)
            yield d
        finally:
            d.stop()


def _twice(target: str, extra):
    """A MISS, then the same request again: served from the entry."""
    def script(port):
        first = exchange(port, build_request("GET", target, headers=[(b"Connection", b"close")]))
        raw = build_request("GET", target, headers=extra + [(b"Connection", b"close")])
        return first + exchange(port, raw)
    return script


@pytest.mark.parametrize("extra", [[], [(b"Range", b"bytes=0-9")],
                                   [(b"Range", b"bytes=0-9,10-19")]], ids=["whole", "one", "two"])
@pytest.mark.parametrize("target", ["/own", "/same", "/bare", "/unknown", "/nomap", "/utf",
                                    "/ignored/own", "/src/bare"])
def test_accel_charset_from_cache(diff, target, extra):
    out = diff.check(_twice(target, extra))
    hit = out.result[1]
    if target == "/own":
        assert b"text/html; charset=A" in hit.body + (hit.header("content-type") or b"")
        assert b"Y000YYYYYY" in hit.body and b"X000" not in hit.body
