"""What the client receives from a proxied backend: hidden headers, framing conversions, HEAD,
request bodies, Expect, keep-alive and pipelining, proxy_redirect, add_header, upstream keepalive."""
import pytest

from tests.harness.backend import Reply
from tests.harness.client import Connection, build_request, exchange

CONF = """
http {
    upstream pool {
        server 127.0.0.1:{backend_port};
        keepalive 4;
    }
    add_header X-Http-Level http;
    server {
        listen 127.0.0.1:{port};
        server_name example.test;

        location / {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_http_version 1.1;
        }
        location /v10/ {
            proxy_pass http://127.0.0.1:{backend_port};
        }
        location /inherit-add/ {
            proxy_pass http://127.0.0.1:{backend_port};
        }
        location /add/ {
            proxy_pass http://127.0.0.1:{backend_port};
            add_header X-Added yes;
            add_header X-Always yes always;
        }
        location /redir/ {
            proxy_pass http://127.0.0.1:{backend_port}/app/;
        }
        location /ws/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "Upgrade";
        }
        location /cookie/ {
            proxy_pass http://127.0.0.1:{backend_port}/cookies;
            proxy_cookie_domain backend.local .$host;
            proxy_cookie_domain ~^(\\w+)\\.internal$ $1.example.test;
            proxy_cookie_path /app/ /;
            proxy_cookie_path ~*^/ADMIN(.*)$ /a$1;
        }
        location /cookie/flags/ {
            proxy_pass http://127.0.0.1:{backend_port}/cookies;
            proxy_cookie_flags a nosecure samesite=lax;
            proxy_cookie_flags ~^[bc]$ secure httponly nosamesite;
            proxy_cookie_flags d bogus;
        }
        location /cookie/off/ {
            proxy_pass http://127.0.0.1:{backend_port}/cookies;
            proxy_cookie_path off;
        }
        location /nochunk/ {
            proxy_pass http://127.0.0.1:{backend_port}/;
            chunked_transfer_encoding off;
        }
        location /ka/ {
            proxy_pass http://pool;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location = /ep/missing { error_page 404 /ka/ep-target; return 404; }
    }
}
"""


