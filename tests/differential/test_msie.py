"""msie_padding and msie_refresh (ngx_http_special_response.c) through nginx and ngate: the
padded status pages for MSIE and Chrome (not for Opera, a Gecko Chrome, a `return` text, a 3xx
page, a status without a page, msie_padding off, HTTP/0.9), HEAD's Content-Length, the Refresh
page for MSIE in place of the redirects nginx makes itself (return 301/302 with and without a
URL, rewrite redirect/permanent, the slash redirect of a directory and of a proxied prefix,
error_page to a URL whatever its code, add_header on the 200, the URL escaped, a relative one
kept) and not for the others (return 303/307, an upstream's redirect, msie_refresh off), and
in an SSI include."""
import os
import re
import socket

import pytest

from tests.harness.client import Response, build_request
from tests.harness.h2client import H2Client
from tests.harness.paths import readable_tmpdir

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        server_name localhost;
        root {root};
        msie_refresh on;

        location / { }
        location /ssi.html { ssi on; }
        location /r301 { return 301 "http://x/a b\\"<>'\\\\^`{|}~\xe9%"; }
        location /r302rel { return 302 /rel?x=1; }
        location /r303 { return 303 http://x/; }
        location /r307 { return 307 http://x/; }
        location /r301bare { return 301; }
        location /r301bare-ep { return 301; error_page 301 text; }
        location /rw { rewrite ^ http://x/rw redirect; }
        location /rwp { rewrite ^ /new permanent; }
        location /ep307 { error_page 404 =307 http://x/ep; return 404; }
        location /ep-local { error_page 404 =303 /e404; return 404; }
        location /ep { error_page 404 http://x/ep2; return 404; }
        location /e404 { return 404; }
        location /e404text { return 404 "text"; }
        location /e497 { return 497; }
        location /e494 { return 494; }
        location /e500 { return 500; }
        location /e418 { return 418; }
        location /padoff { msie_padding off; return 404; }
        location /refoff { msie_refresh off; return 301 http://x/off; }
        location /hdr { add_header X-A a; add_header X-B b always; return 302 http://x/; }
        location /prx/ { proxy_pass http://127.0.0.1:{backend_port}/; }
        location /up { proxy_pass http://127.0.0.1:{port}/plain301; proxy_set_header User-Agent x; }
        location /plain301 { msie_refresh off; return 301 http://x/plain; }
        location /gz { gzip on; gzip_min_length 1; return 301 http://x/gz; }
        location /cs { charset utf-8; return 301 http://x/cs; }
    }
    server {
        listen 127.0.0.1:{port2} http2;
        server_name localhost;
        root {root};
        msie_refresh on;
        location /e404 { return 404; }
        location /r301 { return 301 "http://x/a b"; }
        location /rw { rewrite ^ /new redirect; }
        location /file.txt { }
    }
}
"""

MSIE = b"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)"
CHROME = b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0"
AGENTS = {"msie": MSIE, "chrome": CHROME, "opera": b"MSIE 6.0 Opera/9", "gecko-chrome":
          b"Gecko/20100101 Chrome/1", "short": b"x MSIE 6", "firefox": b"Firefox/1 Gecko/2"}
TARGETS = ["/r301", "/r302rel", "/r303", "/r307", "/r301bare", "/r301bare-ep", "/rw", "/rwp",
           "/ep307", "/ep-local", "/ep", "/e404", "/e404text", "/e497", "/e494", "/e500", "/e418",
           "/padoff", "/refoff", "/hdr", "/dir", "/prx", "/up", "/ssi.html"]


@pytest.fixture(scope="module")
def diff(differential):
    with readable_tmpdir("root-") as root:
        (root / "dir").mkdir()
        (root / "file.txt").write_text("hello")
        (root / "ssi.html").write_text('X<!--#include virtual="/r301" -->Y'
                                       '<!--#include virtual="/e404" -->Z')
        for d in (root, root / "dir"):
            os.chmod(d, os.stat(d).st_mode | 0o055)   # nginx's workers run as nobody
        yield differential(CONF, root=str(root))


@pytest.mark.parametrize("agent", sorted(AGENTS))
@pytest.mark.parametrize("target", TARGETS)
def test_special_responses_by_user_agent(diff, target, agent):
    diff.check_request("GET", target, headers=[(b"User-Agent", AGENTS[agent])])


def test_refresh_page(diff):
    r = diff.check_request("GET", "/r301", headers=[(b"User-Agent", MSIE)]).response
    assert r.status == 200 and r.header("location") is None
    assert r.body == (b'<html><head><meta http-equiv="Refresh" content="0; URL=http://x/a%20b'
                      b'%22%3C%3E%27%5C%5E%60%7B%7C}%7E%C3%A9%"></head><body></body></html>\r\n')


def test_padding(diff):
    r = diff.check_request("GET", "/e404", headers=[(b"User-Agent", CHROME)]).response
    assert r.status == 404 and r.body.endswith(
        b"<!-- a padding to disable MSIE and Chrome friendly error page -->\r\n" * 6)


@pytest.mark.parametrize("target", ["/e404", "/r302rel", "/e418"])
def test_head_and_http10(diff, target):
    diff.check_request("HEAD", target, headers=[(b"User-Agent", MSIE)])
    diff.check_request("GET", target, version="HTTP/1.0", headers=[(b"User-Agent", MSIE)])


def test_first_user_agent_counts(diff):
    diff.check_request("GET", "/e404", headers=[(b"User-Agent", b"x"), (b"User-Agent", MSIE)])
    diff.check_request("GET", "/r301", headers=[(b"User-Agent", MSIE), (b"User-Agent", b"x")])


def test_http09_has_no_user_agent(diff):
    out = diff.check(_read_all)
    assert b"padding" not in out.result


def _read_all(port):
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(b"GET /e404\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    import re
    return re.sub(rb"<hr><center>[^<]*</center>", b"", data)


@pytest.mark.parametrize("agent", ["msie", "chrome", "firefox"])
def test_range_not_satisfiable_page(diff, agent):
    """The range filter's 416 is a special response too (ngx_http_filter_finalize_request)."""
    r = diff.check_request("GET", "/file.txt", headers=[(b"User-Agent", AGENTS[agent]),
                                                        (b"Range", b"bytes=1000-")]).response
    assert r.status == 416 and (b"a padding" in r.body) == (agent != "firefox")


def test_keepalive_after_refresh(diff):
    raw = build_request("GET", "/rw", headers=[(b"User-Agent", MSIE)]) + \
        build_request("GET", "/e404", headers=[(b"User-Agent", MSIE)])
    diff.check_raw(raw, count=2)


def h2(path: str, headers=()):
    def script(port: int) -> Response:
        port = port2_of[port]
        with H2Client(port) as c:
            sid = c.request(path, headers=headers, authority="localhost")
            status, head, data = c.response(sid)
            hdrs = [(n, v) for n, v in c.heads.get(sid, []) if n != b":status"]
            return Response(b"HTTP/2", status, b"", hdrs, data)
    return script


port2_of: dict = {}


@pytest.mark.parametrize("agent", ["msie", "chrome", "firefox"])
@pytest.mark.parametrize("path", ["/e404", "/r301", "/rw", "/file.txt"])
def test_http2(diff, path, agent):
    """HTTP/2 has the same User-Agent flags (ngx_http_v2 runs the headers_in handlers)."""
    for proc in diff.procs.values():
        port2_of[proc.port] = proc.params["port2"]
    headers = [(b"user-agent", AGENTS[agent])]
    if path == "/file.txt":
        headers.append((b"range", b"bytes=1000-"))
    r = diff.check(h2(path, headers)).response
    if path == "/e404":
        assert (b"a padding" in r.body) == (agent != "firefox")
    elif path != "/file.txt":
        assert (r.status == 200) == (agent == "msie")


def _pieces(*parts: bytes):
    """Send the parts one by one (a head still arriving when it is refused), read to the end."""
    def script(port: int):
        import time
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            for part in parts:
                s.sendall(part)
                time.sleep(0.2)
            data = b""
            try:
                while chunk := s.recv(65536):
                    data += chunk
            except ConnectionResetError:
                pass
        data = re.sub(rb"<hr><center>[^<]*</center>", b"", data)
        return re.sub(rb"(?m)^(Date|Server|Content-Length): .*\r\n", b"", data)
    return script


UA_LINE = b"User-Agent: " + MSIE + b"\r\n"
BIG = b"Cookie: " + b"c" * 9000 + b"\r\n"


@pytest.mark.parametrize("head,padded", [
    (UA_LINE + BIG, True),                                  # too long a line, after the UA
    (BIG + UA_LINE, False),                                 # ... before it
    (UA_LINE + b"Host: b\r\n", True),                       # duplicate Host, after the UA
    (b"Host: b\r\n" + UA_LINE, False),                      # ... before it
    (UA_LINE + b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n", True),
    (UA_LINE + b"X: a\0b\r\n", True),                       # a NUL, after the UA
    (b"X: a\0b\r\n" + UA_LINE, False),
    (UA_LINE + b"Bad header\r\n", True),
    (UA_LINE + b"X: a\rb\r\n", True),                       # a bare CR, after the UA
    (b"X: a\rb\r\n" + UA_LINE, False),
], ids=["big-after", "big-before", "host-after", "host-before", "cl-te", "nul-after",
        "nul-before", "no-colon", "cr-after", "cr-before"])
def test_refused_head_padding(diff, head, padded):
    """A head refused while it is parsed: padded when the User-Agent line came first."""
    raw = b"GET / HTTP/1.1\r\nHost: a\r\n" + head + b"\r\n"
    out = diff.check(_pieces(raw))
    assert out.result.startswith(b"HTTP/1.1 40") and (b"a padding" in out.result) == padded


def test_refused_partial_head_padding(diff):
    """The too-long line still arriving (the complete lines before it were parsed)."""
    diff.check(_pieces(b"GET / HTTP/1.1\r\nHost: a\r\n" + UA_LINE, b"Cookie: " + b"c" * 9000))
    diff.check(_pieces(b"GET / HTTP/1.1\r\nHost: a\r\n", b"Cookie: " + b"c" * 9000))
    out = diff.check(_pieces(b"GET / HTTP/1.1\r\nHost: a\r\n" + UA_LINE, b"X: a\rb"))
    assert b"a padding" in out.result
    diff.check(_pieces(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n", UA_LINE))


@pytest.mark.parametrize("target", ["/gz", "/cs"])
@pytest.mark.parametrize("agent", [b"Mozilla/4.0 (compatible; MSIE 8.0)", MSIE, CHROME])
def test_pages_through_the_filters(diff, target, agent):
    """The Refresh page goes through gzip and charset as any response (a status page through
    gzip cannot be compared: the signature inside differs)."""
    diff.check_request("GET", target, headers=[(b"User-Agent", agent),
                                               (b"Accept-Encoding", b"gzip")])