@pytest.fixture(scope="module")
def diff(differential):
    d = differential(CONF)
    b = d.backend
    b.route("/hidden", Reply(headers=[
        (b"Server", b"backend/1.0"), (b"Date", b"Mon, 01 Jan 2001 00:00:00 GMT"),
        (b"X-Pad", b"avoid browser bug"), (b"X-Accel-Buffering", b"no"),
        (b"X-Accel-Expires", b"10"), (b"X-Accel-Limit-Rate", b"100000"), (b"X-Accel-Other", b"kept"),
        (b"Content-Type", b"text/html"), (b"Set-Cookie", b"a=1"), (b"Set-Cookie", b"b=2"),
        (b"X-Multi", b"1"), (b"x-lower-case", b"v"), (b"Connection", b"keep-alive"),
        (b"Keep-Alive", b"timeout=5")], body=b"hidden"))
    b.route("/chunked", Reply(chunks=[b"hello ", b"chunked ", b"world"]))
    b.route("/cookies", Reply(headers=[
        (b"Set-Cookie", b"a=1; Domain=.Backend.Local; Path=/app/x; HttpOnly"),
        (b"Set-Cookie", b"b=2;domain=api.internal;  path = /admin/y ;secure"),
        (b"Set-Cookie", b"c=3; path=/other; domain=other.test"),
        (b"Set-Cookie", b"flag; path=/app/"), (b"Set-Cookie", b"d=4; path=/app/;"),
        (b"Set-Cookie", b"A=5; Secure; samesite=strict"), (b"Set-Cookie", b"C=6; SameSite=None"),
        (b"Content-Type", b"text/plain")]))
    b.route("/v10/chunked", Reply(chunks=[b"hello ", b"world"]))
    b.route("/close", Reply(action="close_after", body=b"close-delimited body"))
    b.route("/v10/close", Reply(action="close_after", body=b"close-delimited body"))
    b.route("/no-content", Reply(status=204, headers=[], body=b""))
    b.route("/not-modified", Reply(status=304, headers=[(b"ETag", b'"x"')], body=b""))
    b.route("/add/ok", Reply(body=b"fine"))
    b.route("/add/missing", Reply(status=404, body=b"nope"))
    b.route("/add/moved", Reply(status=301, headers=[(b"Location", b"/elsewhere")], body=b""))
    b.route("/inherit-add/x", Reply(body=b"x"))
    for target in ("/app/r1", "/app/r2", "/app/r3", "/app/r4"):
        b.route(target, Reply(status=302, body=b"", headers=[(b"Location", {
            "/app/r1": f"http://127.0.0.1:{b.port}/app/next".encode(),
            "/app/r2": b"http://127.0.0.1:1/app/other-host",
            "/app/r3": b"/app/relative",
            "/app/r4": f"http://127.0.0.1:{b.port}/outside".encode()}[target])]))
    b.route("/ws/echo", Reply(status=101, body=b"", headers=[
        (b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"), (b"Sec-WebSocket-Accept", b"x")]))
    b.route("/app/refresh", Reply(headers=[(b"Refresh", f"5; url=http://127.0.0.1:{b.port}/app/z".encode())]))
    return d


def test_hidden_and_passed_response_headers(diff):
    out = diff.check_request("GET", "/hidden")
    resp = out.response
    assert resp.header("x-pad") is None and resp.header("x-accel-buffering") is None
    assert resp.header("x-accel-other") == b"kept"
    assert resp.header_all("set-cookie") == [b"a=1", b"b=2"]
    assert resp.header("server") != b"backend/1.0"


def test_chunked_response_stays_chunked_for_http11_client(diff):
    resp = diff.check_request("GET", "/chunked").response
    assert resp.framing == "chunked" and resp.body == b"hello chunked world"


def test_chunked_response_is_close_delimited_for_http10_client(diff):
    resp = diff.check_request("GET", "/chunked", version="HTTP/1.0").response
    assert resp.framing == "close" and resp.body == b"hello chunked world"


@pytest.mark.parametrize("target", ["/cookie/", "/cookie/off/", "/cookie/flags/"])
def test_proxy_cookie_domain_and_path(diff, target):
    resp = diff.check_request("GET", target).response
    cookies = [v for k, v in resp.headers if k.lower() == b"set-cookie"]
    assert (b"a=1; Domain=.example.test; Path=/x; HttpOnly" in cookies) == (target == "/cookie/")


def test_chunked_transfer_encoding_off_is_close_delimited(diff):
    resp = diff.check_request("GET", "/nochunk/chunked").response
    assert resp.framing == "close" and resp.body == b"hello chunked world"


def test_chunked_response_from_http10_upstream_request(diff):
    diff.check_request("GET", "/v10/chunked")


def test_close_delimited_response_is_chunked_for_http11_client(diff):
    resp = diff.check_request("GET", "/close").response
    assert resp.framing == "chunked" and resp.body == b"close-delimited body"


def test_close_delimited_response_with_http10_upstream(diff):
    diff.check_request("GET", "/v10/close", version="HTTP/1.0")


@pytest.mark.parametrize("target", ["/hidden", "/chunked", "/close"])
def test_head(diff, target):
    out = diff.check_request("HEAD", target)
    assert out.requests()[0].method == b"HEAD"
    assert out.response.body == b""


@pytest.mark.parametrize("target", ["/no-content", "/not-modified"])
def test_bodyless_statuses(diff, target):
    diff.check_request("GET", target)


def test_post_with_content_length(diff):
    out = diff.check_request("POST", "/post", body=b"a=1&b=2",
                             headers=[(b"Content-Type", b"application/x-www-form-urlencoded")])
    assert out.requests()[0].body == b"a=1&b=2"


def test_post_chunked_body(diff):
    raw = (b"POST /post-chunked HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\n\r\n")
    out = diff.check_raw(raw)
    assert out.requests()[0].body == b"Wikipedia"


def test_post_chunked_body_http10_upstream(diff):
    raw = (b"POST /v10/post-chunked HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"3\r\nabc\r\n0\r\n\r\n")
    out = diff.check_raw(raw)
    assert out.requests()[0].header(b"content-length") == b"3"


def test_expect_100_continue(diff):
    def script(port):
        with Connection(port) as conn:
            conn.send(b"POST /expect HTTP/1.1\r\nHost: example.test\r\nContent-Length: 5\r\n"
                      b"Expect: 100-continue\r\n\r\n")
            interim = conn.read_response(interim=True)
            conn.send(b"hello")
            return [interim, conn.read_response()]
    out = diff.check(script)
    assert out.result[0].status == 100
    assert out.requests()[0].header(b"expect") is None and out.requests()[0].body == b"hello"


def test_keepalive_downstream_reuses_connection(diff):
    def script(port):
        with Connection(port) as conn:
            results = []
            for target in ("/k1", "/chunked", "/k3"):
                conn.send(build_request("GET", target))
                results.append(conn.read_response())
            conn.send(build_request("GET", "/k4", headers=[(b"Connection", b"close")]))
            results.append(conn.read_response())
            results.append(conn.closed_by_peer())
            return results
    assert diff.check(script).result[-1] is True


def test_http10_keepalive_downstream(diff):
    def script(port):
        with Connection(port) as conn:
            req = build_request("GET", "/k10", version="HTTP/1.0", headers=[(b"Connection", b"keep-alive")])
            conn.send(req)
            first = conn.read_response()
            conn.send(req)
            return [first, conn.read_response()]
    diff.check(script)


def test_pipelined_requests(diff):
    raw = (build_request("GET", "/p1") + build_request("HEAD", "/hidden") +
           build_request("POST", "/p3", body=b"xyz") + build_request("GET", "/chunked"))

    def script(port):
        with Connection(port) as conn:
            conn.send(raw)
            return [conn.read_response(m) for m in ("GET", "HEAD", "POST", "GET")]
    out = diff.check(script)
    assert [r.target for r in out.requests()] == [b"/p1", b"/hidden", b"/p3", b"/chunked"]


@pytest.mark.parametrize("target", ["/add/ok", "/add/missing", "/add/moved", "/inherit-add/x"])
def test_add_header_and_always(diff, target):
    diff.check_request("GET", target)


@pytest.mark.parametrize("target", ["/redir/r1", "/redir/r2", "/redir/r3", "/redir/r4", "/redir/refresh"])
def test_proxy_redirect_default(diff, target):
    diff.check_request("GET", target)


def test_upstream_keepalive_reuses_backend_connection(diff):
    def script(port):
        return [exchange(port, build_request("GET", f"/ka/{i}"))[0] for i in range(3)]
    out = diff.check(script)
    assert len({r.connection for r in out.requests()}) == 1
    assert out.requests()[0].header(b"connection") is None


def test_upstream_bytes_past_the_body_never_answer_the_next_request(diff):
    """Issue 10: a keepalive upstream that sends more than its Content-Length in one write (here
    a whole second response). nginx drops the extra bytes with the connection ([warn] upstream
    sent more data ...); the next request, pipelined behind, goes on a new connection. ngate
    once pooled the connection at once and the extra bytes answered the pipelined request."""
    diff.backend.route("/ka/extra", Reply(raw=b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                                              b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL"))
    raw = build_request("GET", "/ka/extra") + build_request("GET", "/ka/next")
    out = diff.check(lambda port: exchange(port, raw, count=2))
    first, second = out.result
    assert first.body == b"ok" and second.body != b"EVIL"
    assert len({r.connection for r in out.requests()}) == 2


def test_101_upgrade_becomes_a_tunnel(diff):
    def script(port):
        with Connection(port) as conn:
            conn.send(build_request("GET", "/ws/echo", headers=[
                (b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"),
                (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="), (b"Sec-WebSocket-Version", b"13")]))
            resp = conn.read_response()
            conn.send(b"raw bytes after upgrade")
            return [resp, conn.read_exactly(len(b"raw bytes after upgrade"))]
    out = diff.check(script)
    assert out.result[0].status == 101 and out.result[1] == b"raw bytes after upgrade"


def test_an_error_page_target_sends_the_error_s_own_status_line(diff):
    """error_page 404 to a proxied location: the upstream's 200 OK goes out as nginx's
    `404 Not Found` (the error's status with its standard reason, not the upstream's line); the
    same response twice (the second head known to ngate: proxy/wire_http1.py), and the target
    asked directly keeps the upstream's line."""
    diff.backend.route("/ka/ep-target", Reply(body=b"target"))
    for _ in range(2):
        out = diff.check_request("GET", "/ep/missing")
        assert out.response.status_line.startswith(b"HTTP/1.1 404 Not Found")
    for _ in range(2):
        assert diff.check_request("GET", "/ka/ep-target").response.status == 200
